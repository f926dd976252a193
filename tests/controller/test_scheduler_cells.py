"""The cells of bench/scheduler_cells/ (session 8: the scheduler on cells it was not built on)
stay runnable: each scenario loads, its reactive and scheduler configs load, and neither
disagrees with the scenario (controller/cellcheck.py). Their figures: bench/README.md,
"Session 8"."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cellcheck import check_cell
from controller.config import load_config
from drivers.sim.scenario import load_scenario

CELLS = Path(__file__).parents[2] / "bench" / "scheduler_cells"


@pytest.mark.parametrize("cell", ["small-battery-tou3", "big-pv-export", "saturday-long-shift"])
@pytest.mark.parametrize("kind", ["reactive", "scheduler"])
def test_the_cell_and_its_configs_agree(cell: str, kind: str) -> None:
    scenario = load_scenario(CELLS / f"{cell}.yaml")
    assert scenario.battery is not None
    assert scenario.forecast is not None
    config = load_config(CELLS / f"{cell}-{kind}.yaml").config
    assert (config.scheduler is not None) == (kind == "scheduler")
    assert check_cell(config, scenario) == []

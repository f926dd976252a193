"""Generated cells (bench/cellgen.py): reproducible from (seed, index), valid in the scenario
schema and the controller's config schema, within the documented ranges, the config fitted to
its own cell, and runnable by the plant."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.cellgen import RANGES, Cell, generate, production_periods
from controller.config import Config, load_config
from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
CELLS = 30


def loaded(cell: Cell, directory: Path) -> tuple[Scenario, Config]:
    scenario_path, config_path = cell.write(directory / cell.name)
    return load_scenario(scenario_path), load_config(config_path).config


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Scenario, Config]]:
    directory = tmp_path_factory.mktemp("cells")
    return [loaded(generate(1, index), directory) for index in range(CELLS)]


def test_the_same_seed_and_index_give_the_same_cell() -> None:
    assert generate(7, 3) == generate(7, 3)
    assert generate(7, 3).scenario != generate(7, 4).scenario
    assert generate(7, 3).scenario != generate(8, 3).scenario


def test_production_periods_are_the_shifts_less_their_pauses() -> None:
    # normal-day's plan gives configs/cosim.yaml's hand-written production periods.
    shifts = [("06:00", "14:00"), ("14:00", "22:00")]
    pauses = [("09:00", 15), ("11:45", 30), ("17:00", 15), ("19:30", 30), ("15:00", 20)]
    shipped = yaml.safe_load((ROOT / "configs" / "cosim.yaml").read_text(encoding="utf-8"))
    (standby,) = [rule for rule in shipped["rules"] if rule["kind"] == "idle_standby"]
    expected = [(p["start"], p["end"]) for p in standby["schedule"]["periods"]]

    assert production_periods(shifts, pauses) == expected


def test_generated_cells_stay_within_the_documented_ranges(
    cells: list[tuple[Scenario, Config]],
) -> None:
    for scenario, _ in cells:
        low, high = RANGES["machines"]
        assert low <= len(scenario.machines) <= high
        assert len(scenario.heated_tanks) <= RANGES["heated_tanks"][1]
        assert len(scenario.ev_chargers) <= RANGES["ev_chargers"][1]
        assert len(scenario.events.leaks) <= RANGES["leaks"][1]
        windows = {minutes * 60.0 for minutes in RANGES["demand_window_min"]}
        assert scenario.site.meter.demand_window in windows
        low_us, high_us = RANGES["makeup_conductivity_us_cm"]
        tower = scenario.cooling_tower
        assert low_us <= tower.makeup_conductivity_us_cm <= high_us
        assert tower.local_conductivity_setpoint_us_cm < tower.max_conductivity_us_cm
        # The rinse takes the mains water, and its spec can be met with it.
        assert scenario.rinse.fresh_conductivity_us_cm == tower.makeup_conductivity_us_cm
        assert scenario.rinse.quality_limit_us_cm >= 1.5 * tower.makeup_conductivity_us_cm
        assert scenario.rinse.machine in {m.name for m in scenario.machines}


def test_generated_cells_vary_where_the_issue_asks(cells: list[tuple[Scenario, Config]]) -> None:
    scenarios = [scenario for scenario, _ in cells]
    assert len({len(s.machines) for s in scenarios}) >= 4
    assert {s.site.meter.demand_window for s in scenarios} == {900.0, 1800.0}
    assert {leak.kind for s in scenarios for leak in s.events.leaks} == {"air", "water"}
    locations = {
        leak.location for s in scenarios for leak in s.events.leaks if leak.kind == "water"
    }
    assert locations == {"main", "cooling_tower"}
    # Leaks at any time of day, the night included.
    hours = {leak.start.at.hour for s in scenarios for leak in s.events.leaks}
    assert min(hours) < 6
    assert max(hours) >= 18


def test_each_config_is_fitted_to_its_own_cell(cells: list[tuple[Scenario, Config]]) -> None:
    for scenario, config in cells:
        rules = {rule.name: rule for rule in config.rules}
        machines = [m.name for m in scenario.machines]
        standby = rules["idle_standby"]
        assert [m.name for m in standby.machines] == machines  # type: ignore[union-attr]
        peak = rules["peak_shaving"]
        assert peak.window == scenario.site.meter.demand_window  # type: ignore[union-attr]
        shed = {load.name for load in peak.loads}  # type: ignore[union-attr]
        assert {c.name for c in scenario.ev_chargers} <= shed
        assert {f"{t.name}-heater" for t in scenario.heated_tanks} <= shed
        chiller = rules["chiller_reset"]
        (process,) = chiller.process  # type: ignore[union-attr]
        assert process.max == scenario.chilled_water.process_limit_c
        blowdown = rules["tower_blowdown"]
        assert blowdown.limit_us_cm == scenario.cooling_tower.max_conductivity_us_cm  # type: ignore[union-attr]


def test_generated_cells_run_in_the_plant(cells: list[tuple[Scenario, Config]]) -> None:
    for scenario, _ in cells[:3]:
        plant = Plant(scenario)
        for _ in range(720):  # the first hour at 5 s
            plant.step(5.0)
        states = {m.name: plant.read_point(f"{m.name}.state") for m in scenario.machines}
        assert set(states) == {m.name for m in scenario.machines}
        assert plant.ground_truth().site_import_kwh > 0

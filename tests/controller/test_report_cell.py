"""`edgecell report` on a cell that is not the demo cell: the machines, heated tanks and
chargers it counts come from the scenario, and the demand figure is labelled with the
scenario's meter window (issue #14, item 4)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import report as report_module
from controller.config import Config, load_config
from controller.report import RunResult, compare, markdown, run_once
from drivers.sim.plant.truth import GroundTruth
from drivers.sim.scenario import SCENARIO_DIR, Scenario, load_scenario

ROOT = Path(__file__).parents[2]
# The demo cell's equipment, renamed: nothing of the demo's names is left in the scenario.
RENAMED = {
    "press-1": "stamp-7",
    "cnc-1": "mill-a",
    "cnc-2": "mill-b",
    "washer-1": "wash-line",
    "wash-tank": "bath-2",
    "ev-charger": "car-point",
}


def cell(tmp_path: Path, renames: dict[str, str], **changes: Any) -> Scenario:
    """normal-day with its equipment renamed and top-level keys changed, from 05:20: the
    machines stand by between shifts, so all of them start at the 05:30 warm-up."""
    text = (SCENARIO_DIR / "normal-day.yaml").read_text(encoding="utf-8")
    for old, new in renames.items():
        text = re.sub(rf"(?<![\w-]){re.escape(old)}(?![\w-])", new, text)
    data = yaml.safe_load(text)
    data["start"] = "2024-06-03T05:20:00"
    data["schedule"]["between_shifts"] = "standby"
    for key, value in changes.items():
        data[key] = value(data[key]) if callable(value) else value
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_scenario(path)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "configs" / "cosim.yaml").config


async def baseline(scenario: Scenario, config: Config) -> RunResult:
    # 05:20 to 05:38: every machine leaves standby at 05:30.
    return await run_once(
        scenario, config, rules=False, hours=0.3, cycle=5.0, seed=1, progress=False
    )


async def test_a_cell_without_the_demo_machines_is_reported(tmp_path: Path, config: Config) -> None:
    scenario = cell(tmp_path, RENAMED)
    assert "press-1" not in {m.name for m in scenario.machines}

    run = await baseline(scenario, config)

    assert run.starts_by_equipment == {
        "compressor": 0,
        "stamp-7": 1,
        "mill-a": 1,
        "mill-b": 1,
        "wash-line": 1,
    }
    assert run.starts == 4


async def test_a_machine_the_demo_does_not_have_is_counted(tmp_path: Path, config: Config) -> None:
    def add_press(machines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        extra = dict(next(m for m in machines if m["name"] == "press-1"), name="press-2")
        return [*machines, extra]

    scenario = cell(tmp_path, {}, machines=add_press)

    run = await baseline(scenario, config)

    assert run.starts == 5  # the four machines of the demo and press-2
    assert run.starts_by_equipment["press-2"] == 1


def half_hour_meter(tmp_path: Path) -> Scenario:
    """A 30-min meter display and a tariff billing 30-min clock-aligned windows."""

    def window(site: dict[str, Any]) -> dict[str, Any]:
        return {**site, "meter": {**site.get("meter", {}), "demand_window": "30min"}}

    def tariff(tariff: dict[str, Any]) -> dict[str, Any]:
        return {**tariff, "demand_window": "30min"}

    return cell(tmp_path, {}, site=window, tariff=tariff)


def runs(scenario: Scenario, billed: tuple[float, float], meter: tuple[float, float]) -> tuple[
    RunResult, RunResult
]:
    """Baseline and edgecell runs whose billed (aligned) and meter (sliding) peaks differ."""
    truth = GroundTruth(scenario=scenario.name, seed=1, start="2024-06-03T05:20:00")
    out = []
    for label, aligned, sliding in zip(("baseline", "edgecell"), billed, meter, strict=True):
        truth.billing_demand_kw, truth.max_demand_kw = aligned, sliding
        out.append(RunResult(label, truth.as_dict(), hours=1.0))
    return out[0], out[1]


def test_a_30_min_window_is_labelled_as_such(tmp_path: Path) -> None:
    scenario = half_hour_meter(tmp_path)
    report = compare(*runs(scenario, billed=(120.0, 100.0), meter=(130.0, 125.0)), scenario)
    table = markdown(report)

    assert (
        "| peak 30-min demand (clock-aligned billing windows) | 120.00 kW | 100.00 kW | +16.7 % |"
        in table
    )
    assert report["demand_window_s"] == 1800
    assert "15-min" not in table
    assert "sliding 30-min" in table  # the meter's own window, said as what it is
    assert report_module.series_labels(scenario)["site_meter.demand_kw"] == (
        "site meter demand, sliding 30-min (kW)"
    )


def test_the_peak_is_the_tariff_s_aligned_window_and_the_meter_s_is_labelled_sliding(
    tmp_path: Path,
) -> None:
    """The billed peak is the clock-aligned window's (what the demand charge is on); the
    meter's sliding peak is shown beside it as what it is, and not saved against."""
    scenario = cell(tmp_path, {})
    assert scenario.tariff.demand_window == 900
    assert scenario.tariff.demand_alignment == "fixed"
    report = compare(*runs(scenario, billed=(200.0, 190.0), meter=(212.0, 214.0)), scenario)
    table = markdown(report)

    assert report["baseline"]["peak_demand_kw"] == 200.0
    assert report["edgecell"]["meter_peak_demand_kw"] == 214.0
    assert report["savings_pct"]["peak_demand_kw"] == 5.0
    assert report["demand_window_alignment"] == "fixed"
    assert (
        "| peak 15-min demand (clock-aligned billing windows) | 200.00 kW | 190.00 kW | +5.0 % |"
        in table
    )
    assert "| meter peak, sliding 15-min (not billed) | 212.00 kW | 214.00 kW | |" in table


def test_the_demo_cell_keeps_its_15_min_label() -> None:
    assert report_module.series_labels(load_scenario("normal-day"))["site_meter.demand_kw"] == (
        "site meter demand, sliding 15-min (kW)"
    )

"""`edgecell report --scheduler`'s table: three runs from ground truth beside the perfect-
foresight bound, the savings against the baseline, the scheduler's share of the bound's saving
and issue 16's targets; the plan in force beside what happened."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.cli import main
from controller.config import load_config
from controller.foresight import Bound
from controller.report import RunResult
from controller.scheduler_report import (
    SchedulerRuns,
    compare_scheduler,
    flexible_set,
    plan_vs_actual,
    write_scheduler_report,
)
from drivers.sim.plant.truth import GroundTruth
from drivers.sim.scenario import load_scenario

START_MS = 1_717_372_800_000


def truth(**figures: Any) -> dict[str, Any]:
    base = GroundTruth(scenario="solar-day", seed=1, start="2024-06-03T00:00:00").as_dict()
    return {
        **base,
        "battery_initial_soc_pct": 50.0,
        "battery_final_soc_pct": 50.0,
        "seconds_soc_outside_limits": 0.0,
        **figures,
    }


def run(label: str, cost: float, peak: float, **figures: Any) -> RunResult:
    return RunResult(
        label,
        truth(
            site_import_kwh=cost / 0.2,
            energy_cost=cost,
            demand_charge_prorated=peak * 0.3,
            billing_demand_kw=peak,
            **figures,
        ),
        hours=24.0,
    )


def bound(net: float, peak: float) -> Bound:
    return Bound(
        plan=SimpleNamespace(solve_ms=3.0, status="optimal"),
        steps=96,
        step_minutes=15.0,
        energy_cost=net - peak * 0.3,
        export_revenue=0.0,
        demand_charge=peak * 0.3,
        degradation=0.0,
        net_cost=net,
        stored_kwh=0.0,
        net_cost_soc_adjusted=net,
        peak_demand_kw=peak,
        import_kwh=0.0,
        export_kwh=0.0,
    )


def test_the_scheduler_is_measured_against_the_baseline_and_the_bound() -> None:
    scenario = load_scenario("solar-day")
    runs = SchedulerRuns(
        baseline=run("baseline", 500.0, 200.0),  # net 560
        reactive=run("reactive", 480.0, 170.0),  # net 531
        scheduler=run("scheduler", 380.0, 150.0),  # net 425
    )
    report = compare_scheduler(runs, bound(415.0, 140.0), scenario)
    assert report["runs"]["scheduler"]["net_cost_soc_adjusted"] == pytest.approx(425.0)
    assert report["saved"]["scheduler"]["cost_pct"] == pytest.approx(24.1)  # 135 / 560
    assert report["saved"]["scheduler"]["peak_pct"] == pytest.approx(25.0)
    assert report["saved"]["bound"]["cost"] == pytest.approx(145.0)
    assert report["bound_share_pct"] == pytest.approx(93.1)  # 135 / 145
    assert all(report["targets"].values())


def test_a_scheduler_that_breaks_a_constraint_or_loses_to_the_rules_misses_its_targets() -> None:
    scenario = load_scenario("solar-day")
    runs = SchedulerRuns(
        baseline=run("baseline", 500.0, 200.0),
        reactive=run("reactive", 400.0, 150.0),
        scheduler=run("scheduler", 420.0, 150.0, seconds_soc_outside_limits=5.0),
    )
    report = compare_scheduler(runs, bound(300.0, 140.0), scenario)
    targets = report["targets"]
    assert not targets["zero_violations"]
    assert not targets["scheduler_beats_reactive_on_cost"]
    assert not targets["no_worse_than_reactive"]
    assert not targets["saving_within_10pct_of_perfect_foresight"]  # 95 of 260
    assert report["bound_share_pct"] == pytest.approx(36.5)


@pytest.mark.parametrize(
    ("broken", "figure", "value"),
    [
        ({"seconds_tank_below_min": {"wash-tank": 15.0}}, "tank_below_minimum_s", 15.0),
        ({"ev_energy_short_kwh": {"ev-charger": 0.5}}, "ev_energy_short_kwh", 0.5),
    ],
)
def test_a_tank_below_its_band_or_a_car_short_at_departure_is_a_violation(
    broken: dict[str, Any], figure: str, value: float
) -> None:
    """Counted from the plant's truth of the scheduler run: the seconds the wash tank was below
    the process's minimum while its machine produced, the kWh a car left without."""
    scenario = load_scenario("solar-day")
    runs = SchedulerRuns(
        baseline=run("baseline", 500.0, 200.0),
        reactive=run("reactive", 450.0, 180.0),
        scheduler=run("scheduler", 420.0, 170.0, **broken),
    )
    report = compare_scheduler(runs, bound(400.0, 160.0), scenario)
    assert report["runs"]["scheduler"][figure] == value
    assert not report["targets"]["zero_violations"]
    clean = compare_scheduler(
        SchedulerRuns(runs.baseline, runs.reactive, run("scheduler", 420.0, 170.0)),
        bound(400.0, 160.0),
        scenario,
    )
    assert clean["targets"]["zero_violations"]


def test_the_bound_plans_the_loads_the_shipped_scheduler_plans() -> None:
    """configs/cosim-scheduler.yaml plans solar-day's car and wash tank: the perfect-foresight
    bound plans the same flexibility (matched through the scenario's protocol faces)."""
    config = load_config(Path(__file__).parents[2] / "configs" / "cosim-scheduler.yaml").config
    flexible = flexible_set(config, load_scenario("solar-day"))
    assert flexible.ev_chargers == ("ev-charger",)
    assert flexible.tanks == ("wash-tank",)
    assert flexible.battery is not None


def test_the_bound_s_battery_is_never_smaller_than_the_cell_s() -> None:
    """A scheduler config that understates the battery (a copied 200 kWh / 100 kW on a
    300 kWh / 150 kW cabinet) plans less than the cell has: the bound, a bound on what any
    run of the cell can pay, takes the larger capacity and power limits (as it takes the
    better efficiency and the wider SoC window)."""
    config = load_config(Path(__file__).parents[2] / "configs" / "cosim-scheduler.yaml").config
    scenario = load_scenario("solar-day")
    assert scenario.battery is not None
    bigger = scenario.battery.model_copy(
        update={"usable_kwh": 300.0, "max_discharge_kw": 150.0, "max_charge_kw": 120.0}
    )
    flexible = flexible_set(config, scenario.model_copy(update={"battery": bigger}))
    assert flexible.battery is not None
    assert flexible.battery.capacity_kwh == 300.0
    assert flexible.battery.max_discharge_kw == 150.0
    assert flexible.battery.max_charge_kw == 120.0


def test_the_plan_in_force_is_set_beside_what_happened(tmp_path: Path) -> None:
    scenario = load_scenario("solar-day")
    times = [(i + 1) * 300 / 3600 for i in range(6)]  # 0:05 .. 0:30 in 5-min cycles
    scheduler = run("scheduler", 380.0, 150.0)
    scheduler.times_h = times
    scheduler.series = {
        "site_meter.active_power_kw": [100, 100, 100, 70, 70, 70],
        "battery.power_kw": [0, 0, 0, 30, 30, 30],
        "battery.soc_pct": [50, 50, 50, 49, 48, 47],
    }
    step = {"battery_kw": 25.0, "import_kw": 75.0, "export_kw": 0.0, "soc_pct": 46.0}
    scheduler.plans = [
        (0.0, {"steps": [{**step, "start_ms": START_MS, "battery_kw": 0.0}]}),
        # re-planned at 0:10: the 0:15 step of that plan is in force for the second step
        (10 / 60, {"steps": [{**step, "start_ms": START_MS + 900_000}]}),
    ]
    series = plan_vs_actual(scheduler, scenario, START_MS)
    assert series["battery_kw"] == [0.0, 30.0]
    assert series["plan_battery_kw"] == [0.0, 25.0]
    assert series["grid_kw"] == [100.0, 70.0]
    assert series["plan_grid_kw"] == [75.0, 75.0]
    assert series["soc_pct"] == [50, 47]
    assert series["plan_soc_pct"][1] == 46.0
    runs = SchedulerRuns(run("baseline", 500.0, 200.0), run("reactive", 480.0, 170.0), scheduler)
    report = write_scheduler_report(runs, None, scenario, tmp_path, plots=False)
    text = (tmp_path / "scheduler.md").read_text("utf-8")
    assert "| rules + scheduler | perfect foresight |" in text
    assert "| peak 15-min demand | 200.00 kW | 170.00 kW | 150.00 kW | n/a |" in text
    assert report["bound_share_pct"] is None
    assert (tmp_path / "scheduler.json").exists()


def test_report_scheduler_refuses_a_config_without_a_scheduler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage = Path(__file__).resolve().parents[2] / "configs" / "cosim-storage.yaml"
    code = main(
        ["report", "--scenario", "solar-day", "--scheduler", "--scheduler-config", str(storage)]
    )
    assert code == 2
    assert "--scheduler needs a config with a scheduler: section" in capsys.readouterr().err

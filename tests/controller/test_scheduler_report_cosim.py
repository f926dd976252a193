"""`edgecell report --scheduler`, short: the three runs and the perfect-foresight bound on an
hour of solar-day across the 08:00 price step, through the real protocol stacks with the
shipped configs (configs/cosim-storage.yaml, configs/cosim-scheduler.yaml). The figures must be
consistent: the scheduler was fed the scenario's forecasts and planned every quarter hour, it
broke no constraint, and no run's bill beats the bound. The whole day is bench/README.md's
"Scheduler on solar-day (issue 16)"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.config import load_config
from controller.cosim import CoSimulation
from controller.scheduler_report import (
    bound_for,
    flexible_set,
    run_three,
    write_scheduler_report,
)
from drivers.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("highspy")


@pytest.mark.timeout(300)
async def test_the_three_runs_and_the_bound_agree_on_an_hour_of_solar_day(tmp_path: Path) -> None:
    path = tmp_path / "solar-hour.yaml"
    path.write_text(
        "base: solar-day\nname: solar-hour\nstart: 2024-06-03T07:30:00\nduration: 1h\n", "utf-8"
    )
    scenario = load_scenario(path)
    reactive = load_config(ROOT / "configs" / "cosim-storage.yaml").config
    scheduler = load_config(ROOT / "configs" / "cosim-scheduler.yaml").config
    runs = await run_three(scenario, reactive, scheduler, cycle=10.0, progress=False)
    flexible = flexible_set(scheduler, scenario)
    bound = bound_for(runs, scenario, flexible)
    planned = bound_for(runs, scenario, flexible, planner_demand_charge=True)
    report = write_scheduler_report(
        runs, bound, scenario, tmp_path, plots=False, planner_bound=planned
    )
    print((tmp_path / "scheduler.md").read_text("utf-8"))  # the table, when it fails

    # the forecasts issued before the run started (00:00, 06:00) reached the planner at its
    # start, the latest in force; it planned at 07:30 and every quarter hour after
    assert runs.scheduler.plans, "no plan published"
    assert len(runs.scheduler.plans) >= 4
    assert runs.scheduler.plans[0][1]["pv_forecast"] == "scenario solar-hour, issue 1"
    figures = report["runs"]
    sched = figures["scheduler"]
    assert sched["soc_outside_limits_s"] == 0
    assert sched["tank_below_minimum_s"] == 0
    assert sched["production_lost_s"] == 0
    assert sched["other_violations_s"] == 0
    assert report["targets"]["zero_violations"]
    # the bound plans the same battery on the scheduler run's own load and PV, with a battery
    # never worse than the plant's: no run's bill (stored energy credited) is below it
    limit = report["bound"]["net_cost_soc_adjusted"]
    for label in ("baseline", "reactive", "scheduler"):
        assert limit <= figures[label]["net_cost_soc_adjusted"] + 0.01, label
    assert report["bound"]["status"] == "optimal"
    assert report["bound"]["steps"] == 4
    # the same LP on the scheduler's objective (the month's demand charge shared by the days
    # left in June, 9 / 28 a kW, far above an hour's share of the bill) shaves at least as
    # deep, and on the bill pays at least the bill's optimum
    assert report["bound_planner"]["peak_demand_kw"] <= report["bound"]["peak_demand_kw"] + 0.01
    assert report["bound_planner"]["net_cost_soc_adjusted"] >= limit - 0.01
    stored = json.loads((tmp_path / "scheduler.json").read_text("utf-8"))
    assert stored["plan_vs_actual"]["plan_battery_kw"][1] is not None


@pytest.mark.timeout(120)
async def test_the_scenarios_forecasts_reach_the_planner_at_their_issue_times(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dawn.yaml"
    path.write_text(
        "base: solar-day-bad-forecast\nname: dawn\nstart: 2024-06-03T05:58:00\nduration: 4min\n",
        "utf-8",
    )
    scheduler = load_config(ROOT / "configs" / "cosim-scheduler.yaml").config
    async with CoSimulation(load_scenario(path), scheduler, cycle=5.0) as run:
        assert run.planner is not None
        await run.advance(60)
        # the day-ahead forecast of 00:00, already issued when the run starts
        assert run.forecasts_offered == [(-(5 * 3600 + 58 * 60), True)]
        assert run.planner.cloud_source == "scenario dawn, issue 0"
        await run.advance(120)
        # the 06:00 update, on the cycle that starts at 06:00
        assert run.forecasts_offered[1:] == [(120.0, True)]
        assert run.planner.cloud_source == "scenario dawn, issue 1"
        assert run.planner.cloud is not None
        assert run.planner.cloud.issued_ms == run.clock.wall_ms() - 60_000
        base = run.config.base_topic
        accepted = [b for t, b in run.events.events if t == f"{base}/events/forecast"]
    assert [b["ok"] for b in accepted] == [True, True]


async def test_a_run_without_a_scheduler_drops_the_forecasts(tmp_path: Path) -> None:
    path = tmp_path / "dawn.yaml"
    path.write_text("base: solar-day\nname: dawn\nstart: 2024-06-03T05:58:00\n", "utf-8")
    reactive = load_config(ROOT / "configs" / "cosim-storage.yaml").config
    async with CoSimulation(load_scenario(path), reactive, cycle=5.0) as run:
        await run.advance(10)
        assert run.planner is None
        assert run.forecasts_offered == [(-(5 * 3600 + 58 * 60), False)]

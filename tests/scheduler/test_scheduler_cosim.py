"""The scheduler in the lock-step co-simulation (solar-day, the battery over SunSpec): the planner
plans at the start and on the quarter hours in a real solver process, `battery_schedule` writes
the plan's kW to the battery, the plan is kept retained with its fields."""

from __future__ import annotations

import io

import orjson
import pytest
from rich.console import Console

from controller.cosim import CoSimulation
from controller.watch.app import WatchApp
from controller.watch.link import BrokerSettings
from drivers.sim.scenario import load_scenario
from tests.scheduler.cell import scheduler_config
from tests.scheduler.forecasts import cloud_forecast, payload

pytestmark = pytest.mark.timeout(120)

STEP_FIELDS = {
    "time",
    "battery_kw",
    "soc_pct",
    "import_kw",
    "price",
    "load_kw",
    "pv_kw",
    "export_kw",
    "soc_kwh",
    "start_ms",
}


async def test_the_plan_is_made_published_and_followed_in_lockstep() -> None:
    async with CoSimulation(load_scenario("solar-day"), scheduler_config(), cycle=5.0) as run:
        assert run.planner is not None
        assert run.offer_pv_forecast(payload(cloud_forecast(run.clock.wall_ms())))
        await run.advance(1200)
        base = run.config.base_topic
        plan = run.events.retained[f"{base}/plan"]
        events = [body for topic, body in run.events.events if topic == f"{base}/events/plan"]
        writes = [w for w in run.events.writes() if w.get("rule") == "battery_schedule"]
        pid = run.planner.solver.pid
        alarms = [
            t for t, _ in run.events.retained_history if t.endswith("battery_schedule.no_plan")
        ]
    assert [e["reason"] for e in events] == ["start", "scheduled"]
    assert all(e["ok"] for e in events)
    assert plan["valid"] is True
    assert plan["reason"] == "scheduled"
    assert len(plan["steps"]) == 96
    assert set(plan["steps"][0]) >= STEP_FIELDS
    assert {"cost", "solve_ms", "created_ms", "horizon_h", "peak_kw"} <= set(plan)
    assert plan["horizon_h"] == 24.0
    assert plan["cost"]["total"] > 0
    assert plan["steps"][0]["price"] == 0.16
    assert alarms == []  # the first plan came in the first cycle: no alarm at start
    assert writes, "battery_schedule wrote nothing"
    assert writes[-1]["reason"].startswith("plan ")
    assert pid is not None
    assert orjson.dumps(plan)
    shown = watch_plan_tab(plan)
    assert "time" in shown
    assert "battery_kw" in shown
    assert "soc_pct" in shown
    assert "cost_total:" in shown
    assert "reason: scheduled" in shown


def watch_plan_tab(plan: dict[str, object]) -> str:
    """What `edgecell watch`'s Plan tab shows for this retained plan, as text."""
    app = WatchApp(
        BrokerSettings(host="127.0.0.1", port=1, base="edgecell/sim-cell", by="t"),
        gateway="sim-cell",
        broker_label="test",
    )
    app.state.ingest("edgecell/sim-cell/plan", orjson.dumps(plan))
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(app._plan())
    return console.export_text()

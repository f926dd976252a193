"""`battery_schedule.no_plan` while the plans keep failing, in the lock-step co-simulation with
the real solver process: published when raised and when its cause really changes, not again at
every retry whose message differs only in a figure (the forecast's age, a pid, a time)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.cosim import CoSimulation
from drivers.sim.scenario import load_scenario
from tests.scheduler.cell import scheduler_config, scheduler_section
from tests.scheduler.forecasts import cloud_forecast, payload

pytestmark = pytest.mark.timeout(180)

ALARM = "battery_schedule.no_plan"


def alarm_messages(run: CoSimulation) -> list[dict[str, Any]]:
    return [body for topic, body in run.events.retained_history if topic.endswith(ALARM)]


async def test_no_plan_is_published_on_raise_and_on_a_real_change_only() -> None:
    """solar-day from 00:00: its day-ahead forecast (issued 00:00) is stale after 10 min here,
    the next comes at 06:00. From 00:15 every re-plan fails (the scheduled ones and the retries
    after 30 s, 1, 2, 4 and 8 min), each with the forecast's age in its error: that is one
    cause, one publication. A forecast offered at 00:40 brings a plan back at 00:45 (the alarm
    cleared, published); at 01:00 it is stale again: raised again, published again."""
    pv = dict(scheduler_section({})["pv"], max_age="10min")
    async with CoSimulation(load_scenario("solar-day"), scheduler_config(pv=pv), cycle=10.0) as run:
        assert run.planner is not None
        await run.advance(40 * 60)
        base = run.config.base_topic
        failed = [b for t, b in run.events.events if t == f"{base}/events/plan" and not b["ok"]]
        assert len(failed) >= 6, failed  # the plans kept failing, each saying why
        assert len({b["error"] for b in failed}) >= 6  # in words that differ each time
        raised = alarm_messages(run)
        assert [b["state"] for b in raised] == ["active"], [b["message"] for b in raised]
        assert "stale" in raised[0]["message"]
        assert run.offer_pv_forecast(payload(cloud_forecast(run.clock.wall_ms())))
        await run.advance(25 * 60)
        states = [b["state"] for b in alarm_messages(run)]
    assert states == ["active", "cleared", "active"]

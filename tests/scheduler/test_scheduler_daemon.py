"""The scheduler in the daemon, over a real mosquitto, a real Modbus server and a real solver
process: the plan retained on `{base}/plan`, `events/plan` with why, the forecast fed on
`{base}/forecast/pv`; and every way the plan can fail (the solver killed, hung past its
time-out, a stale forecast) leaving the reactive rule in charge with `battery_schedule.no_plan`
raised, until a new solver process makes a new plan."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.scheduler.forecasts import cloud_forecast, payload
from tests.scheduler.site import Site, running_site
from tests.waiting import until

pytestmark = pytest.mark.timeout(90)

ALARM = "alarms/battery_schedule.no_plan"
STEP_FIELDS = {"time", "battery_kw", "soc_pct", "import_kw", "price", "load_kw", "pv_kw"}


def now_ms() -> int:
    return int(time.time() * 1000)


async def planned(site: Site, since: int = 0) -> dict[str, Any]:
    """The first valid plan retained on {base}/plan from the `since`-th message on."""
    plan: dict[str, Any] = await site.wait_for("plan", lambda b: b and b.get("valid"), since=since)
    return plan


async def fed(site: Site) -> dict[str, Any]:
    since = site.mark("plan")
    # Retained, as a bridge publishes it: a gateway that subscribes later still gets it.
    await site.publish_forecast(payload(cloud_forecast(now_ms())), retain=True)
    return await planned(site, since)


def rate(site: Site) -> float:
    return float(site.plc.points["site.rate_pct"])


async def test_the_plan_is_published_retained_with_its_fields(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(tmp_path, mosquitto, mqtt_names.client_id("gw")) as site:
        # No forecast yet: no plan, the alarm says why, the reactive rule drives the battery.
        refused = await site.wait_for("events/plan", lambda b: not b["ok"])
        assert "no valid PV forecast" in refused["error"]
        raised = await site.wait_for(ALARM, lambda b: b["state"] == "active")
        assert raised["indicates"] == "control"
        plan = await fed(site)
        assert len(plan["steps"]) == 96
        assert set(plan["steps"][0]) >= STEP_FIELDS
        for key in ("cost", "solve_ms", "created_ms", "horizon_h", "peak_kw", "reason"):
            assert key in plan, key
        assert plan["cost"]["total"] > 0
        accepted = [b for b in site.on("events/forecast") if b["ok"]]
        assert accepted, site.on("events/forecast")
        assert accepted[0]["points"] == 37
        event = site.on("events/plan")[-1]
        assert event["ok"] is True
        assert event["reason"].startswith("retry after")
        await site.wait_for(ALARM, lambda b: b["state"] == "cleared")
        assert site.runtime.planner is not None
        assert site.runtime.planner.solver.pid is not None


async def test_killing_the_solver_hands_the_battery_to_the_reactive_rule(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(tmp_path, mosquitto, mqtt_names.client_id("gw")) as site:
        await fed(site)
        planner = site.runtime.planner
        assert planner is not None
        pid = planner.solver.pid
        assert pid is not None
        await site.set(power_kw=130.0)  # 50 kW above the peak shaver's limit (80 kW)
        marks = {suffix: site.mark(suffix) for suffix in ("events/plan", "plan", ALARM)}
        os.kill(pid, signal.SIGKILL)
        failed = await site.wait_for(
            "events/plan", lambda b: not b["ok"], since=marks["events/plan"]
        )
        assert failed["kind"] == "crashed"
        assert "exit -9" in failed["error"]
        withdrawn = await site.wait_for("plan", lambda b: not b["valid"], since=marks["plan"])
        assert "crashed" in withdrawn["why"]
        raised = await site.wait_for(ALARM, lambda b: b["state"] == "active", since=marks[ALARM])
        assert "the solver's process ended" in raised["message"]
        # The reactive rule decides meanwhile: 50 kW above its limit is 100 % of 50 kW.
        await until(lambda: round(rate(site), 1) in (100.0, 99.9))
        # A new process plans again, the alarm clears.
        again = await planned(site, marks["plan"])
        assert again["reason"].startswith("retry after")
        await site.wait_for(ALARM, lambda b: b["state"] == "cleared", since=marks[ALARM])
        assert planner.solver.pid not in (None, pid)
        assert planner.solver.starts == 2


async def test_a_hung_solver_is_killed_at_its_time_out_and_replaced(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(
        tmp_path, mosquitto, mqtt_names.client_id("gw"), worker_timeout="3s"
    ) as site:
        await fed(site)
        planner = site.runtime.planner
        assert planner is not None
        pid = planner.solver.pid
        assert pid is not None
        marks = {suffix: site.mark(suffix) for suffix in ("events/plan", "plan", ALARM)}
        os.kill(pid, signal.SIGSTOP)  # a solver stuck in native code answers nothing
        await site.set(ev_connected=1.0)  # a car arrives: a re-plan now
        failed = await site.wait_for(
            "events/plan", lambda b: not b["ok"], since=marks["events/plan"]
        )
        assert failed["reason"] == "car at car"
        assert failed["kind"] == "timeout"
        assert failed["wall_ms"] >= 3000
        await site.wait_for(ALARM, lambda b: b["state"] == "active", since=marks[ALARM])
        again = await planned(site, marks["plan"])
        assert again["reason"].startswith("retry after")
        assert planner.solver.pid not in (None, pid)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed (SIGKILL reaches a stopped process) and reaped


async def test_a_disturbance_replans_with_its_reason(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(tmp_path, mosquitto, mqtt_names.client_id("gw")) as site:
        first = await fed(site)
        expected = first["steps"][0]["soc_pct"]
        await site.set(soc_pct=expected - 30.0 if expected > 45 else expected + 30.0)
        event = await site.wait_for(
            "events/plan", lambda b: b["reason"].startswith("SoC"), within=30
        )
        assert event["ok"] is True
        assert "off the plan's" in event["reason"]
        replanned = await site.wait_for("plan", lambda b: b and b["reason"].startswith("SoC"))
        assert replanned["created_ms"] > first["created_ms"]


async def test_a_stale_forecast_leaves_no_plan(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(
        tmp_path, mosquitto, mqtt_names.client_id("gw"), pv_max_age="6s"
    ) as site:
        # Issued long ago: refused when it arrives.
        await site.publish_forecast(payload(cloud_forecast(now_ms() - 3_600_000)), retain=True)
        refused = await site.wait_for("events/forecast", lambda b: not b["ok"])
        assert "issued_ms: issued" in refused["problem"]
        assert "older than 6 s" in refused["problem"]
        # Fresh: a plan; then it ages past max_age: the next re-plan has none.
        await fed(site)
        marks = {suffix: site.mark(suffix) for suffix in ("events/plan", ALARM)}
        await asyncio.sleep(6.5)  # the forecast is older than max_age now
        await site.set(ev_connected=1.0)  # a car arrives: a re-plan
        failed = await site.wait_for(
            "events/plan", lambda b: not b["ok"], since=marks["events/plan"]
        )
        assert failed["reason"] == "car at car"
        assert failed["kind"] == "ForecastError"
        assert "stale" in failed["error"]
        await site.wait_for(ALARM, lambda b: b["state"] == "active", since=marks[ALARM])


async def test_a_hostile_forecast_over_mqtt_leaves_the_plan_as_it_was(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(tmp_path, mosquitto, mqtt_names.client_id("gw")) as site:
        await fed(site)
        planner = site.runtime.planner
        assert planner is not None
        kept = planner.cloud
        since = site.mark("events/forecast")
        good = payload(cloud_forecast(now_ms()))
        await site.publish_forecast(good.replace(b'"factor":0.9', b'"factor":NaN', 1))
        await site.publish_forecast(b"[" + b"1," * 5_000_000 + b"1]")  # 10 MB
        await site.publish_forecast(payload({"issued_ms": now_ms(), "points": "soon"}))
        refusals = []
        for _ in range(3):
            refusals.append(
                await site.wait_for(
                    "events/forecast",
                    lambda b: not b["ok"] and b not in refusals,
                    since=since,
                )
            )
        problems = [r["problem"] for r in refusals]
        assert problems[0].startswith("(payload): not JSON")
        assert "10000003 bytes, more than a forecast may be" in problems[1]
        assert problems[2].startswith("points: Input should be a valid list")
        assert planner.cloud is kept
        assert site.runtime.planner is planner
        assert planner.board.plan is not None


async def test_a_reload_replaces_the_scheduler_without_stopping(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    async with running_site(tmp_path, mosquitto, mqtt_names.client_id("gw")) as site:
        await fed(site)
        old = site.runtime.planner
        assert old is not None
        old_pid = old.solver.pid
        path = site.runtime.loaded.path
        path.write_text(
            path.read_text().replace(
                "reserve_pct: 10, soc_max_pct: 95", "reserve_pct: 20, soc_max_pct: 90"
            )
        )
        since = site.mark("plan")
        assert await site.runtime.reload()
        new = site.runtime.planner
        assert new is not None
        assert new is not old
        assert new.config.battery is not None
        assert new.config.battery.reserve_pct == 20
        # The retained forecast is not sent again on a live subscription: fed anew.
        await site.publish_forecast(payload(cloud_forecast(now_ms())), retain=True)
        plan = await planned(site, since)
        assert min(step["soc_pct"] for step in plan["steps"]) >= 20 - 1e-6
        assert old.solver.pid is None
        assert new.solver.pid not in (None, old_pid)

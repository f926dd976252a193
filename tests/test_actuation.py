"""The actuator against a real Modbus device: writable check, clamps, step and rate limits,
shadow mode, operator overrides, read-back verification, equipment protection, heartbeat and
the write events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from closedloop import (
    EventLog,
    ModbusPlant,
    SteppedClock,
    coil_tag,
    float_tag,
    register_tag,
    start_plant,
)

from controller.actuation import (
    Actuator,
    ManualWritesDisabledError,
    NotWritableError,
    Outcome,
    OutOfRangeError,
    TagDecision,
    UnknownTagError,
    WriteResult,
    write_limits,
)
from controller.model import WriteError
from controller.rules.config import ActuationConfig
from controller.rules.rule import Proposal
from controller.tagtable import TagTable

TAGS = [
    float_tag("setpoint_bar", 0, writable=True, min=6.0, max=8.0, fallback=7.0),
    float_tag("pressure_bar", 2),
    float_tag("ramped_bar", 4, writable=True, min=0.0, max=10.0, max_step=0.5),
    float_tag("slow_bar", 6, writable=True, min=0.0, max=10.0, max_rate=6.0),
    coil_tag("run", 0, writable=True),
    register_tag("heartbeat", 10, writable=True),
    register_tag("big", 12, type="int16", writable=True),
    {"name": "label", "address": 20, "type": "string", "length": 2, "writable": True},
]
INITIAL = {
    "setpoint_bar": 7.0, "pressure_bar": 6.9, "ramped_bar": 5.0, "slow_bar": 5.0, "big": 3,
}


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def plant(clock: SteppedClock, tmp_path: Path) -> AsyncIterator[ModbusPlant]:
    plant = await start_plant(TAGS, clock, tmp_path, initial=INITIAL)
    yield plant
    await plant.stop()


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def make_actuator(
    plant: ModbusPlant, clock: SteppedClock, events: EventLog
) -> Callable[..., Actuator]:
    def make(**settings: Any) -> Actuator:
        return plant.actuator(clock, events, **settings)

    return make


def win(tag: str, value: float | bool, *, rule: str = "r1", mode: str = "auto") -> TagDecision:
    proposal = Proposal(f"comp.{tag}", value, 0, "test", rule=rule, mode=mode)  # type: ignore[arg-type]
    if mode == "shadow":
        return TagDecision(proposal.tag, shadow=proposal)
    return TagDecision(proposal.tag, winner=proposal)


async def cycle(
    actuator: Actuator, plant: ModbusPlant, clock: SteppedClock, *decisions: TagDecision
) -> tuple[dict[str, WriteResult], dict[str, WriteResult]]:
    return await actuator.apply(decisions, plant.table.snapshot(), clock.monotonic())


async def test_value_above_max_is_clamped_to_max(plant, clock, make_actuator, events):
    actuator = make_actuator()
    results, _ = await cycle(actuator, plant, clock, win("setpoint_bar", 9.5))
    assert results["comp.setpoint_bar"].outcome is Outcome.WRITTEN
    assert await plant.value("setpoint_bar") == pytest.approx(8.0)
    [event] = events.of("comp.setpoint_bar", "written")
    assert (event["requested"], event["new"], event["old"]) == (9.5, 8.0, pytest.approx(7.0))
    assert event["clamps"] == ["max 8"]
    assert "range: clamped" in event["checks"]


async def test_value_below_min_is_clamped_to_min(plant, clock, make_actuator):
    actuator = make_actuator()
    await cycle(actuator, plant, clock, win("setpoint_bar", 1.0))
    assert await plant.value("setpoint_bar") == pytest.approx(6.0)


async def test_proposal_for_tag_not_writable_is_refused_and_nothing_written(
    plant, clock, make_actuator, events
):
    actuator = make_actuator()
    results, _ = await cycle(actuator, plant, clock, win("pressure_bar", 5.0))
    assert results["comp.pressure_bar"].outcome is Outcome.REFUSED
    assert await plant.value("pressure_bar") == pytest.approx(6.9)
    [event] = events.of("comp.pressure_bar")
    assert event["outcome"] == "refused"
    assert event["error"] == "comp.pressure_bar is not declared writable"


async def test_step_is_limited_to_max_step_per_write(plant, clock, make_actuator, events):
    actuator = make_actuator()
    await cycle(actuator, plant, clock, win("ramped_bar", 9.0))
    assert await plant.value("ramped_bar") == pytest.approx(5.5)
    assert events.of("comp.ramped_bar", "written")[0]["clamps"] == ["max_step 0.5"]


async def test_ramp_continues_each_cycle_until_the_target(plant, clock, make_actuator):
    actuator = make_actuator()
    written = []
    for _ in range(4):
        await cycle(actuator, plant, clock, win("ramped_bar", 6.2))
        written.append(round(await plant.value("ramped_bar"), 3))
        clock.advance(1.0)
        await plant.poll()
    assert written == [5.5, 6.0, 6.2, 6.2]


async def test_rate_is_limited_to_max_rate_per_minute(plant, clock, make_actuator, events):
    actuator = make_actuator()  # slow_bar: max_rate 6 per minute = 0.1 per second
    await cycle(actuator, plant, clock, win("slow_bar", 9.0))
    clock.advance(3.0)
    await plant.poll()
    await cycle(actuator, plant, clock, win("slow_bar", 9.0))
    written = [e["new"] for e in events.of("comp.slow_bar", "written")]
    assert written == [pytest.approx(5.1), pytest.approx(5.4)]
    assert events.of("comp.slow_bar", "written")[1]["clamps"] == ["max_rate 6/min"]


async def test_value_already_in_place_is_not_written_again(plant, clock, make_actuator, events):
    actuator = make_actuator()
    results, _ = await cycle(actuator, plant, clock, win("setpoint_bar", 7.0))
    assert results["comp.setpoint_bar"].outcome is Outcome.UNCHANGED
    assert events.events == []


async def test_step_limited_tag_without_a_good_reading_is_refused(
    plant, clock, make_actuator, events
):
    actuator = make_actuator()
    await cycle(actuator, plant, clock)  # read since the start
    await plant.server.shutdown()
    await plant.poll()  # the device is gone: every sample is bad
    results, _ = await cycle(actuator, plant, clock, win("ramped_bar", 6.0))
    assert results["comp.ramped_bar"].outcome is Outcome.REFUSED
    assert "present value of comp.ramped_bar is unknown" in results["comp.ramped_bar"].reason


async def test_write_the_device_refuses_is_reported_failed(plant, clock, make_actuator, events):
    actuator = make_actuator(write_timeout="2s")
    await plant.server.shutdown()
    results, _ = await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    assert results["comp.setpoint_bar"].outcome is Outcome.FAILED
    [event] = events.of("comp.setpoint_bar", "failed")
    assert event["error"].startswith("comp.setpoint_bar: ")


async def test_shadow_mode_writes_nothing_and_publishes_the_value_it_would_write(
    plant, clock, make_actuator, events
):
    actuator = make_actuator()
    _, shadow = await cycle(actuator, plant, clock, win("setpoint_bar", 9.0, mode="shadow"))
    assert shadow["comp.setpoint_bar"].outcome is Outcome.SHADOW
    assert await plant.value("setpoint_bar") == pytest.approx(7.0)
    [event] = events.of("comp.setpoint_bar")
    assert (event["outcome"], event["mode"], event["new"]) == ("shadow", "shadow", 8.0)


async def test_shadow_value_is_published_once_while_it_stays_the_same(
    plant, clock, make_actuator, events
):
    actuator = make_actuator()
    for _ in range(3):
        await cycle(actuator, plant, clock, win("setpoint_bar", 7.5, mode="shadow"))
        clock.advance(1.0)
    assert len(events.of("comp.setpoint_bar", "shadow")) == 1


async def test_read_back_that_shows_the_value_raises_no_failure(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(verify_timeout="3s")
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    for _ in range(4):
        clock.advance(1.0)
        await plant.poll()
        await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    assert events.of("comp.setpoint_bar", "verify_failed") == []


async def test_read_back_that_differs_is_reported_verify_failed(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(verify_timeout="3s")
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    await plant.set("setpoint_bar", 6.5)  # the PLC overwrites it at once
    for _ in range(3):
        clock.advance(1.0)
        await plant.poll()
        await actuator.apply([], plant.table.snapshot(), clock.monotonic())
    [event] = events.of("comp.setpoint_bar", "verify_failed")
    assert event["error"] == "wrote 7.5 but after 3s it reads 6.5"


async def test_write_never_read_back_is_reported_verify_failed(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(verify_timeout="2s")
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    clock.advance(2.0)  # no poll in between
    await actuator.apply([], plant.table.snapshot(), clock.monotonic())
    [event] = events.of("comp.setpoint_bar", "verify_failed")
    assert event["error"].endswith("no reading of the tag since the write")


async def test_min_off_defers_switching_equipment_on(plant, clock, make_actuator, events):
    actuator = make_actuator(outputs={"comp.run": {"min_off": "30s"}})
    results, _ = await cycle(actuator, plant, clock, win("run", True))
    assert results["comp.run"].outcome is Outcome.DEFERRED
    assert results["comp.run"].reason == "min_off 30s: allowed in 30s (wanted True)"
    assert await plant.value("run") is False


async def test_deferred_switch_happens_once_min_off_has_passed(plant, clock, make_actuator):
    actuator = make_actuator(outputs={"comp.run": {"min_off": "30s"}})
    await cycle(actuator, plant, clock, win("run", True))
    clock.advance(30.0)
    await plant.poll()
    results, _ = await cycle(actuator, plant, clock, win("run", True))
    assert results["comp.run"].outcome is Outcome.WRITTEN
    assert await plant.value("run") is True


async def test_min_on_defers_switching_equipment_off(plant, clock, make_actuator):
    actuator = make_actuator(outputs={"comp.run": {"min_on": "1min"}})
    await plant.set("run", True)
    await plant.poll()
    results, _ = await cycle(actuator, plant, clock, win("run", False))
    assert results["comp.run"].outcome is Outcome.DEFERRED
    assert await plant.value("run") is True


async def test_switch_that_failed_does_not_count_as_a_start(plant, clock, events):
    running = {"comp": False}  # the runtime has no driver for comp while its group restarts

    def writers(device: str) -> Any:
        if not running[device]:
            raise KeyError(device)
        return plant.driver

    actuator = Actuator(
        write_limits([plant.device]),
        ActuationConfig.model_validate({"outputs": {"comp.run": {"max_starts_per_hour": 1}}}),
        writers=writers,
        table=plant.table,
        clock=clock,
        events=events,
    )
    failed, _ = await cycle(actuator, plant, clock, win("run", True))
    assert failed["comp.run"].reason == "device comp is not running"
    running["comp"] = True
    clock.advance(1.0)
    results, _ = await cycle(actuator, plant, clock, win("run", True))
    assert results["comp.run"].outcome is Outcome.WRITTEN
    assert await plant.value("run") is True


async def test_tag_no_rule_wants_any_more_is_released_once(plant, clock, make_actuator, events):
    actuator = make_actuator()
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    for _ in range(3):
        clock.advance(1.0)
        await cycle(actuator, plant, clock)
    [event] = events.of("comp.setpoint_bar", "released")
    assert event["source"] == "rule:r1"
    assert await plant.value("setpoint_bar") == pytest.approx(7.5)


async def test_heartbeat_counter_is_written_every_period(plant, clock, make_actuator):
    actuator = make_actuator(heartbeat={"tag": "comp.heartbeat", "period": "1s"})
    seen = []
    for _ in range(3):
        await cycle(actuator, plant, clock)
        seen.append(await plant.value("heartbeat"))
        clock.advance(1.0)
    assert seen == [1, 2, 3]


async def test_heartbeat_with_a_longer_period_skips_cycles(plant, clock, make_actuator):
    actuator = make_actuator(heartbeat={"tag": "comp.heartbeat", "period": "2s"})
    seen = []
    for _ in range(4):
        await cycle(actuator, plant, clock)
        seen.append(await plant.value("heartbeat"))
        clock.advance(1.0)
    assert seen == [1, 1, 2, 2]


async def test_operator_override_wins_over_the_rule(plant, clock, make_actuator, events):
    actuator = make_actuator(manual_writes=True)
    await actuator.override("comp.setpoint_bar", 6.5, 60.0, by="alice")
    results, _ = await cycle(actuator, plant, clock, win("setpoint_bar", 7.8))
    assert await plant.value("setpoint_bar") == pytest.approx(6.5)
    assert results["comp.setpoint_bar"].source == "command:alice"
    assert [p.rule for p in results["comp.setpoint_bar"].overruled] == ["r1"]


async def test_override_expires_and_the_rule_takes_the_tag_back(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(manual_writes=True)
    await actuator.override("comp.setpoint_bar", 6.5, 10.0)
    clock.advance(10.0)
    await plant.poll()
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.8))
    assert await plant.value("setpoint_bar") == pytest.approx(7.8)
    assert [e["outcome"] for e in events.of("comp.setpoint_bar")] == [
        "written",
        "expired",
        "written",
    ]


async def test_override_is_held_while_it_lasts_without_any_rule(plant, clock, make_actuator):
    actuator = make_actuator(manual_writes=True)
    await actuator.override("comp.setpoint_bar", 6.5, 10.0)
    await plant.set("setpoint_bar", 7.0)  # someone at the panel
    clock.advance(5.0)
    await plant.poll()
    await cycle(actuator, plant, clock)
    assert await plant.value("setpoint_bar") == pytest.approx(6.5)


async def test_cleared_override_is_gone_and_published(plant, clock, make_actuator, events):
    actuator = make_actuator(manual_writes=True)
    await actuator.override("comp.setpoint_bar", 6.5, 60.0)
    assert await actuator.clear_override("comp.setpoint_bar", by="bob")
    assert actuator.overrides() == {}
    assert events.events[-1]["outcome"] == "cleared"


async def test_manual_write_is_refused_unless_enabled(plant, make_actuator):
    actuator = make_actuator()
    with pytest.raises(ManualWritesDisabledError):
        await actuator.override("comp.setpoint_bar", 6.5, 60.0)
    assert await plant.value("setpoint_bar") == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("tag", "value", "ttl", "error"),
    [
        ("comp.nothing", 1.0, 60.0, UnknownTagError),
        ("comp.pressure_bar", 1.0, 60.0, NotWritableError),
        ("comp.setpoint_bar", 8.5, 60.0, OutOfRangeError),
        ("comp.setpoint_bar", 7.0, 7200.0, OutOfRangeError),
    ],
    ids=["unknown-tag", "not-writable", "above-max", "ttl-too-long"],
)
async def test_manual_write_that_fails_a_check_is_refused_and_nothing_written(
    plant, make_actuator, tag, value, ttl, error
):
    actuator = make_actuator(manual_writes=True)
    with pytest.raises(error):
        await actuator.override(tag, value, ttl)
    assert await plant.value("setpoint_bar") == pytest.approx(7.0)
    assert await plant.value("pressure_bar") == pytest.approx(6.9)
    assert actuator.overrides() == {}


async def test_manual_write_the_device_refuses_raises_and_ends_the_override(
    plant, make_actuator
):
    actuator = make_actuator(manual_writes=True, write_timeout="2s")
    await plant.server.shutdown()
    with pytest.raises(WriteError):
        await actuator.override("comp.setpoint_bar", 6.5, 60.0)
    assert actuator.overrides() == {}


# --- a refused or failed command changes nothing (issue 13, point 2) ---------------------------


async def test_refused_command_leaves_another_operators_override_as_it_was(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(manual_writes=True, manual_max_ttl="1h")
    await actuator.override("comp.big", 7, 1800.0, by="alice")
    held = actuator.overrides()["comp.big"]
    with pytest.raises(WriteError):
        await actuator.override("comp.big", 40000, 60.0, by="mallory")  # outside int16
    assert actuator.overrides() == {"comp.big": held}
    clock.advance(1.0)
    await plant.poll()
    results, _ = await cycle(actuator, plant, clock, win("big", 3))
    assert results["comp.big"].source == "command:alice"
    assert await plant.value("big") == 7
    assert events.of("comp.big", "released") == []


async def test_command_the_device_fails_puts_back_the_override_it_would_replace(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(manual_writes=True, write_timeout="2s")
    await actuator.override("comp.big", 7, 1800.0, by="alice")
    held = actuator.overrides()["comp.big"]
    await plant.server.shutdown()
    with pytest.raises(WriteError):
        await actuator.override("comp.big", 9, 60.0, by="bob")
    assert actuator.overrides() == {"comp.big": held}
    [failed] = events.of("comp.big", "failed")
    assert failed["source"] == "command:bob"


async def test_failed_command_on_a_tag_nobody_held_releases_nothing(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(manual_writes=True, write_timeout="2s")
    await plant.server.shutdown()
    with pytest.raises(WriteError):
        await actuator.override("comp.big", 9, 60.0, by="bob")
    clock.advance(1.0)
    await cycle(actuator, plant, clock)
    assert actuator.overrides() == {}
    assert events.of("comp.big", "released") == []


# --- values the tag's type cannot hold (issue 13, point 6) -------------------------------------


async def test_operator_write_of_a_fraction_to_an_integer_tag_is_refused(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(manual_writes=True)
    with pytest.raises(OutOfRangeError, match=r"comp\.big is int16: 1\.5 is not a whole number"):
        await actuator.override("comp.big", 1.5, 60.0)
    assert await plant.value("big") == 3
    assert actuator.overrides() == {}


async def test_operator_write_outside_the_integer_type_is_refused_before_writing(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(manual_writes=True)
    with pytest.raises(OutOfRangeError, match=r"40000 is outside the int16 range -32768\.\.32767"):
        await actuator.override("comp.big", 40000, 60.0)
    assert await plant.value("big") == 3
    assert events.events == []


async def test_rule_value_for_an_integer_tag_is_rounded_and_the_event_says_so(
    plant, clock, make_actuator, events
):
    actuator = make_actuator()
    results, _ = await cycle(actuator, plant, clock, win("big", 6.6))
    assert results["comp.big"].outcome is Outcome.WRITTEN
    assert await plant.value("big") == 7
    [event] = events.of("comp.big", "written")
    assert (event["requested"], event["new"]) == (6.6, 7)
    assert event["clamps"] == ["integer"]
    clock.advance(1.0)
    await plant.poll()
    await cycle(actuator, plant, clock, win("big", 6.6))
    clock.advance(5.0)
    await plant.poll()
    await cycle(actuator, plant, clock, win("big", 6.6))
    assert events.of("comp.big", "verify_failed") == []


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("big", 40000.0, "40000 is outside the int16 range -32768..32767"),
        ("big", True, "comp.big is int16: it takes a number, not True"),
        ("label", 5.0, "comp.label is string: 5.0 is not text"),
    ],
    ids=["outside-int16", "bool-to-number", "number-to-string"],
)
async def test_rule_value_the_tag_cannot_hold_is_refused_not_failed(
    plant, clock, make_actuator, events, tag, value, reason
):
    actuator = make_actuator()
    results, _ = await cycle(actuator, plant, clock, win(tag, value))
    assert results[f"comp.{tag}"].outcome is Outcome.REFUSED
    [event] = events.of(f"comp.{tag}")
    assert event["outcome"] == "refused"
    assert reason in event["error"]
    assert not any(check.startswith("verify") for check in event["checks"])
    assert await plant.value("big") == 3


# --- a device that is down (issue 13, point 15) ------------------------------------------------


async def test_failed_writes_while_the_device_is_down_are_published_once_with_repeats(
    plant, clock, make_actuator, events
):
    actuator = make_actuator(write_timeout="1s")
    await cycle(actuator, plant, clock)  # read since the start
    await plant.server.shutdown()
    await plant.poll()  # the driver has seen the device go
    for _ in range(5):
        await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
        clock.advance(1.0)
    [failed] = events.of("comp.setpoint_bar", "failed")
    assert "verify: pending" not in failed["checks"]
    assert failed["checks"] == [
        "writable: ok", "read: ok", "range: ok", "type: ok", "write: failed"
    ]
    assert failed["repeats"] == 0
    clock.advance(60.0)
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.5))
    summary = events.of("comp.setpoint_bar", "failed")[-1]
    assert summary["repeats"] == 4  # cycles 2-5 were not published; this is the sixth
    await cycle(actuator, plant, clock, win("setpoint_bar", 7.5, rule="other"))
    changed = events.of("comp.setpoint_bar", "failed")[-1]
    assert (changed["rule"], changed["repeats"]) == ("other", 0)


# --- a start is bumpless (issue 13, point 5) ---------------------------------------------------


async def test_tag_never_read_since_start_is_not_written(plant, clock, events):
    actuator = Actuator(
        write_limits([plant.device]),
        ActuationConfig.model_validate({"heartbeat": {"tag": "comp.heartbeat"}}),
        writers=plant.writers,
        table=TagTable(),  # nothing read yet
        clock=clock,
        events=events,
    )
    results, _ = await actuator.apply([win("setpoint_bar", 7.5)], {}, clock.monotonic())
    assert results["comp.setpoint_bar"].outcome is Outcome.DEFERRED
    assert results["comp.setpoint_bar"].reason == (
        "comp.setpoint_bar has not been read since the start: written once it has a good reading"
    )
    assert await plant.value("setpoint_bar") == pytest.approx(7.0)
    assert await plant.value("heartbeat") == 1  # heartbeats need no reading
    results, _ = await actuator.apply(
        [win("setpoint_bar", 7.5)], plant.table.snapshot(), clock.monotonic()
    )
    assert results["comp.setpoint_bar"].outcome is Outcome.WRITTEN


# --- refresh: a value held unchanged is written again ----------------------------------------


async def hold(
    actuator: Actuator,
    plant: ModbusPlant,
    clock: SteppedClock,
    decision: TagDecision,
    *,
    seconds: int,
    meddle_at: int,
    meddled: float,
) -> list[float]:
    """`decision` every second for `seconds` s, polled each second until `meddle_at`, when the
    device's value is changed to `meddled` behind the controller's back and no longer polled
    (the table still shows the value in place): the device's value after each cycle."""
    seen = []
    for t in range(seconds):
        if t == meddle_at:
            await plant.set("setpoint_bar", meddled)
        elif t < meddle_at:
            await plant.poll()
        await cycle(actuator, plant, clock, decision)
        seen.append(round(await plant.value("setpoint_bar"), 3))
        clock.advance(1.0)
    return seen


@pytest.mark.parametrize(("refresh", "rewritten"), [("10s", True), (None, False)])
async def test_a_value_held_unchanged_is_written_again_every_refresh_period(
    plant, clock, make_actuator, events, refresh, rewritten
):
    """With `refresh: 10s` the value in place goes to the device again 10 s after the last
    write, though nothing changed (a SunSpec battery's revert timer is renewed so); without,
    only changes are written. The rewrite is counted, not published."""
    outputs = {"comp.setpoint_bar": {"refresh": refresh}} if refresh else {}
    actuator = make_actuator(outputs=outputs)
    seen = await hold(
        actuator, plant, clock, win("setpoint_bar", 7.5), seconds=21, meddle_at=5, meddled=6.5
    )
    assert seen[:5] == [7.5] * 5  # t 0-4: written at t 0, in place
    assert seen[5:10] == [6.5] * 5  # t 5-9: changed behind our back, the table still shows 7.5
    assert seen[10:] == ([7.5] * 11 if rewritten else [6.5] * 11)  # t 10: refreshed
    assert len(events.of("comp.setpoint_bar", "written")) == 1
    assert actuator.stats.writes == 1
    assert actuator.stats.refreshes == (2 if rewritten else 0)  # t 10 and t 20


async def test_a_fallback_is_not_refreshed(plant, clock, make_actuator):
    """A rule that stopped writes its fallback once; the device's own timeout takes over."""
    actuator = make_actuator(outputs={"comp.setpoint_bar": {"refresh": "10s"}})
    fallback = Proposal("comp.setpoint_bar", 7.0, 0, "stopped", rule="r1", fallback=True)
    seen = await hold(
        actuator, plant, clock, TagDecision(fallback.tag, winner=fallback),
        seconds=15, meddle_at=3, meddled=6.5,
    )
    assert seen[3:] == [6.5] * 12


async def test_the_refresh_writes_the_operators_value_while_an_override_holds_the_tag(
    plant, clock, make_actuator
):
    actuator = make_actuator(manual_writes=True, outputs={"comp.setpoint_bar": {"refresh": "10s"}})
    await actuator.override("comp.setpoint_bar", 6.5, 60.0, by="alice")
    seen = await hold(
        actuator, plant, clock, win("setpoint_bar", 7.5), seconds=12, meddle_at=4, meddled=7.0
    )
    assert seen[:4] == [6.5] * 4
    assert seen[4:10] == [7.0] * 6
    assert seen[10:] == [6.5] * 2  # the operator's value, not the rule's


async def test_shadow_mode_refreshes_nothing(plant, clock, make_actuator):
    actuator = make_actuator(outputs={"comp.setpoint_bar": {"refresh": "2s"}})
    seen = await hold(
        actuator, plant, clock, win("setpoint_bar", 7.0, mode="shadow"),
        seconds=8, meddle_at=2, meddled=6.5,
    )
    assert seen == [7.0, 7.0] + [6.5] * 6
    assert actuator.stats.refreshes == 0

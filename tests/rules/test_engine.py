"""The rule engine with the real actuator and real Modbus devices (a meter and a compressor):
arbitration, stale and bad inputs, fallback and release, modes, crashing rules, the cycle
schedule and overruns, rule states, reloads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from closedloop import Cell, EventLog, SteppedClock, coil_tag, float_tag, start_plant

from controller.model import Sample
from controller.rules.config import ThresholdRuleConfig
from controller.rules.engine import RuleEngine, UnknownRuleError, arbitrate
from controller.rules.kinds import ThresholdRule
from controller.rules.rule import Now, Proposal, Rule, number

STATE = "edgecell/test/rules/{}/state"


class Constant(Rule):
    """A rule that proposes one value for one tag, optionally reading an input."""

    def __init__(
        self,
        name: str,
        value: float,
        *,
        tag: str = "comp.setpoint_bar",
        priority: int = 0,
        mode: str = "auto",
        inputs: Mapping[str, float | None] | None = None,
    ) -> None:
        self.name, self.kind, self.mode, self.priority = name, "constant", mode, priority
        self.value, self.tag = value, tag
        self.inputs = dict(inputs or {})
        self.outputs = (tag,)
        self.restarts = 0
        self.applied: list[Mapping[str, Any]] = []
        self.settled = asyncio.Event()

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        for tag in self.inputs:
            number(snapshot, tag)
        return [Proposal(self.tag, self.value, self.priority, f"constant {self.value}")]

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self.restarts += 1

    def settle(self, applied: Mapping[str, Any]) -> None:
        self.applied.append(dict(applied))
        self.settled.set()

    async def cycles_reach(self, count: int) -> None:
        """Wait until this rule has been through `count` cycles."""
        async with asyncio.timeout(10):
            while len(self.applied) < count:
                self.settled.clear()
                await self.settled.wait()


class Crashing(Constant):
    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        raise ZeroDivisionError("bug in the rule")


class Slow(Constant):
    """Takes 2.5 s of clock time per evaluation: every cycle overruns a 1 s period."""

    def __init__(self, name: str, value: float, clock: SteppedClock) -> None:
        super().__init__(name, value)
        self.clock = clock

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        self.clock.advance(2.5)
        return super().evaluate(snapshot, now)


FRESH = {"meter.power_kw": 5.0}


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def cell(clock: SteppedClock, tmp_path: Path) -> AsyncIterator[Cell]:
    compressor = await start_plant(
        [
            float_tag("setpoint_bar", 0, writable=True, min=6.0, max=8.0, fallback=7.0),
            float_tag("valve_pct", 2, writable=True, min=0.0, max=100.0),
            coil_tag("load", 0, writable=True),
        ],
        clock,
        tmp_path / "comp",
        name="comp",
        initial={"setpoint_bar": 7.0, "valve_pct": 50.0, "load": True},
    )
    meter = await start_plant(
        [float_tag("power_kw", 0)],
        clock,
        tmp_path / "meter",
        name="meter",
        initial={"power_kw": 42.0},
        table=compressor.table,
    )
    cell = Cell([compressor, meter])
    yield cell
    await cell.stop()


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def make_engine(cell: Cell, clock: SteppedClock, events: EventLog) -> Callable[..., RuleEngine]:
    def make(rules: list[Rule], **settings: Any) -> RuleEngine:
        actuator = cell.actuator(clock, events, **settings)
        return RuleEngine(
            rules, cell.table, actuator, clock, events=events, base_topic="edgecell/test"
        )

    return make


async def step(engine: RuleEngine, cell: Cell, clock: SteppedClock, seconds: float = 1.0) -> None:
    """Let time pass, poll the devices, run a cycle."""
    clock.advance(seconds)
    await cell.poll()
    await engine.cycle()


# --- arbitration -------------------------------------------------------------------------------


def test_arbitration_gives_the_tag_to_the_highest_priority():
    low = Proposal("comp.setpoint_bar", 6.5, 1, "", rule="low")
    high = Proposal("comp.setpoint_bar", 7.5, 5, "", rule="high")
    [decision] = arbitrate([low, high])
    assert decision.winner is high
    assert decision.losers == (low,)


def test_arbitration_breaks_a_priority_tie_by_rule_order():
    first = Proposal("comp.setpoint_bar", 6.5, 3, "", rule="first")
    second = Proposal("comp.setpoint_bar", 7.5, 3, "", rule="second")
    [decision] = arbitrate([first, second])
    assert decision.winner is first


def test_arbitration_never_lets_a_shadow_proposal_take_a_tag_from_an_auto_one():
    shadow = Proposal("comp.setpoint_bar", 7.5, 9, "", rule="trial", mode="shadow")
    auto = Proposal("comp.setpoint_bar", 6.5, 1, "", rule="live")
    [decision] = arbitrate([shadow, auto])
    assert (decision.winner, decision.shadow, decision.losers) == (auto, shadow, ())


# --- two rules on one tag ----------------------------------------------------------------------


async def test_higher_priority_rule_wins_the_tag_and_the_loser_is_reported(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("saver", 6.5, priority=1), Constant("safety", 7.5, priority=5)])
    await engine.cycle()
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(7.5)
    [event] = events.of("comp.setpoint_bar", "written")
    assert event["source"] == "rule:safety"
    assert event["overruled"] == [{"rule": "saver", "value": 6.5, "priority": 1, "mode": "auto"}]
    loser = events.retained[STATE.format("saver")]
    assert loser["results"]["comp.setpoint_bar"] == {"outcome": "overruled", "by": "safety"}


async def test_equal_priorities_go_to_the_rule_listed_first(cell, clock, make_engine):
    engine = make_engine([Constant("first", 6.5, priority=2), Constant("second", 7.5, priority=2)])
    await engine.cycle()
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(6.5)


async def test_shadow_rule_publishes_what_it_would_write_and_the_device_keeps_its_value(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("trial", 7.6, mode="shadow")])
    await engine.cycle()
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(7.0)
    [event] = events.of("comp.setpoint_bar")
    assert (event["outcome"], event["new"], event["source"]) == ("shadow", 7.6, "rule:trial")
    state = events.retained[STATE.format("trial")]
    assert state["mode"] == "shadow"
    assert state["results"]["comp.setpoint_bar"]["outcome"] == "shadow"


# --- stale and bad inputs ----------------------------------------------------------------------


async def test_stale_input_stops_the_rule_and_its_output_returns_to_the_fallback(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("saver", 6.4, inputs={"meter.power_kw": 5.0})])
    await engine.cycle()
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(6.4)
    clock.advance(6.0)  # the meter is not polled: its last reading ages
    await cell["comp"].poll()
    report = await engine.cycle()
    assert report.stopped == {
        "saver": "input meter.power_kw is stale: last reading 6s ago (max_age 5s)"
    }
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(7.0)
    fallback = events.of("comp.setpoint_bar", "written")[-1]
    assert fallback["source"] == "fallback:saver"
    assert fallback["reason"] == (
        "fallback: rule saver stopped: input meter.power_kw is stale: last reading 6s ago "
        "(max_age 5s)"
    )


async def test_meter_that_stops_answering_stops_the_rule_and_the_state_says_why(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("saver", 6.4, inputs=FRESH)])
    await engine.cycle()
    await cell["meter"].server.shutdown()
    await step(engine, cell, clock)
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(7.0)
    state = events.retained[STATE.format("saver")]
    assert state["inputs_ok"] is False
    assert state["reason"].startswith("input meter.power_kw is bad: ")


async def test_output_without_a_fallback_is_released_when_the_rule_stops(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("valve", 20.0, tag="comp.valve_pct", inputs=FRESH)])
    await engine.cycle()
    await cell["meter"].server.shutdown()
    await step(engine, cell, clock)
    await step(engine, cell, clock)
    [released] = events.of("comp.valve_pct", "released")
    assert released["source"] == "rule:valve"
    assert await cell["comp"].value("valve_pct") == pytest.approx(20.0)


async def test_rule_resumes_from_a_restart_when_its_inputs_are_fresh_again(
    cell, clock, make_engine
):
    rule = Constant("saver", 6.4, inputs=FRESH)
    engine = make_engine([rule])
    await engine.cycle()
    clock.advance(6.0)
    await engine.cycle()
    await step(engine, cell, clock)
    assert rule.restarts == 2
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(6.4)


async def test_input_never_read_stops_the_rule(cell, clock, make_engine):
    engine = make_engine([Constant("saver", 6.4, inputs={"meter.energy_kwh": None})])
    report = await engine.cycle()
    assert report.stopped == {"saver": "input meter.energy_kwh has no reading yet"}


async def test_rule_whose_inputs_were_never_read_proposes_no_fallback(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("saver", 6.4, inputs={"meter.energy_kwh": None})])
    report = await engine.cycle()
    assert report.proposals == ()
    assert events.retained[STATE.format("saver")]["reason"] == (
        "waiting for a first good reading: input meter.energy_kwh has no reading yet"
    )


async def test_rule_whose_input_device_is_down_from_the_start_leaves_its_output_alone(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("saver", 6.4, inputs=FRESH)])
    await cell["meter"].server.shutdown()
    await cell["comp"].set("setpoint_bar", 6.2)
    await step(engine, cell, clock)
    await step(engine, cell, clock)
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(6.2)
    assert events.of("comp.setpoint_bar") == []



# --- modes, errors, outputs --------------------------------------------------------------------


async def test_rule_switched_off_proposes_nothing(cell, clock, make_engine, events):
    engine = make_engine([Constant("saver", 6.4)])
    engine.set_mode("saver", "off")
    report = await engine.cycle()
    assert report.proposals == ()
    assert events.retained[STATE.format("saver")]["reason"] == "mode off"


async def test_mode_of_an_unknown_rule_is_refused(make_engine):
    engine = make_engine([Constant("saver", 6.4)])
    with pytest.raises(UnknownRuleError):
        engine.set_mode("nope", "off")


async def test_rule_that_raises_is_stopped_and_the_other_rules_still_run(
    cell, clock, make_engine
):
    engine = make_engine([Crashing("buggy", 6.1), Constant("valve", 30.0, tag="comp.valve_pct")])
    report = await engine.cycle()
    assert report.stopped["buggy"] == "rule error: ZeroDivisionError('bug in the rule')"
    assert await cell["comp"].value("valve_pct") == pytest.approx(30.0)
    assert engine.stats.rule_errors == 1


async def test_proposal_for_a_tag_the_rule_did_not_declare_is_dropped(cell, clock, make_engine):
    rule = Constant("sneaky", 30.0, tag="comp.valve_pct")
    rule.outputs = ("comp.setpoint_bar",)
    engine = make_engine([rule])
    report = await engine.cycle()
    assert report.proposals == ()
    assert await cell["comp"].value("valve_pct") == pytest.approx(50.0)


async def test_rule_is_told_the_value_its_output_actually_got(cell, clock, make_engine):
    rule = Constant("saver", 9.0)  # above the tag's max 8.0
    engine = make_engine([rule])
    await engine.cycle()
    assert rule.applied == [{"comp.setpoint_bar": 8.0}]


# --- a threshold rule switching a load ---------------------------------------------------------


async def test_threshold_rule_sheds_a_load_with_hysteresis_and_its_minimum_off_time(
    cell, clock, make_engine
):
    shed = ThresholdRule(
        ThresholdRuleConfig.model_validate(
            {
                "kind": "threshold",
                "name": "shed",
                "when": {"tag": "meter.power_kw", "above": 90.0, "release": 80.0},
                "for": "2s",
                "set": {"comp.load": False},
                "otherwise": {"comp.load": True},
            }
        )
    )
    engine = make_engine([shed], outputs={"comp.load": {"min_off": "20s"}})
    meter, load = cell["meter"], []

    async def second(power: float) -> None:
        await meter.set("power_kw", power)
        await step(engine, cell, clock)
        load.append(await cell["comp"].value("load"))

    for power in (95, 95, 95, 85, 70):  # shed after 2 s; 85 is inside the hysteresis band
        await second(power)
    assert load == [True, True, False, False, False]  # 70 is released, but min_off holds
    for _ in range(18):
        await second(70)
    assert load[-3:] == [False, False, True]  # back on 20 s after it went off


# --- the schedule -------------------------------------------------------------------------------


async def test_run_cycles_once_per_period_of_the_clock(cell, clock, make_engine):
    rule = Constant("saver", 6.4)
    engine = make_engine([rule])
    async with asyncio.TaskGroup() as group:
        task = group.create_task(engine.run())
        await rule.cycles_reach(1)
        clock.advance(0.9)
        await asyncio.sleep(0.05)
        assert engine.stats.cycles == 1  # not due yet
        for due in (2, 3, 4):
            clock.advance(0.1 if due == 2 else 1.0)
            await rule.cycles_reach(due)
        task.cancel()
    assert engine.stats.cycles == 4


async def test_cycle_overrun_is_counted_and_missed_cycles_are_skipped_not_queued(
    cell, clock, make_engine
):
    rule = Slow("slow", 6.4, clock)
    engine = make_engine([rule])
    async with asyncio.TaskGroup() as group:
        task = group.create_task(engine.run())
        await rule.cycles_reach(1)  # ran 0 s to 2.5 s: the slots at 1 s and 2 s are missed
        clock.advance(0.5)  # the next slot, 3 s
        await rule.cycles_reach(2)
        task.cancel()
    assert engine.stats.cycles == 2
    assert engine.stats.overruns == 2
    assert engine.stats.skipped_cycles == 4


# --- rule states and reloads ------------------------------------------------------------------


async def test_rule_state_is_published_retained_with_mode_outputs_and_reason(
    cell, clock, make_engine, events
):
    engine = make_engine([Constant("saver", 6.4, inputs=FRESH)])
    await engine.cycle()
    state = events.retained[STATE.format("saver")]
    assert {k: state[k] for k in ("mode", "active", "inputs_ok", "reason", "outputs")} == {
        "mode": "auto",
        "active": True,
        "inputs_ok": True,
        "reason": "constant 6.4",
        "outputs": {"comp.setpoint_bar": 6.4},
    }


async def test_reload_keeps_an_operators_mode_and_clears_removed_rules(
    cell, clock, make_engine, events
):
    saver, valve = Constant("saver", 6.4), Constant("valve", 30.0, tag="comp.valve_pct")
    engine = make_engine([saver, valve])
    engine.set_mode("saver", "shadow")
    await engine.cycle()
    engine.replace_rules([Constant("saver", 6.4)])
    await engine.cycle()
    assert engine.rule("saver").mode == "shadow"
    assert events.retained[STATE.format("valve")] is None

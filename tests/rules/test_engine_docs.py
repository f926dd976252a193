"""docs/mqtt-topics.md "Closed-loop payloads" stays true: its rule-state and write-event
examples have exactly the fields the engine and the actuator publish."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from closedloop import EventLog, SteppedClock

from controller.actuation import Actuator, Outcome, WriteResult
from controller.configtypes import WriteLimits
from controller.rules.config import ActuationConfig, ScheduleRuleConfig
from controller.rules.engine import RuleEngine
from controller.rules.kinds import ScheduleRule
from controller.tagtable import TagTable

DOC = Path(__file__).parents[2] / "docs" / "mqtt-topics.md"
EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\n```json\n(.*?)\n```", re.S)


def example(name: str) -> dict:
    return {found: orjson.loads(body) for found, body in EXAMPLE.findall(DOC.read_text())}[name]


def no_device(device: str):
    raise KeyError(device)


def test_write_event_example_has_the_fields_of_a_written_event():
    result = WriteResult("comp.sp", Outcome.WRITTEN, "rule:r", 7.4, 7.3, 7.2, rule="r")
    assert set(example("write-event-full")) == set(result.event())
    assert set(example("write-event-fallback")) == set(result.event())


def test_failed_write_event_example_has_the_fields_of_a_failed_event():
    result = WriteResult("comp.sp", Outcome.FAILED, "command:alice", 6.8, 6.8, None, reason="x")
    assert set(example("write-event-failed")) == set(result.event(repeats=59))
    assert example("write-event-failed")["checks"][-1] == "write: failed"


def test_refused_write_event_adds_the_error():
    result = WriteResult("comp.sp", Outcome.REFUSED, "rule:r", 7.4, None, 7.2, reason="no")
    assert set(result.event()) - set(example("write-event-full")) == {"error"}


async def test_rule_state_example_has_the_fields_the_engine_publishes():
    rule = ScheduleRule(
        ScheduleRuleConfig.model_validate(
            {
                "kind": "schedule",
                "name": "base",
                "mode": "shadow",
                "schedule": {"timezone": "UTC", "default": "always"},
                "set": {"always": {"comp.sp": 7.0}},
            }
        )
    )
    events, clock = EventLog(), SteppedClock()
    actuator = Actuator(
        {"comp.sp": WriteLimits(writable=True)},
        ActuationConfig(),
        writers=no_device,
        table=TagTable(),
        clock=clock,
        events=events,
    )
    await RuleEngine([rule], TagTable(), actuator, clock, events=events).cycle()
    [state] = events.retained.values()
    assert set(example("rule-state-full")) == set(state)
    assert set(example("rule-state-full")["results"]["compressor.setpoint_bar"]) <= {
        "outcome", "value", "by", "clamps", "reason"
    }

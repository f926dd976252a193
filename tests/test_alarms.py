"""The alarm board: an alarm raises, is acknowledged, clears and is raised again as a new
episode; every change is published retained on `{base}/alarms/{alarm}` in the documented shape;
operators' acknowledgements; rules switched off leave no active alarm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from closedloop import SteppedClock
from pydantic import ValidationError

from controller.actuation import Actuator
from controller.alarms import (
    ESTIMATE_INTERVAL_MS,
    AcknowledgeCommand,
    AlarmBoard,
    AlarmCondition,
    AlarmState,
    UnknownAlarmError,
)
from controller.mqtt.commands import CommandHandler
from controller.rules.config import ActuationConfig
from controller.rules.engine import RuleEngine
from controller.tagtable import TagTable

LEAK = "water.leak"
TOPIC = "edgecell/cell-1/alarms/water.leak"


class Retained:
    """An AlarmSink that keeps every retained payload, decoded, in order."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish_retained(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, orjson.loads(payload)))

    @property
    def last(self) -> dict[str, Any]:
        return self.published[-1][1]


def condition(active: bool, leak_m3_h: float = 0.8) -> AlarmCondition:
    return AlarmCondition(
        name=LEAK,
        active=active,
        message="probable leak" if active else "",
        estimate={"leak_m3_h": leak_m3_h} if active else {},
        rule="water",
    )


def board() -> tuple[AlarmBoard, Retained]:
    sink = Retained()
    return AlarmBoard(sink, base_topic="edgecell/cell-1"), sink


def test_an_active_condition_raises_the_alarm_retained() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    topic, payload = sink.published[-1]
    assert topic == TOPIC
    assert payload["state"] == "active"
    assert payload["first"] == payload["last"] == 1000
    assert payload["estimate"] == {"leak_m3_h": 0.8}
    assert payload["acknowledged"] is False


def test_an_inactive_condition_raises_nothing() -> None:
    alarms, sink = board()
    alarms.observe([condition(False)], 1000)
    assert sink.published == []
    assert LEAK not in alarms


def test_acknowledged_by_an_operator() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    alarms.acknowledge(LEAK, "anna", 2000)
    assert sink.last["state"] == "acknowledged"
    assert (sink.last["acked_by"], sink.last["acked_at"]) == ("anna", 2000)


def test_clears_when_the_condition_goes() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    alarms.acknowledge(LEAK, "anna", 2000)
    alarms.observe([condition(True)], 3000)
    alarms.observe([condition(False)], 4000)
    assert sink.last["state"] == "cleared"
    assert (sink.last["first"], sink.last["last"], sink.last["cleared"]) == (1000, 3000, 4000)
    assert sink.last["acknowledged"] is True
    assert alarms.active() == []


def test_raised_again_after_clearing_is_a_new_unacknowledged_episode() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    alarms.acknowledge(LEAK, "anna", 2000)
    alarms.observe([condition(False)], 3000)
    alarms.observe([condition(True)], 5000)
    assert sink.last["state"] == "active"
    assert sink.last["first"] == 5000
    assert sink.last["acknowledged"] is False
    assert sink.last["raised_count"] == 2


def test_a_cleared_alarm_not_yet_acknowledged_can_be_acknowledged() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    alarms.observe([condition(False)], 2000)
    assert sink.last["acknowledged"] is False
    alarms.acknowledge(LEAK, "anna", 3000)
    assert sink.last["state"] == "cleared"
    assert sink.last["acknowledged"] is True


def test_acknowledging_twice_publishes_once() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    alarms.acknowledge(LEAK, "anna", 2000)
    alarms.acknowledge(LEAK, "ben", 3000)
    assert len(sink.published) == 2
    assert alarms[LEAK].acked_by == "anna"


def test_acknowledging_an_unknown_alarm_is_refused() -> None:
    alarms, _ = board()
    with pytest.raises(UnknownAlarmError, match="unknown alarm 'nope'"):
        alarms.acknowledge("nope", "anna", 1000)


def test_a_steady_active_alarm_is_not_republished_every_cycle() -> None:
    alarms, sink = board()
    for second in range(120):
        alarms.observe([condition(True)], 1000 + second * 1000)
    assert len(sink.published) == 1
    assert alarms[LEAK].last_ms == 120_000


def test_a_changed_estimate_is_republished_at_most_once_a_minute() -> None:
    alarms, sink = board()
    for second in range(121):
        alarms.observe([condition(True, 0.8 + second / 1000)], second * 1000)
    assert [p["ts"] for _, p in sink.published] == [0, ESTIMATE_INTERVAL_MS, 120_000]


class Rule:
    """The two attributes and the method of an AlarmSource."""

    def __init__(self, mode: str, active: bool) -> None:
        self.name = "water"
        self.mode = mode
        self.active = active

    def alarm_conditions(self) -> list[AlarmCondition]:
        return [condition(self.active)]


def test_observe_rules_takes_each_rules_conditions() -> None:
    alarms, _ = board()
    alarms.observe_rules([Rule("auto", True), object()], 1000)
    assert alarms.active() == [LEAK]


def test_a_rule_switched_off_clears_its_alarms() -> None:
    alarms, sink = board()
    rule = Rule("auto", True)
    alarms.observe_rules([rule], 1000)
    rule.mode = "off"
    alarms.observe_rules([rule], 2000)
    assert sink.last["state"] == "cleared"
    assert alarms[LEAK].state is AlarmState.CLEARED


def test_republish_sends_every_alarm_again() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    alarms.republish(9000)
    assert sink.published[-1] == (TOPIC, {**sink.published[0][1], "ts": 9000})


def test_acknowledge_command_payload() -> None:
    assert AcknowledgeCommand.model_validate({"alarm": LEAK}).by == "operator"
    with pytest.raises(ValidationError):
        AcknowledgeCommand.model_validate({"alarm": LEAK, "who": "anna"})


def test_documented_example_has_the_fields_of_the_payload() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "mqtt-topics.md").read_text(encoding="utf-8")
    example = re.search(r"<!-- example: alarm -->\n```json\n(.*?)\n```", doc, re.S)
    assert example is not None
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    assert set(orjson.loads(example.group(1))) == set(sink.last)


# --- the operator's command -------------------------------------------------------------------


class Answers:
    """A Responder that keeps the answers, decoded."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []

    def respond(self, request_properties: Any, payload: bytes, fallback_topic: Any = None) -> None:
        self.answers.append(orjson.loads(payload))


def no_driver(device: str) -> Any:
    raise KeyError(device)


async def nothing() -> None:
    return None


async def accepted() -> bool:
    return True


def command_handler(alarms: AlarmBoard, answers: Answers) -> CommandHandler:
    clock = SteppedClock()
    table = TagTable()
    actuator = Actuator({}, ActuationConfig(), writers=no_driver, table=table, clock=clock)
    return CommandHandler(
        engine=RuleEngine([], table, actuator, clock),
        actuator=actuator,
        responder=answers,
        base_topic="edgecell/cell-1",
        on_reload=accepted,
        on_rebirth=nothing,
        alarms=alarms,
    )


async def test_ack_command_acknowledges_the_alarm_and_answers() -> None:
    alarms, sink = board()
    alarms.observe([condition(True)], 1000)
    answers = Answers()
    await command_handler(alarms, answers)(
        "edgecell/cell-1/cmd/alarms/ack", b'{"alarm": "water.leak", "by": "anna"}', None
    )
    assert answers.answers == [
        {"ok": True, "command": "alarms/ack", "alarm": LEAK, "state": "acknowledged", "by": "anna"}
    ]
    assert sink.last["state"] == "acknowledged"


async def test_ack_command_for_an_unknown_alarm_is_refused() -> None:
    alarms, _ = board()
    answers = Answers()
    await command_handler(alarms, answers)(
        "edgecell/cell-1/cmd/alarms/ack", b'{"alarm": "x"}', None
    )
    assert answers.answers[0]["ok"] is False
    assert answers.answers[0]["error"] == "unknown alarm 'x'"

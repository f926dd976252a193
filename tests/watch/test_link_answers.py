"""Which answers on `{base}/cmd/response` the console takes as the answer to its command: its own
correlation data (MQTT 5), or, from a gateway that answers without it (3.1.1), the command's
name; another console's answer and garbage are left alone."""

from __future__ import annotations

import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.watch.link import BrokerSettings, WatchLink, _Pending
from controller.watch.state import CellState


def answer_properties(correlation: bytes) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.CorrelationData = correlation
    return properties


def link_waiting_for(command: str) -> WatchLink:
    link = WatchLink(BrokerSettings(host="h", port=1, base="b"), CellState("b"))
    link._pending["mine"] = _Pending(command, time.monotonic())
    return link


def test_an_answer_with_our_correlation_data_is_shown() -> None:
    link = link_waiting_for("alarms/ack")
    link._answer(b'{"ok": true, "command": "alarms/ack", "alarm": "a"}', answer_properties(b"mine"))
    (answer,) = link.state.answers
    assert (answer.command, answer.ok, answer.text) == ("alarms/ack", True, "ok: alarm a")


def test_another_consoles_answer_and_garbage_are_left_alone() -> None:
    link = link_waiting_for("alarms/ack")
    link._answer(b'{"ok": true, "command": "reload"}', answer_properties(b"theirs"))
    link._answer(b"not json", None)
    link._answer(b"[1]", None)
    link._answer(b"{" * 70_000, None)
    assert not link.state.answers
    assert "mine" in link._pending


def test_a_31_gateways_answer_is_matched_by_the_command_it_names() -> None:
    link = link_waiting_for("rules/air/mode")
    link._answer(b'{"ok": false, "command": "rules/air/mode", "error": "[/] no"}', None)
    (answer,) = link.state.answers
    assert (answer.ok, answer.text) == (False, "refused: [/] no")
    assert not link._pending


def test_no_answer_within_the_timeout_is_said() -> None:
    link = link_waiting_for("alarms/ack")
    link._pending["mine"].sent -= 11
    link.expire()
    (answer,) = link.state.answers
    assert answer.ok is False
    assert "no answer within 10 s" in answer.text

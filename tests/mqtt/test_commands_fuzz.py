"""Generated command payloads at the command handler, with the real actuator and a real Modbus
device behind it: every one is answered exactly once with a small answer, nothing escapes, a
refused command changes nothing, and the device never leaves the tag's limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from closedloop import ModbusPlant, SteppedClock, float_tag, start_plant
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from controller.actuation import Actuator
from controller.mqtt.commands import CommandHandler
from controller.rules.engine import RuleEngine

BASE = "edgecell/cell-1"
COMMANDS = ["write", "override/clear", "rules/base/mode", "rules/x/mode", "reload", "x" * 300]

# Short text, and long runs of one character (a name or value of a few thousand characters).
texts = st.text(max_size=40) | st.builds(
    lambda char, count: char * count, st.characters(), st.integers(100, 3000)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=20,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "tag": st.sampled_from(["comp.setpoint_bar", "comp.header_bar", "nope.x", "a" * 500])
        | json_values,
        "value": st.floats(5, 9) | json_values,
        "ttl": st.sampled_from(["1min", "0s", "10d", "1"]) | json_values,
        "by": st.text(max_size=80) | json_values,
        "ts": st.integers() | json_values,
        "mode": st.sampled_from(["auto", "shadow", "off", "manual"]) | json_values,
    },
)


def dumps(data: Any) -> bytes:
    # The standard library's JSON: any integer, and NaN/Infinity tokens as some clients send.
    return json.dumps(data).encode()


payloads = (
    fields.map(dumps)
    | st.dictionaries(texts, json_values, max_size=30).map(dumps)
    | st.binary(max_size=2000)
)


@dataclass
class Answers:
    """The Responder: keeps every answer as it was sent."""

    sent: list[bytes]

    def respond(self, request_properties: Any, payload: bytes, fallback_topic: Any = None) -> None:
        self.sent.append(payload)


@dataclass
class Rig:
    plant: ModbusPlant
    actuator: Actuator
    handler: CommandHandler
    answers: Answers


async def accepted() -> bool:
    return True


async def nothing() -> None:
    return None


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = SteppedClock()
    plant = await start_plant(
        [
            float_tag("setpoint_bar", 0, writable=True, min=6.0, max=8.0, max_step=0.5),
            float_tag("header_bar", 2),
        ],
        clock,
        tmp_path / "comp",
        initial={"setpoint_bar": 7.0, "header_bar": 6.8},
    )
    actuator = plant.actuator(clock, base_topic=BASE, manual_writes=True)
    engine = RuleEngine([], plant.table, actuator, clock, base_topic=BASE)
    answers = Answers([])
    handler = CommandHandler(
        engine=engine,
        actuator=actuator,
        responder=answers,
        base_topic=BASE,
        on_reload=accepted,
        on_rebirth=nothing,
    )
    yield Rig(plant, actuator, handler, answers)
    await plant.stop()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=st.sampled_from(COMMANDS), payload=payloads)
async def test_generated_commands_are_answered_small_and_never_write_unchecked(
    rig: Rig, command: str, payload: bytes
) -> None:
    before = await rig.plant.value("setpoint_bar")
    held = dict(rig.actuator.overrides())
    count = len(rig.answers.sent)

    await rig.handler(f"{BASE}/cmd/{command}", payload, None)

    assert len(rig.answers.sent) == count + 1
    sent = rig.answers.sent[-1]
    target(float(len(sent)), label="answer bytes")  # search towards big answers
    assert len(sent) < 1200, sent[:300]
    answer = orjson.loads(sent)
    after = await rig.plant.value("setpoint_bar")
    assert 6.0 <= after <= 8.0
    if not answer["ok"]:
        assert after == before
        assert rig.actuator.overrides() == held
    await rig.plant.poll()

"""The engine and actuator publishing through the real MQTT publisher to a real mosquitto:
shadow writes and stale-input fallbacks as an operator sees them on the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from closedloop import Cell, SteppedClock, float_tag, start_plant

from controller.clock import SYSTEM_CLOCK
from controller.mqtt import topics
from controller.mqtt.config import MqttConfig
from controller.mqtt.publisher import MqttPublisher
from controller.rules.config import ThresholdRuleConfig
from controller.rules.engine import RuleEngine
from controller.rules.kinds import ThresholdRule


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def cell(clock: SteppedClock, tmp_path: Path) -> AsyncIterator[Cell]:
    compressor = await start_plant(
        [float_tag("setpoint_bar", 0, writable=True, min=6.0, max=8.0, fallback=7.0)],
        clock,
        tmp_path / "comp",
        name="comp",
        initial={"setpoint_bar": 7.0},
    )
    meter = await start_plant(
        [float_tag("power_kw", 0)],
        clock,
        tmp_path / "meter",
        name="meter",
        initial={"power_kw": 95.0},
        table=compressor.table,
    )
    cell = Cell([compressor, meter])
    yield cell
    await cell.stop()


@pytest.fixture
async def publisher(
    mosquitto: Any, mqtt_names: Any, tmp_path: Path
) -> AsyncIterator[MqttPublisher]:
    config = MqttConfig.model_validate({"host": mosquitto.host, "port": mosquitto.port})
    async with MqttPublisher(
        config,
        base_topic=mqtt_names.topic("gw"),
        client_id=mqtt_names.client_id("gw"),
        state_dir=tmp_path / "state",
        clock=SYSTEM_CLOCK,
        birth=topics.birth(version="0", config_hash="0", started=0),
    ) as publisher:
        yield publisher


def shed_rule(mode: str) -> ThresholdRule:
    """Lower the air pressure setpoint while the site draws 90 kW or more."""
    return ThresholdRule(
        ThresholdRuleConfig.model_validate(
            {
                "kind": "threshold",
                "name": "shed",
                "mode": mode,
                "max_age": "5s",
                "when": {"tag": "meter.power_kw", "above": 90.0, "release": 80.0},
                "set": {"comp.setpoint_bar": 6.5},
            }
        )
    )


def engine_for(cell: Cell, clock: SteppedClock, publisher: MqttPublisher, mode: str) -> RuleEngine:
    base = publisher.base_topic
    actuator = cell.actuator(clock, publisher, base_topic=base)
    return RuleEngine(
        [shed_rule(mode)], cell.table, actuator, clock, events=publisher, base_topic=base
    )


async def test_shadow_rule_is_seen_on_the_broker_and_the_device_is_unchanged(
    cell, clock, publisher, mosquitto, mqtt_collect
):
    base = publisher.base_topic
    writes = await mqtt_collect(mosquitto, topics.write_events(base))
    engine = engine_for(cell, clock, publisher, "shadow")
    await engine.cycle()
    await writes.wait_count(1)
    [event] = writes.payloads()
    assert (event["outcome"], event["new"], event["source"]) == ("shadow", 6.5, "rule:shed")
    state = await mqtt_collect(mosquitto, topics.rule_state(base, "shed"))
    await state.wait_count(1)
    assert state.messages[0].retain
    assert state.payloads()[0]["results"]["comp.setpoint_bar"]["outcome"] == "shadow"
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(7.0)


async def test_meter_that_stops_answering_sends_the_output_to_its_fallback_with_the_reason(
    cell, clock, publisher, mosquitto, mqtt_collect
):
    writes = await mqtt_collect(mosquitto, topics.write_events(publisher.base_topic))
    engine = engine_for(cell, clock, publisher, "auto")
    await engine.cycle()
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(6.5)
    await cell["meter"].server.shutdown()
    clock.advance(1.0)
    await cell.poll()
    await engine.cycle()
    await writes.wait_count(2)
    fallback = writes.payloads()[1]
    assert (fallback["outcome"], fallback["new"], fallback["source"]) == (
        "written",
        7.0,
        "fallback:shed",
    )
    assert fallback["reason"].startswith("fallback: rule shed stopped: input meter.power_kw is bad")
    assert await cell["comp"].value("setpoint_bar") == pytest.approx(7.0)

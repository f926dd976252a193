"""OPC UA Alarms & Conditions end to end: the simulated chiller PLC raises a real
OffNormalAlarm condition; the gateway (the real runtime) publishes the event on
`events/opcua/{device}`, raises the retained `alarms/...` within a publishing interval,
acknowledges it on the PLC through `cmd/alarms/ack`, and clears it when the PLC does. A
condition already active before the gateway connects arrives through ConditionRefresh.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime
from drivers.sim.opcua_server import SimOpcUaServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALARM = "opcua.chiller-plc.Chiller.SupplyTemperatureHigh"
POINT = "chiller.supply_temp_c"

CONFIG = """
gateway: {{id: ua-alarms, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {broker}, protocol: "5"}}
devices:
  - name: chiller-plc
    driver: opcua
    endpoint: {endpoint}
    publishing_interval: 100ms
    tags:
      - {{name: supply_c, node: "ns=2;s=Chiller.SupplyTemperature"}}
    events:
      - {{types: [OffNormalAlarmType], min_severity: {severity}}}
"""


def _runtime(tmp_path: Path, sim: SimOpcUaServer, broker: Any, severity: int = 100) -> Runtime:
    text = CONFIG.format(
        state=tmp_path / "state", broker=broker.port, endpoint=sim.endpoint, severity=severity
    )
    return Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))


class Watch:
    """Everything the gateway publishes on alarms/# and events/opcua/#, with arrival times."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[tuple[float, str, dict[str, Any]]] = []

    async def until(self, topic_part: str, check: Any, within: float = 10.0) -> dict[str, Any]:
        for _, topic, payload in self.seen:
            if topic_part in topic and check(payload):
                return payload
        async with asyncio.timeout(within):
            async for message in self.client.messages:
                payload = orjson.loads(message.payload)  # type: ignore[arg-type]
                self.seen.append((time.monotonic(), str(message.topic), payload))
                if topic_part in str(message.topic) and check(payload):
                    return payload  # type: ignore[no-any-return]
        raise AssertionError(topic_part)


async def _command(client: aiomqtt.Client, topic: str, body: dict[str, Any]) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "test/ua-alarms/answers"
    await client.publish(topic, orjson.dumps(body), qos=1, properties=props)


async def test_condition_is_raised_acknowledged_on_the_plc_and_cleared(
    tmp_path: Path, sim: SimOpcUaServer, mosquitto: Any
) -> None:
    runtime = _runtime(tmp_path, sim, mosquitto)
    daemon = asyncio.create_task(runtime.run())
    try:
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, timeout=5, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe("edgecell/ua-alarms/alarms/#", qos=1)
            await client.subscribe("edgecell/ua-alarms/events/opcua/#", qos=1)
            await client.subscribe("test/ua-alarms/answers", qos=1)
            watch = Watch(client)
            await _connected(runtime)

            raised_at = time.monotonic()
            await sim.set_value(POINT, 16.5)
            alarm = await watch.until("/alarms/", lambda p: p["state"] == "active")
            latency = watch.seen[-1][0] - raised_at
            assert alarm["alarm"] == ALARM
            assert alarm["origin"]["severity"] == 700
            assert alarm["origin"]["source"] == "Chiller"
            assert alarm["origin"]["device"] == "chiller-plc"
            assert "supply temperature high" in alarm["message"]
            assert alarm["first"] > 1_600_000_000_000
            print(f"condition to retained alarm: {latency * 1000:.0f} ms")
            assert latency < 1.0, latency  # one 100 ms publishing interval, plus the broker
            event = await watch.until(
                "/events/opcua/chiller-plc", lambda p: p.get("condition", {}).get("active")
            )
            assert event["alarm"] == ALARM
            assert event["condition"]["acked"] is False
            assert event["severity"] == 700

            await _command(
                client, "edgecell/ua-alarms/cmd/alarms/ack", {"alarm": ALARM, "by": "alice"}
            )
            answer = await watch.until("answers", lambda p: p.get("command") == "alarms/ack")
            assert answer["ok"] is True, answer
            assert answer["state"] == "acknowledged"
            assert sim.conditions.state("SupplyTemperatureHigh") == (True, True)
            assert "alice" in sim.conditions.acknowledgements("SupplyTemperatureHigh")[-1]
            acked = await watch.until("/alarms/", lambda p: p["state"] == "acknowledged")
            assert acked["acked_by"] == "alice"

            # Twice is harmless: answered ok, the PLC is not asked again.
            await _command(
                client, "edgecell/ua-alarms/cmd/alarms/ack", {"alarm": ALARM, "by": "bob"}
            )
            again = await watch.until(
                "answers", lambda p: p.get("command") == "alarms/ack" and p is not answer
            )
            assert again["ok"] is True
            assert len(sim.conditions.acknowledgements("SupplyTemperatureHigh")) == 1

            await sim.set_value(POINT, 7.0)
            cleared = await watch.until("/alarms/", lambda p: p["state"] == "cleared")
            assert cleared["acknowledged"] is True
            assert sim.conditions.state("SupplyTemperatureHigh") == (False, True)
    finally:
        runtime.request_stop()
        await asyncio.wait_for(daemon, 10)


async def test_a_condition_active_before_the_gateway_connects_arrives_by_refresh(
    tmp_path: Path, sim: SimOpcUaServer, mosquitto: Any
) -> None:
    await sim.set_value(POINT, 17.0)  # raised while no gateway listens
    runtime = _runtime(tmp_path, sim, mosquitto)
    daemon = asyncio.create_task(runtime.run())
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as client:
            await client.subscribe("edgecell/ua-alarms/alarms/#", qos=1)
            watch = Watch(client)
            alarm = await watch.until("/alarms/", lambda p: p["state"] == "active")
            assert alarm["alarm"] == ALARM
            assert alarm["acknowledged"] is False
    finally:
        runtime.request_stop()
        await asyncio.wait_for(daemon, 10)
        await sim.set_value(POINT, 7.0)
        # leave the shared server's condition acknowledged and inactive for the next test
        await _ack_on_server(sim)


async def test_severity_below_the_filter_is_not_delivered(
    tmp_path: Path, sim: SimOpcUaServer, mosquitto: Any
) -> None:
    runtime = _runtime(tmp_path, sim, mosquitto, severity=800)  # the alarm is 700
    daemon = asyncio.create_task(runtime.run())
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as client:
            await client.subscribe("edgecell/ua-alarms/alarms/#", qos=1)
            await client.subscribe("edgecell/ua-alarms/events/opcua/#", qos=1)
            await _connected(runtime)
            await sim.set_value(POINT, 16.5)
            watch = Watch(client)
            with pytest.raises(TimeoutError):
                await watch.until("/", lambda p: True, within=1.5)
    finally:
        runtime.request_stop()
        await asyncio.wait_for(daemon, 10)
        await sim.set_value(POINT, 7.0)
        await _ack_on_server(sim)


async def _connected(runtime: Runtime) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                driver = runtime.driver("chiller-plc")
            except KeyError:
                driver = None
            if driver is not None and driver.status().state.value == "connected":
                await asyncio.sleep(0.3)  # the ConditionRefresh after connecting
                return
            await asyncio.sleep(0.05)


async def _ack_on_server(sim: SimOpcUaServer) -> None:
    """Acknowledge the shared server's condition from the server side, as its HMI would."""
    conditions = sim.conditions
    for condition in conditions._by_node.values():
        if not condition.acked:
            condition.acked = True
            await conditions._send(condition, "reset by the test")

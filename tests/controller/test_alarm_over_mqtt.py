"""An alarm raised by a rule appears retained on MQTT, is acknowledged by an operator command,
and clears; through the real runtime, a real Modbus server and a real mosquitto.

The cooling-tower rule's bleed time limit: the tower's conductivity stays high, the bleed valve
stays open past `max_open`, and the rule raises `..._bleed_time` (a stuck valve or a failed
conductivity probe on a real tower). When the conductivity falls, the valve closes and the alarm
clears.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.points import DictPoints, PointValue
from drivers.sim.scenario import ModbusDeviceSpec

# A tower PLC's process image (the server in front of it is real).
TOWER_POINTS: dict[str, PointValue] = {
    "tower.conductivity_us_cm": 1500.0,
    "tower.blowdown_valve_pct": 0.0,
}


SPEC = ModbusDeviceSpec(
    name="tower",
    port=0,
    registers=[
        {"point": "tower.conductivity_us_cm", "address": 0},
        {"point": "tower.blowdown_valve_pct", "address": 100},
    ],
)

CONFIG = """
gateway: {{id: alarm-e2e, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {broker}}}
devices:
  - name: tower
    driver: modbus
    link: {{transport: tcp, host: 127.0.0.1, port: {port}}}
    poll_interval: 200ms
    timeout: 500ms
    tags:
      - {{name: conductivity_us_cm, address: 0, type: float32}}
      - {{name: valve_pct, address: 100, type: float32, writable: true, min: 0, max: 100}}
actuation:
  cycle: 200ms
  verify_timeout: 2s
rules:
  - name: blowdown
    kind: cooling_tower_blowdown
    conductivity: tower.conductivity_us_cm
    valve: tower.valve_pct
    limit_us_cm: 2400
    margin_us_cm: 100
    deadband_us_cm: 200
    max_open: 2s
"""


async def test_alarm_is_raised_acknowledged_and_cleared_on_mqtt(
    tmp_path: Path, mosquitto: Any
) -> None:
    tower = DictPoints(TOWER_POINTS)
    async with SimModbusServer(tower, [SPEC], port=0) as server:
        text = CONFIG.format(state=tmp_path / "state", broker=mosquitto.port, port=server.port)
        runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))
        daemon = asyncio.create_task(runtime.run())
        states: list[dict[str, Any]] = []
        try:
            async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as client:
                await client.subscribe("edgecell/alarm-e2e/alarms/#", qos=1)

                async def wait_for(state: str) -> dict[str, Any]:
                    async with asyncio.timeout(15):
                        async for message in client.messages:
                            states.append(orjson.loads(message.payload))  # type: ignore[arg-type]
                            if states[-1]["state"] == state:
                                return states[-1]
                    raise AssertionError(state)

                tower.points["tower.conductivity_us_cm"] = 2450.0  # over limit - margin
                await server.refresh()
                raised = await wait_for("active")
                assert tower.points["tower.blowdown_valve_pct"] == 100.0
                assert raised["rule"] == "blowdown"
                assert raised["first"] <= raised["last"]
                assert raised["estimate"]

                await client.publish(
                    "edgecell/alarm-e2e/cmd/alarms/ack",
                    orjson.dumps({"alarm": raised["alarm"], "by": "test"}),
                    qos=1,
                )
                acknowledged = await wait_for("acknowledged")
                assert acknowledged["acked_by"] == "test"

                tower.points["tower.conductivity_us_cm"] = 1800.0  # under the close level
                await server.refresh()
                cleared = await wait_for("cleared")
                assert cleared["acknowledged"] is True
                assert tower.points["tower.blowdown_valve_pct"] == 0.0
        finally:
            runtime.request_stop()
            await asyncio.wait_for(daemon, 10)

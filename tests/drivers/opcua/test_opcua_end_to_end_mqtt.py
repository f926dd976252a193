"""End to end: the simulated OPC UA PLC -> `edgecell run` (a real process) -> mosquitto.

Subscribed and polled tags of every type the PLC serves arrive on MQTT with the plant's values,
JSON types that match the node types, good quality and the server's source timestamp; a change
in the plant is published.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
import yaml

from drivers.sim.opcua_server import SimOpcUaServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[3]
TAGS = [
    # (tag, node, mode, plant point)
    ("pressure_bar", "ns=2;s=Compressor.Pressure", "subscribe", "compressor.pressure_bar"),
    ("motor_power_kw", "ns=2;s=Compressor.MotorPower", "poll", "compressor.motor_power_kw"),
    ("running", "ns=2;s=Compressor.Running", "subscribe", "compressor.running"),
    ("heartbeat", "ns=2;s=Compressor.Heartbeat", "poll", "compressor.heartbeat"),
]


def _config(tmp_path: Path, endpoint: str, broker: Any) -> Path:
    config = {
        "gateway": {"id": "e2e-ua", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": broker.host, "port": broker.port},
        "devices": [
            {
                "name": "utility-plc",
                "driver": "opcua",
                "endpoint": endpoint,
                "publishing_interval": "100ms",
                "poll_interval": "200ms",
                "tags": [
                    {"name": name, "node": node, "mode": mode} for name, node, mode, _ in TAGS
                ],
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def test_subscribed_and_polled_tags_arrive_on_mqtt_as_the_plc_serves_them(
    tmp_path: Path, sim: SimOpcUaServer, mosquitto: Any
) -> None:
    daemon = subprocess.Popen(  # noqa: ASYNC220  (returns at once; waits go to a thread)
        [
            sys.executable,
            "-m",
            "controller",
            "run",
            str(_config(tmp_path, sim.endpoint, mosquitto)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    latest: dict[str, dict[str, Any]] = {}
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as client:
            await client.subscribe("edgecell/e2e-ua/data/utility-plc", qos=1)

            async def until(condition: Any) -> None:
                async with asyncio.timeout(20):
                    async for message in client.messages:
                        latest.update(orjson.loads(message.payload)["values"])  # type: ignore[arg-type]
                        if condition():
                            return

            await until(lambda: {name for name, *_ in TAGS} <= latest.keys())
            plant = sim.plant
            for name, _node, _mode, point in TAGS:
                entry, expected = latest[name], plant.read_point(point)
                assert entry["q"] == "good", (name, entry)
                assert entry["ts"] > 1_600_000_000_000  # the server's source timestamp, epoch ms
                if isinstance(expected, bool):
                    assert entry["v"] is expected
                elif isinstance(expected, int):
                    assert entry["v"] == expected
                    assert isinstance(entry["v"], int)
                else:  # Float nodes hold single precision
                    assert math.isclose(entry["v"], expected, rel_tol=1e-6), (name, entry)

            # The plant moves on: the subscribed pressure follows.
            before = latest["pressure_bar"]["v"]
            for _ in range(30):
                plant.step(2.0)
            await sim.refresh()
            target = plant.read_point("compressor.pressure_bar")
            assert not math.isclose(target, before)
            await until(lambda: math.isclose(latest["pressure_bar"]["v"], target, rel_tol=1e-9))
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(daemon.wait, 10)
    stderr = daemon.stderr.read().decode() if daemon.stderr else ""
    assert code == 0, stderr[-2000:]

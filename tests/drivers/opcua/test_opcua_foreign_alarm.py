"""OPC UA Alarms & Conditions against a foreign server: node-opcua (another stack, another
language) with an ExclusiveLimitAlarm on a tank level. The gateway subscribes with
`types: [AlarmConditionType]` (the server includes subtypes), raises the retained alarm,
acknowledges it on the server through `cmd/alarms/ack`, and clears it when the level falls.

The server is tests/foreign/node_opcua_alarm/server.js; `bash scripts/setup` installs its
pinned npm packages. Its stdin takes `set <level>` and `state` (prints the condition's state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVER_DIR = Path(__file__).resolve().parents[2] / "foreign" / "node_opcua_alarm"
ALARM = "opcua.tank-plc.Tank.LevelHigh"

CONFIG = """
gateway: {{id: ua-foreign, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {broker}, protocol: "5"}}
devices:
  - name: tank-plc
    driver: opcua
    endpoint: {endpoint}
    publishing_interval: 100ms
    tags:
      - {{name: level, node: "ns=1;s=Tank.Level"}}
    events:
      - {{types: [AlarmConditionType]}}
"""


class NodeServer:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    async def send(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(10):
            while True:
                answer = (await self.process.stdout.readline()).decode()
                if not answer:
                    raise AssertionError("the node-opcua server exited")
                if answer.startswith(("ok ", "state ")):
                    return answer.strip()

    async def state(self) -> dict[str, Any]:
        return json.loads((await self.send("state")).removeprefix("state "))  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def node_server(tmp_path: Path) -> AsyncIterator[NodeServer]:
    node = shutil.which("node")
    if node is None or not (SERVER_DIR / "node_modules" / "node-opcua-server").is_dir():
        raise AssertionError(
            "node and the npm packages of tests/foreign/node_opcua_alarm are needed: "
            "run bash scripts/setup"
        )
    process = await asyncio.create_subprocess_exec(
        node,
        "server.js",
        "0",
        cwd=SERVER_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        # node-opcua keeps its certificates under XDG_CONFIG_HOME: a temporary one per test.
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("the node-opcua server did not start")
                if line.startswith("ready "):
                    port = int(line.split()[1])
                    break
        yield NodeServer(process, port)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_foreign_servers_condition_is_raised_acknowledged_and_cleared(
    tmp_path: Path, mosquitto: Any
) -> None:
    async with node_server(tmp_path) as server:
        text = CONFIG.format(
            state=tmp_path / "state",
            broker=mosquitto.port,
            endpoint=f"opc.tcp://127.0.0.1:{server.port}",
        )
        runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))
        daemon = asyncio.create_task(runtime.run())
        try:
            async with aiomqtt.Client(
                mosquitto.host, mosquitto.port, timeout=5, protocol=aiomqtt.ProtocolVersion.V5
            ) as client:
                await client.subscribe("edgecell/ua-foreign/alarms/#", qos=1)
                await client.subscribe("test/ua-foreign/answers", qos=1)

                async def next_message(check: Any) -> dict[str, Any]:
                    async with asyncio.timeout(20):
                        async for message in client.messages:
                            payload = orjson.loads(message.payload)  # type: ignore[arg-type]
                            if check(str(message.topic), payload):
                                return payload  # type: ignore[no-any-return]
                    raise AssertionError("no such message")

                await _until_connected(runtime)
                await server.send("set 85")  # over the high limit (80)
                alarm = await next_message(
                    lambda t, p: "/alarms/" in t and p["state"] == "active"
                )
                assert alarm["alarm"] == ALARM
                assert alarm["origin"]["source"] == "1:Tank"  # SourceName as node-opcua sends it
                assert alarm["origin"]["condition_id"] == "ns=1;s=Tank.LevelHigh"
                assert 1 <= alarm["origin"]["severity"] <= 1000

                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = "test/ua-foreign/answers"
                await client.publish(
                    "edgecell/ua-foreign/cmd/alarms/ack",
                    orjson.dumps({"alarm": ALARM, "by": "alice"}),
                    qos=1,
                    properties=props,
                )
                answer = await next_message(lambda t, p: t.endswith("/answers"))
                assert answer["ok"] is True, answer
                state = await server.state()
                assert state["active"] is True
                assert state["acked"] is True
                assert "alice" in state["comment"]

                await server.send("set 50")
                cleared = await next_message(
                    lambda t, p: "/alarms/" in t and p["state"] == "cleared"
                )
                assert cleared["acknowledged"] is True
        finally:
            runtime.request_stop()
            await asyncio.wait_for(daemon, 10)


async def _until_connected(runtime: Runtime) -> None:
    async with asyncio.timeout(20):
        while True:
            with contextlib.suppress(KeyError):
                if runtime.driver("tank-plc").status().state.value == "connected":
                    await asyncio.sleep(0.5)  # the ConditionRefresh after connecting
                    return
            await asyncio.sleep(0.05)

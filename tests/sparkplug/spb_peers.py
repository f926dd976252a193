"""Fixtures of the Sparkplug tests: a simulated chiller PLC served over real Modbus, the daemon
with `sparkplug:` enabled against the test's mosquitto, and a watcher that keeps every
Sparkplug message with its MQTT QoS and retain flag."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from google.protobuf.message import DecodeError

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime
from controller.sparkplug.sparkplug_b_pb2 import Payload
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.points import DictPoints
from drivers.sim.scenario import ModbusDeviceSpec
from tests.waiting import until

GROUP = "plant-a"
NODE = "cell-1"


def chiller_points() -> DictPoints:
    """The PLC's process image (the Modbus server in front of it is real)."""
    return DictPoints({"chiller.supply_c": 7.5, "chiller.setpoint_c": 7.0, "chiller.starts": 3})


def chiller_spec(port: int = 0) -> ModbusDeviceSpec:
    return ModbusDeviceSpec(
        name="chiller",
        port=port,
        registers=[
            {"point": "chiller.supply_c", "address": 0},
            {"point": "chiller.setpoint_c", "address": 100},
            {"point": "chiller.starts", "address": 200, "type": "uint16"},
        ],
    )


CONFIG = """
gateway: {{id: {gateway}, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {broker}, reconnect_min: 50ms, reconnect_max: 300ms,
       health_interval: 1s}}
sparkplug:
  enabled: true
  group_id: {group}
  edge_node_id: {node}
  write_ttl: 5min
{extra}
devices:
  - name: chiller
    driver: modbus
    link: {{transport: tcp, host: 127.0.0.1, port: {port}}}
    poll_interval: 200ms
    timeout: 300ms
    tags:
      - {{name: supply_c, address: 0, type: float32, unit: degC}}
      - {{name: setpoint_c, address: 100, type: float32, writable: true, min: 4, max: 12,
          unit: degC}}
      - {{name: starts, address: 200, type: uint16}}
actuation: {{manual_writes: true, manual_max_ttl: 1h, verify_timeout: 2s}}
"""


def config_text(
    tmp_path: Path, broker: Any, modbus_port: int, *, gateway: str = "spb-gw", extra: str = ""
) -> str:
    return CONFIG.format(
        gateway=gateway, state=tmp_path / "state", broker=broker.port, port=modbus_port,
        group=GROUP, node=NODE, extra=extra,
    )


@dataclass
class SparkplugMessage:
    topic: str
    payload: Payload | None  # None for STATE (JSON)
    qos: int
    retain: bool
    raw: bytes

    @property
    def kind(self) -> str:
        return self.topic.split("/")[2]

    def metric(self, name: str) -> Payload.Metric:
        assert self.payload is not None
        return next(m for m in self.payload.metrics if m.name == name)


@dataclass
class Watcher:
    """Every message on `spBv1.0/#`, subscribed at QoS 1 (what arrives at QoS 0 was published
    at QoS 0)."""

    messages: list[SparkplugMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str, device: str | None = None) -> list[SparkplugMessage]:
        return [
            m for m in self.messages
            if m.kind == kind and (device is None or m.topic.endswith(f"/{device}"))
        ]

    async def wait_for(
        self, condition: Callable[[list[SparkplugMessage]], Any], within: float = 10.0
    ) -> Any:
        def shown() -> list[Any]:
            return [
                (m.topic, m.payload.seq if m.payload is not None else None,
                 [(x.name, x.alias) for x in m.payload.metrics] if m.payload is not None else m.raw)
                for m in self.messages[-12:]
            ]

        return await until(
            lambda: condition(self.messages), within=within, arrived=self.arrived, shown=shown
        )

    async def wait_kind(
        self, kind: str, count: int = 1, device: str | None = None, within: float = 10.0
    ) -> list[SparkplugMessage]:
        return await self.wait_for(  # type: ignore[no-any-return]
            lambda _: len(self.of(kind, device)) >= count and self.of(kind, device), within
        )


@contextlib.asynccontextmanager
async def watching(broker: Any, identifier: str = "sparkplug-watcher") -> AsyncIterator[Watcher]:
    """A Watcher of `spBv1.0/#` on `broker`, subscribed again after a broker restart."""
    watcher = Watcher()
    ready = asyncio.Event()

    async def run() -> None:
        while True:  # through broker restarts: subscribe again
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client(broker.host, broker.port, timeout=5,
                                          identifier=identifier) as client:
                    await client.subscribe("spBv1.0/#", qos=1)
                    ready.set()
                    async for message in client.messages:
                        raw = bytes(message.payload)  # type: ignore[arg-type]
                        decoded = None
                        if "/STATE/" not in message.topic.value:
                            with contextlib.suppress(DecodeError):  # the tests' malformed ones
                                decoded = Payload.FromString(raw)
                        watcher.messages.append(SparkplugMessage(
                            message.topic.value, decoded, message.qos, message.retain, raw
                        ))
                        watcher.arrived.set()
            await asyncio.sleep(0.05)

    task = asyncio.create_task(run())
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def sparkplug_watch(mosquitto: Any) -> AsyncIterator[Watcher]:
    async with watching(mosquitto) as watcher:
        yield watcher


@dataclass
class Daemon:
    runtime: Runtime
    chiller: DictPoints
    server: SimModbusServer


@pytest.fixture
async def daemon(
    tmp_path: Path, mosquitto: Any, request: pytest.FixtureRequest
) -> AsyncIterator[Daemon]:
    """The daemon with Sparkplug on, polling the simulated chiller; `extra` config lines come
    from `@pytest.mark.parametrize("daemon_extra", ...)`-free tests as an empty string."""
    chiller = chiller_points()
    async with SimModbusServer(chiller, [chiller_spec()], port=0) as server:
        text = config_text(tmp_path, mosquitto, server.port)
        runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))
        task = asyncio.create_task(runtime.run())
        try:
            yield Daemon(runtime, chiller, server)
        finally:
            runtime.request_stop()
            await asyncio.wait_for(task, 10)


async def publish(broker: Any, topic: str, payload: bytes, *, retain: bool = False) -> None:
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        await client.publish(topic, payload, qos=1, retain=retain)

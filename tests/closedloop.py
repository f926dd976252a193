"""Pieces the closed-loop tests share: a clock the test steps, a real Modbus device (a pymodbus
server read and written by the real ModbusDriver, its samples in a real TagTable), and a
recording event sink.

Imported by name (`from closedloop import ...`): tests/ is on sys.path through its conftest.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from controller.actuation import Actuator, write_limits
from controller.model import DeviceStatus, Sample
from controller.rules.config import ActuationConfig
from controller.tagtable import TagTable
from drivers.base import DriverContext
from drivers.modbus import build_modbus_drivers
from drivers.modbus.config import ModbusDevice
from drivers.modbus.driver import ModbusDriver

# 2024-06-03 08:00:00 UTC, a Monday morning.
START_MS = 1_717_401_600_000


class SteppedClock:
    """Time that moves only when the test says so (`advance`); `sleep_until` waits for it."""

    def __init__(self, start_ms: int = START_MS) -> None:
        self.now = 0.0
        self.start_ms = start_ms
        self._moved = asyncio.Event()

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return self.start_ms + round(self.now * 1000)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()

    async def sleep_until(self, deadline: float) -> None:
        while self.now < deadline:
            self._moved.clear()
            await self._moved.wait()
        await asyncio.sleep(0)


@dataclass
class EventLog:
    """An EventSink that keeps what it is given, decoded."""

    events: list[dict[str, Any]] = field(default_factory=list)
    retained: dict[str, Any] = field(default_factory=dict)

    def publish_event(self, topic: str, payload: bytes) -> None:
        self.events.append(orjson.loads(payload))

    def publish_retained(self, topic: str, payload: bytes) -> None:
        self.retained[topic] = orjson.loads(payload) if payload else None

    def of(self, tag: str, outcome: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.events if e["tag"] == tag and outcome in (None, e["outcome"])
        ]


def float_tag(name: str, address: int, **limits: Any) -> dict[str, Any]:
    """A float32 holding-register tag (two registers) with its write limits."""
    return {"name": name, "address": address, "type": "float32", **limits}


def coil_tag(name: str, address: int, **limits: Any) -> dict[str, Any]:
    return {"name": name, "table": "coil", "address": address, "type": "bool", **limits}


def register_tag(name: str, address: int, **limits: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "type": "uint16", **limits}


class ModbusPlant:
    """One Modbus device on a real pymodbus server, polled by the real driver into `table`."""

    def __init__(self, server: Any, port: int, device: ModbusDevice, driver: ModbusDriver,
                 table: TagTable) -> None:
        self.server = server
        self.port = port
        self.device = device
        self.driver = driver
        self.table = table
        self._tags = {tag.name: tag for tag in device.tags}

    @property
    def name(self) -> str:
        return self.device.name

    def writers(self, device: str) -> ModbusDriver:
        if device != self.device.name:
            raise KeyError(device)
        return self.driver

    async def poll(self) -> None:
        """One poll of every tag: the table gets fresh samples."""
        await self.driver.poll_once()

    async def value(self, tag: str) -> Any:
        """What the device holds now, read from the server (not through the driver)."""
        spec = self._tags[tag]
        if spec.table.value == "coil":
            return bool((await self.server.async_getValues(1, 1, spec.address, 1))[0])
        count = spec.register_count
        words = list(await self.server.async_getValues(1, 3, spec.address, count))
        if spec.type.value == "float32":
            return struct.unpack(">f", struct.pack(">HH", *words))[0]
        return words[0]

    async def set(self, tag: str, value: Any) -> None:
        """Change the device's value behind the controller's back (the PLC, the panel)."""
        spec = self._tags[tag]
        if spec.table.value == "coil":
            await self.server.async_setValues(1, 5, spec.address, [bool(value)])
        elif spec.type.value == "float32":
            words = list(struct.unpack(">HH", struct.pack(">f", float(value))))
            await self.server.async_setValues(1, 16, spec.address, words)
        else:
            await self.server.async_setValues(1, 6, spec.address, [int(value)])

    def actuator(
        self, clock: Any, events: Any = None, base_topic: str = "edgecell/test", **settings: Any
    ) -> Actuator:
        """The real actuator for this device's tags, with `actuation:` settings."""
        return Actuator(
            write_limits([self.device]),
            ActuationConfig.model_validate(settings),
            writers=self.writers,
            table=self.table,
            clock=clock,
            events=events,
            base_topic=base_topic,
        )

    async def stop(self) -> None:
        await self.driver.close()
        await self.server.shutdown()


async def start_plant(
    tags: Sequence[dict[str, Any]],
    clock: Any,
    tmp_path: Path,
    *,
    name: str = "comp",
    initial: dict[str, Any] | None = None,
    table: TagTable | None = None,
) -> ModbusPlant:
    """A pymodbus server on a free loopback port with 64 coils and 64 holding registers, the
    device `name` with `tags` on it, its driver, and a TagTable the driver's polls feed (a new
    one, or `table` to share one between devices)."""
    unit = SimDevice(
        1,
        simdata=(
            [SimData(0, count=64, values=False, datatype=SimType.BITS)],
            [SimData(0, count=64, values=False, datatype=SimType.BITS)],
            [SimData(0, count=64, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, count=64, values=0, datatype=SimType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer([unit], address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    device = ModbusDevice.model_validate(
        {
            "driver": "modbus",
            "name": name,
            "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
            "poll_interval": "1s",
            "timeout": "500ms",
            "tags": list(tags),
        }
    )
    table = TagTable() if table is None else table

    def on_samples(samples: Sequence[Sample]) -> None:
        table.update(samples)

    def on_status(status: DeviceStatus) -> None:
        return None

    [driver] = build_modbus_drivers([device], DriverContext(clock, on_samples, on_status, tmp_path))
    assert isinstance(driver, ModbusDriver)
    plant = ModbusPlant(server, port, device, driver, table)
    for tag, value in (initial or {}).items():
        await plant.set(tag, value)
    await plant.poll()
    return plant


class Cell:
    """Several devices, each on its own server, sharing one TagTable: a meter can stop
    answering while the compressor it steers still takes writes."""

    def __init__(self, plants: Sequence[ModbusPlant]) -> None:
        self.plants = {plant.name: plant for plant in plants}
        self.table = plants[0].table

    def __getitem__(self, device: str) -> ModbusPlant:
        return self.plants[device]

    def writers(self, device: str) -> ModbusDriver:
        return self.plants[device].driver

    async def poll(self) -> None:
        for plant in self.plants.values():
            await plant.poll()

    def actuator(
        self, clock: Any, events: Any = None, base_topic: str = "edgecell/test", **settings: Any
    ) -> Actuator:
        return Actuator(
            write_limits([plant.device for plant in self.plants.values()]),
            ActuationConfig.model_validate(settings),
            writers=self.writers,
            table=self.table,
            clock=clock,
            events=events,
            base_topic=base_topic,
        )

    async def stop(self) -> None:
        for plant in self.plants.values():
            await plant.stop()

"""Real Modbus peers for the driver tests: pymodbus 3.16 servers (TCP, RTU over TCP, RTU on a
socat serial pair), a TCP peer that never answers, and a port that refuses connections."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from controller.clock import SystemClock
from controller.model import DeviceStatus, Sample
from drivers.base import Driver, DriverContext
from drivers.modbus.config import ByteOrder, ModbusDevice

REGISTERS = 300
BITS = 64


def sim_unit(unit_id: int) -> SimDevice:
    """A unit with 64 coils, 64 discrete inputs and 300 holding and input registers from 0."""
    return SimDevice(
        unit_id,
        simdata=(
            [SimData(0, count=BITS, values=False, datatype=SimType.BITS)],
            [SimData(0, count=BITS, values=False, datatype=SimType.BITS)],
            [SimData(0, count=REGISTERS, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, count=REGISTERS, values=0, datatype=SimType.REGISTERS)],
        ),
    )


@dataclass
class Trace:
    """What a server saw and sent, in order: (monotonic time, 'rx'|'tx', unit, function code)."""

    events: list[tuple[float, str, int, int]] = field(default_factory=list)
    silent_units: frozenset[int] = frozenset()
    on_rx: Callable[[int, int], None] | None = None
    connections: int = 0

    def connection(self, connected: bool) -> None:
        self.connections += connected

    def __call__(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        self.events.append(
            (time.monotonic(), "tx" if sending else "rx", pdu.dev_id, pdu.function_code)
        )
        if not sending and self.on_rx is not None:
            self.on_rx(pdu.dev_id, pdu.function_code)
        if not sending and pdu.dev_id in self.silent_units:
            return None  # the server drops the request: the unit never answers
        return pdu

    def requests(self, unit: int | None = None) -> list[int]:
        return [fc for _, kind, u, fc in self.events if kind == "rx" and unit in (None, u)]


@dataclass
class RunningServer:
    server: Any
    port: int
    trace: Trace

    async def set(
        self, fc: int, address: int, values: list[int] | list[bool], unit: int = 1
    ) -> None:
        await self.server.async_setValues(unit, fc, address, values)

    async def get(self, fc: int, address: int, count: int, unit: int = 1) -> list[Any]:
        return list(await self.server.async_getValues(unit, fc, address, count))

    async def stop(self) -> None:
        await self.server.shutdown()


ServerFactory = Callable[..., Any]


@pytest.fixture
async def modbus_server() -> AsyncIterator[ServerFactory]:
    """Starts pymodbus TCP servers on 127.0.0.1 (a free port, or a given one for restarts)."""
    started: list[RunningServer] = []

    async def start(
        units: tuple[int, ...] = (1,),
        *,
        port: int = 0,
        framer: FramerType = FramerType.SOCKET,
        trace: Trace | None = None,
    ) -> RunningServer:
        trace = trace or Trace()
        server = ModbusTcpServer(
            [sim_unit(u) for u in units],
            framer=framer,
            address=("127.0.0.1", port),
            trace_pdu=trace,
            trace_connect=trace.connection,
        )
        await server.serve_forever(background=True)
        bound = server.transport.sockets[0].getsockname()[1]
        running = RunningServer(server, bound, trace)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
def refused_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SilentPeer:
    """Accepts TCP connections, reads requests, never answers."""

    port: int
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    def mbap_requests(self) -> int:
        count, data = 0, bytes(self.received)
        while len(data) >= 6:
            (length,) = struct.unpack(">H", data[4:6])
            data = data[6 + length :]
            count += 1
        return count


@pytest.fixture
async def silent_peer() -> AsyncIterator[SilentPeer]:
    peer = SilentPeer(port=0)
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.connections += 1
        writers.append(writer)
        while data := await reader.read(1024):
            peer.received.extend(data)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    yield peer
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


@dataclass
class SerialPair:
    client_port: str
    server_port: str


@pytest.fixture
async def serial_pair(tmp_path: Path) -> AsyncIterator[SerialPair]:
    """Two linked pseudo-terminals from socat: a virtual RS-485 line."""
    socat = shutil.which("socat")
    assert socat is not None, "socat is needed for the RTU tests"
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    process = await asyncio.create_subprocess_exec(
        socat,
        "-d",
        "-d",
        f"pty,raw,echo=0,link={a}",
        f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(5):
            while not (a.exists() and b.exists()):  # noqa: ASYNC110 (a file appearing: no event)
                await asyncio.sleep(0.02)
        yield SerialPair(str(a), str(b))
    finally:
        process.terminate()
        async with asyncio.timeout(5):
            await process.wait()


@pytest.fixture
async def serial_server(serial_pair: SerialPair) -> AsyncIterator[Callable[..., Any]]:
    """Starts a pymodbus RTU server on the server end of the serial pair."""
    servers: list[Any] = []

    async def start(units: tuple[int, ...], trace: Trace) -> RunningServer:
        server = ModbusSerialServer(
            [sim_unit(u) for u in units],
            framer=FramerType.RTU,
            port=serial_pair.server_port,
            baudrate=115200,
            trace_pdu=trace,
        )
        await server.serve_forever(background=True)
        servers.append(server)
        return RunningServer(server, 0, trace)

    yield start
    for server in servers:
        await server.shutdown()


@dataclass
class Recorder:
    """The runtime's side of a DriverContext: every batch of samples and every status."""

    batches: list[list[Sample]] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)

    def on_samples(self, samples: Any) -> None:
        self.batches.append(list(samples))

    def on_status(self, status: DeviceStatus) -> None:
        self.statuses.append(status)

    def of(self, device: str) -> list[list[Sample]]:
        return [b for b in self.batches if b and b[0].device == device]

    def latest(self, device: str) -> dict[str, Sample]:
        return {s.tag: s for s in self.of(device)[-1]}

    def status_of(self, device: str) -> DeviceStatus:
        return [s for s in self.statuses if s.device == device][-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def ctx(recorder: Recorder, tmp_path: Path) -> DriverContext:
    return DriverContext(SystemClock(), recorder.on_samples, recorder.on_status, tmp_path)


def device_config(
    name: str,
    link: dict[str, Any],
    tags: list[dict[str, Any]],
    *,
    unit_id: int = 1,
    poll_interval: str = "150ms",
    timeout: str = "300ms",
    byte_order: ByteOrder = ByteOrder.ABCD,
    **settings: Any,
) -> ModbusDevice:
    return ModbusDevice.model_validate(
        {
            "driver": "modbus",
            "name": name,
            "link": link,
            "unit_id": unit_id,
            "poll_interval": poll_interval,
            "timeout": timeout,
            "byte_order": byte_order,
            "tags": tags,
            **settings,
        }
    )


def tcp(port: int, transport: str = "tcp") -> dict[str, Any]:
    return {"transport": transport, "host": "127.0.0.1", "port": port}


def intervals_ms(batches: list[list[Sample]]) -> list[int]:
    stamps = [batch[0].read_ts for batch in batches]
    return [b - a for a, b in itertools.pairwise(stamps)]


async def run_for(drivers: Sequence[Driver], seconds: float) -> None:
    """Runs drivers side by side for `seconds`, then cancels them."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(driver.run()) for driver in drivers]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()

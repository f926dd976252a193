"""Shared links: one connection and one queue per link key, write priority, no interleaving on
an RTU bus with a silent unit, typed errors, reconnect backoff."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerType

from controller.clock import SystemClock
from controller.model import Quality
from drivers.base import DriverContext
from drivers.modbus import LinkConfigError, ModbusDriver, build_modbus_drivers
from drivers.modbus.config import SerialLink, Table, TcpLink
from drivers.modbus.link import (
    Backoff,
    ConnectError,
    ConnectionLostError,
    ModbusExceptionError,
    ModbusLink,
    Priority,
    RequestTimeoutError,
    frame_gap,
)

from .conftest import (
    Recorder,
    RunningServer,
    SerialPair,
    ServerFactory,
    Trace,
    device_config,
    intervals_ms,
    run_for,
    tcp,
)

HOLDING = 3


def tcp_link(port: int) -> ModbusLink:
    return ModbusLink(TcpLink(host="127.0.0.1", port=port), SystemClock())


async def test_exception_response_names_its_code(modbus_server: ServerFactory) -> None:
    server: RunningServer = await modbus_server()
    link = tcp_link(server.port)
    with pytest.raises(ModbusExceptionError, match=r"^exception 2: illegal data address$"):
        async with link.owned(Priority.POLL) as session:
            await session.read(Table.HOLDING, 1000, 1, unit=1, time_limit=0.5)
    link.close()


async def test_writes_go_before_queued_polls(modbus_server: ServerFactory) -> None:
    server: RunningServer = await modbus_server()
    link = tcp_link(server.port)

    async def poll() -> None:
        async with link.owned(Priority.POLL) as session:
            await session.read(Table.HOLDING, 0, 1, unit=1, time_limit=0.5)

    async def write() -> None:
        async with link.owned(Priority.WRITE) as session:
            await session.write_register(0, 5, unit=1, time_limit=0.5)

    async with asyncio.TaskGroup() as group:
        async with link.owned(Priority.POLL) as session:
            await session.read(Table.HOLDING, 0, 1, unit=1, time_limit=0.5)
            group.create_task(poll())
            await asyncio.sleep(0.01)
            group.create_task(write())
            await asyncio.sleep(0.01)
    link.close()
    assert server.trace.requests() == [3, 6, 3]


async def test_devices_on_one_link_share_one_connection(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server(units=(1, 2))
    await server.set(HOLDING, 0, [11], unit=1)
    await server.set(HOLDING, 0, [22], unit=2)
    devices = [
        device_config(f"unit{u}", tcp(server.port), [{"name": "a", "address": 0}], unit_id=u)
        for u in (1, 2)
    ]
    drivers = build_modbus_drivers(devices, ctx)
    for driver in drivers:
        await driver.poll_once()
    for driver in drivers:
        await driver.close()
    assert (recorder.latest("unit1")["a"].value, recorder.latest("unit2")["a"].value) == (11, 22)
    assert server.trace.connections == 1


def test_devices_disagreeing_on_a_shared_links_settings_are_refused(
    ctx: DriverContext,
) -> None:
    tag = [{"name": "a", "address": 0}]
    devices = [
        device_config("a", {"transport": "rtu", "port": "/dev/ttyX", "baudrate": 9600}, tag),
        device_config("b", {"transport": "rtu", "port": "/dev/ttyX", "baudrate": 19200}, tag),
    ]
    with pytest.raises(LinkConfigError, match="rtu:///dev/ttyX differently"):
        build_modbus_drivers(devices, ctx)


async def test_rtu_framing_over_tcp_reads_values(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server(units=(3,), framer=FramerType.RTU)
    await server.set(HOLDING, 4, [0x4049, 0x0FDB], unit=3)
    tags = [{"name": "pi", "address": 4, "type": "float32"}]
    device = device_config("gw", tcp(server.port, "rtu_over_tcp"), tags, unit_id=3)
    (driver,) = build_modbus_drivers([device], ctx)
    await driver.poll_once()
    await driver.close()
    assert recorder.latest("gw")["pi"].value == pytest.approx(3.14159274)


async def test_a_connection_closed_mid_request_fails_it_at_once() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    peer = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    link = tcp_link(peer.sockets[0].getsockname()[1])
    with pytest.raises(ConnectionLostError, match="connection lost"):
        async with asyncio.timeout(1.5), link.owned(Priority.POLL) as session:
            await session.read(Table.HOLDING, 0, 1, unit=1, time_limit=5.0)
    link.close()
    peer.close()
    await peer.wait_closed()


async def test_a_tcp_link_is_reopened_after_three_timeouts_in_a_row(silent_peer: Any) -> None:
    link = tcp_link(silent_peer.port)
    for _ in range(4):
        with pytest.raises(RequestTimeoutError, match="timeout after 100ms"):
            async with link.owned(Priority.POLL) as session:
                await session.read(Table.HOLDING, 0, 1, unit=1, time_limit=0.1)
    link.close()
    assert (silent_peer.connections, link.reconnects) == (2, 1)


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(self.now * 1000)

    async def sleep_until(self, deadline: float) -> None:
        self.now = max(self.now, deadline)
        await asyncio.sleep(0)


class LongestDelay(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


async def test_reconnect_waits_out_its_backoff(
    modbus_server: ServerFactory, refused_port: int
) -> None:
    clock = ManualClock()
    link = ModbusLink(
        TcpLink(host="127.0.0.1", port=refused_port),
        clock,
        backoff=Backoff(initial=1.0, cap=8.0),
        rng=LongestDelay(),
    )

    async def read() -> None:
        async with link.owned(Priority.POLL) as session:
            await session.read(Table.HOLDING, 0, 1, unit=1, time_limit=0.5)

    with pytest.raises(ConnectError, match="connection refused"):
        await read()
    server: RunningServer = await modbus_server(port=refused_port)
    clock.now = 0.9
    with pytest.raises(ConnectError, match="connection refused"):
        await read()  # still backing off: no attempt made
    assert server.trace.connections == 0
    clock.now = 1.0
    await read()
    link.close()
    assert server.trace.connections == 1


@given(failures=st.integers(1, 80), seed=st.integers(0, 2**32))
def test_backoff_is_jittered_below_a_capped_exponential(failures: int, seed: int) -> None:
    backoff = Backoff(initial=0.25, cap=15.0)
    delay = backoff.delay(failures, random.Random(seed))
    assert 0.0 <= delay <= min(15.0, 0.25 * 2 ** (failures - 1))


def rtu(pair: SerialPair) -> dict[str, Any]:
    return {"transport": "rtu", "port": pair.client_port, "baudrate": 115200}


@pytest.fixture
async def rtu_bus(serial_pair: SerialPair, serial_server: Any, ctx: DriverContext) -> Any:
    """Unit 1 answers, unit 2 is silent, both polled over one RTU link every 150 ms."""
    trace = Trace(silent_units=frozenset({2}))
    server: RunningServer = await serial_server((1,), trace)
    await server.set(HOLDING, 0, [101])
    unit1 = device_config(
        "unit1",
        rtu(serial_pair),
        [{"name": "sp", "address": 0, "writable": True}, {"name": "pv", "address": 1}],
        unit_id=1,
        timeout="250ms",
    )
    unit2 = device_config(
        "unit2",
        rtu(serial_pair),
        [{"name": "a", "address": 0}, {"name": "b", "table": "input", "address": 0}],
        unit_id=2,
        timeout="250ms",
    )
    drivers = build_modbus_drivers([unit1, unit2], ctx)
    yield server, drivers
    for driver in drivers:
        await driver.close()


async def test_a_silent_unit_delays_the_other_by_at_most_its_timeout_and_the_pause(
    rtu_bus: Any, recorder: Recorder
) -> None:
    _, drivers = rtu_bus
    await run_for(drivers, 1.6)
    gaps = intervals_ms(recorder.of("unit1"))
    assert len(gaps) >= 4
    assert max(gaps) <= 150 + 250 + 100 + 60, gaps  # poll interval, timeout, pause, slack
    assert all(s.value == 101 for s in recorder.of("unit1")[-1] if s.tag == "sp")
    assert {s.reason for batch in recorder.of("unit2") for s in batch} == {"timeout after 250ms"}


async def test_a_silent_units_other_requests_are_skipped_for_the_cycle(
    rtu_bus: Any, recorder: Recorder
) -> None:
    server, drivers = rtu_bus
    await run_for(drivers, 1.0)
    cycles = len(recorder.of("unit2"))
    assert cycles >= 2
    assert cycles <= len(server.trace.requests(unit=2)) <= cycles + 1
    assert set(server.trace.requests(unit=2)) == {3}


async def test_a_write_during_polling_is_never_interleaved_with_a_poll(
    rtu_bus: Any, recorder: Recorder
) -> None:
    server, drivers = rtu_bus
    unit1: ModbusDriver = drivers[0]
    silent_request_sent = asyncio.Event()
    server.trace.on_rx = lambda unit, fc: unit == 2 and silent_request_sent.set()

    async def write_while_unit2_is_awaited() -> None:
        await silent_request_sent.wait()
        await unit1.write("sp", 4321)

    async with asyncio.TaskGroup() as group:
        group.create_task(write_while_unit2_is_awaited())
        group.create_task(run_for(drivers, 1.2))
    events = server.trace.events
    for (t, kind, unit, fc), after in itertools.pairwise(events):
        if kind == "rx" and unit == 1:
            assert after[1:] == ("tx", 1, fc)  # answered before anything else is sent
        if kind == "rx" and unit == 2:
            assert after[1] == "rx"
            assert after[0] - t >= 0.25 - 0.02  # the bus stayed quiet for unit 2's timeout
    assert 6 in server.trace.requests(unit=1)
    assert await server.get(HOLDING, 0, 1) == [4321]
    last = {s.tag: s for s in recorder.of("unit1")[-1]}
    assert (last["sp"].value, last["sp"].quality) == (4321, Quality.GOOD)


# --- quiet on the line: the frame gap, request_gap, pause_after_timeout ------------------------


def serial_link(**settings: Any) -> SerialLink:
    return SerialLink.model_validate({"transport": "rtu", "port": "/dev/ttyX", **settings})


@pytest.mark.parametrize(
    ("settings", "seconds"),
    [
        ({"baudrate": 9600}, 3.5 * 10 / 9600),  # start, 8 data, 1 stop bit
        ({"baudrate": 19200, "parity": "E"}, 3.5 * 11 / 19200),
        ({"baudrate": 9600, "bytesize": 7, "stopbits": 2}, 3.5 * 10 / 9600),
        ({"baudrate": 115200}, 0.00175),  # above 19200 baud: fixed 1.75 ms (spec 2.5.1.1)
        ({"baudrate": 9600, "request_gap": "20ms"}, 0.020),
        ({"baudrate": 9600, "request_gap": "1ms"}, 3.5 * 10 / 9600),  # the floor wins
    ],
)
def test_frame_gap_is_the_request_gap_but_never_under_three_and_a_half_characters(
    settings: dict[str, Any], seconds: float
) -> None:
    assert frame_gap(serial_link(**settings)) == pytest.approx(seconds)


def test_link_defaults_pause_on_serial_lines_only() -> None:
    assert serial_link().pause_after_timeout == 0.1
    gateway = TcpLink.model_validate({"transport": "rtu_over_tcp", "host": "h"})
    assert gateway.pause_after_timeout == 0.1
    assert TcpLink(host="h").pause_after_timeout == 0.0
    assert frame_gap(TcpLink(host="h")) == 0.0


def next_requests(trace: Trace, after: str, unit: int) -> list[float]:
    """Seconds from each `after` event ('rx' or 'tx') of `unit` to the next request the server
    received."""
    gaps = []
    for i, (t, kind, u, _) in enumerate(trace.events):
        if (kind, u) != (after, unit):
            continue
        later = [e for e in trace.events[i + 1 :] if e[1] == "rx"]
        if later:
            gaps.append(later[0][0] - t)
    return gaps


async def test_after_a_timeout_the_next_request_waits_for_the_pause(
    serial_pair: SerialPair, serial_server: Any, ctx: DriverContext
) -> None:
    server: RunningServer = await serial_server((1,), Trace(silent_units=frozenset({2})))
    link = {**rtu(serial_pair), "pause_after_timeout": "300ms"}
    healthy, silent = build_modbus_drivers(
        [
            device_config(
                f"unit{u}", link, [{"name": "a", "address": 0}], unit_id=u, timeout="200ms"
            )
            for u in (1, 2)
        ],
        ctx,
    )
    try:
        for _ in range(3):
            await silent.poll_once()  # times out
            await healthy.poll_once()
    finally:
        await healthy.close()
        await silent.close()
    gaps = next_requests(server.trace, "rx", unit=2)
    assert len(gaps) == 3
    assert min(gaps) >= 0.200 + 0.300 - 0.02, gaps  # the timeout, then the pause


async def test_requests_are_spaced_by_the_request_gap(
    serial_pair: SerialPair, serial_server: Any, ctx: DriverContext
) -> None:
    server: RunningServer = await serial_server((1, 3), Trace())
    link = {**rtu(serial_pair), "request_gap": "80ms"}
    drivers = build_modbus_drivers(
        [device_config(f"unit{u}", link, [{"name": "a", "address": 0}], unit_id=u) for u in (1, 3)],
        ctx,
    )
    try:
        for _ in range(3):
            for driver in drivers:
                await driver.poll_once()
    finally:
        for driver in drivers:
            await driver.close()
    gaps = next_requests(server.trace, "tx", unit=1) + next_requests(server.trace, "tx", unit=3)
    assert len(gaps) == 5
    assert min(gaps) >= 0.080 - 0.005, gaps  # from the answer on the wire to the next request


def test_modbus_md_lists_every_link_setting_with_its_default() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "modbus.md").read_text()
    table = doc.split("Link settings (keys of `link:`):", 1)[1].split("\n\n", 2)[1]
    documented = {
        key: default
        for keys, default in re.findall(r"^\| (`[^|]+) \| ([^|]+) \|", table, re.M)
        for key in re.findall(r"`([a-z_]+)`", keys)
    }
    assert set(documented) == set(SerialLink.model_fields) | set(TcpLink.model_fields)
    serial = serial_link()
    for key in ("baudrate", "parity", "stopbits", "bytesize"):
        assert documented[key] == f"`{getattr(serial, key)}`"

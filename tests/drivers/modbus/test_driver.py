"""The Modbus driver against real pymodbus servers: values of every type and order, writes,
bad samples with reasons for faulty devices, status, schedule, reconnect."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from controller.model import LinkState, Quality, WriteError
from drivers.base import DriverContext
from drivers.modbus import ModbusDriver, build_modbus_drivers
from drivers.modbus.config import ByteOrder
from drivers.modbus.link import Backoff

from .conftest import (
    Recorder,
    RunningServer,
    ServerFactory,
    device_config,
    intervals_ms,
    run_for,
    tcp,
)

STRUCT_CODES = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
VALUES: dict[str, int | float] = {
    "int16": -1234,
    "uint16": 51234,
    "int32": -123456789,
    "uint32": 3_000_000_000,
    "int64": -1234567890123456789,
    "uint64": 18_000_000_000_000_000_000,
    "float32": -273.25,
    "float64": 3.141592653589793,
}
HOLDING, INPUT, COILS, DISCRETE = 3, 4, 1, 2
FAST_BACKOFF = Backoff(initial=0.02, cap=0.1)


def reference_words(value: int | float, dtype: str, order: ByteOrder) -> list[int]:
    """Registers of a value built from the byte-order letters themselves: big-endian bytes
    A B C D..., swapped within each word for BADC/DCBA, word order reversed for CDAB/DCBA."""
    data = struct.pack(">" + STRUCT_CODES[dtype], value)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order in (ByteOrder.BADC, ByteOrder.DCBA):
        words = [w[::-1] for w in words]
    if order in (ByteOrder.CDAB, ByteOrder.DCBA):
        words.reverse()
    return [int.from_bytes(w, "big") for w in words]


def every_type_and_order() -> list[tuple[str, str, ByteOrder, int]]:
    """(tag name, type, order, address) for every numeric type in every order."""
    layout, address = [], 0
    for dtype, code in STRUCT_CODES.items():
        for order in ByteOrder:
            layout.append((f"{dtype}_{order.value}", dtype, order, address))
            address += struct.calcsize(code) // 2 + 1
    return layout


def one_driver(device: Any, ctx: DriverContext) -> ModbusDriver:
    (driver,) = build_modbus_drivers([device], ctx, backoff=FAST_BACKOFF)
    assert isinstance(driver, ModbusDriver)
    return driver


async def test_values_of_every_type_and_order_equal_the_servers(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    layout = every_type_and_order()
    for _, dtype, order, address in layout:
        await server.set(HOLDING, address, reference_words(VALUES[dtype], dtype, order))
    tags = [
        {"name": name, "address": address, "type": dtype, "order": order.value}
        for name, dtype, order, address in layout
    ]
    driver = one_driver(device_config("plc", tcp(server.port), tags), ctx)
    await driver.poll_once()
    await driver.close()
    got = recorder.latest("plc")
    for name, dtype, _, _ in layout:
        assert got[name].quality is Quality.GOOD, got[name]
        assert got[name].value == VALUES[dtype], name


async def test_bits_bools_text_and_scaled_values_equal_the_servers(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    await server.set(COILS, 5, [True])
    await server.set(DISCRETE, 9, [True])
    await server.set(HOLDING, 10, [0b1000_0000_0000_0100])
    await server.set(HOLDING, 20, [0x4D45, 0x5445, 0x522D, 0x3120, 0x0000])  # "METER-1 "
    await server.set(INPUT, 7, [2150])
    tags = [
        {"name": "run", "table": "coil", "address": 5, "type": "bool"},
        {"name": "stop", "table": "coil", "address": 6, "type": "bool"},
        {"name": "door", "table": "discrete", "address": 9, "type": "bool"},
        {"name": "alarm_2", "address": 10, "type": "bit", "bit": 2},
        {"name": "alarm_15", "address": 10, "type": "bit", "bit": 15},
        {"name": "alarm_0", "address": 10, "type": "bit", "bit": 0},
        {"name": "model", "address": 20, "type": "string", "length": 5},
        {"name": "temp_c", "table": "input", "address": 7, "scale": 0.1, "offset": -200},
    ]
    driver = one_driver(device_config("plc", tcp(server.port), tags), ctx)
    await driver.poll_once()
    await driver.close()
    got = {name: s.value for name, s in recorder.latest("plc").items()}
    assert got == {
        "run": True,
        "stop": False,
        "door": True,
        "alarm_2": True,
        "alarm_15": True,
        "alarm_0": False,
        "model": "METER-1",
        "temp_c": pytest.approx(15.0),
    }


async def test_each_poll_emits_one_batch_with_a_sample_per_tag(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    tags = [
        {"name": "a", "address": 0},
        {"name": "b", "address": 100},
        {"name": "c", "table": "coil", "address": 0, "type": "bool"},
    ]
    driver = one_driver(device_config("plc", tcp(server.port), tags, max_gap=0), ctx)
    await driver.poll_once()
    await driver.poll_once()
    await driver.close()
    assert [sorted(s.tag for s in batch) for batch in recorder.batches] == [["a", "b", "c"]] * 2


WRITABLE = [
    {"name": "run", "table": "coil", "address": 3, "type": "bool", "writable": True},
    {"name": "setpoint", "address": 40, "type": "uint16", "writable": True},
    {"name": "flow", "address": 50, "type": "float32", "order": "CDAB", "writable": True},
    {"name": "total", "address": 60, "type": "int64", "order": "BADC", "writable": True},
    {"name": "valve", "address": 70, "type": "bit", "bit": 4, "writable": True},
    {"name": "temp_c", "address": 80, "type": "int16", "scale": 0.1, "writable": True},
    {"name": "label", "address": 90, "type": "string", "length": 3, "writable": True},
    {"name": "reading", "address": 100, "type": "uint16"},
    {"name": "ghost", "address": 299, "type": "uint32", "writable": True},
]


@pytest.fixture
async def writer(modbus_server: ServerFactory, ctx: DriverContext) -> Any:
    server: RunningServer = await modbus_server()
    driver = one_driver(device_config("plc", tcp(server.port), WRITABLE), ctx)
    yield server, driver
    await driver.close()


async def test_writing_a_coil_uses_fc5_and_sets_it(writer: Any) -> None:
    server, driver = writer
    await driver.write("run", True)
    assert await server.get(COILS, 3, 1) == [True]
    assert server.trace.requests() == [5]


async def test_writing_one_register_uses_fc6(writer: Any) -> None:
    server, driver = writer
    await driver.write("setpoint", 1234)
    assert await server.get(HOLDING, 40, 1) == [1234]
    assert server.trace.requests() == [6]


async def test_writing_a_float_uses_one_fc16_request_in_the_tags_order(writer: Any) -> None:
    server, driver = writer
    await driver.write("flow", 12.5)
    assert await server.get(HOLDING, 50, 2) == reference_words(12.5, "float32", ByteOrder.CDAB)
    assert server.trace.requests() == [16]


async def test_writing_a_64_bit_value_uses_one_fc16_request(writer: Any) -> None:
    server, driver = writer
    await driver.write("total", -42)
    assert await server.get(HOLDING, 60, 4) == reference_words(-42, "int64", ByteOrder.BADC)
    assert server.trace.requests() == [16]


async def test_writing_a_bit_reads_modifies_and_writes_its_register(writer: Any) -> None:
    server, driver = writer
    await server.set(HOLDING, 70, [0b1000_0000_0000_0001])
    await driver.write("valve", True)
    assert await server.get(HOLDING, 70, 1) == [0b1000_0000_0001_0001]
    assert server.trace.requests() == [3, 6]


async def test_writing_a_scaled_value_writes_its_raw_value(writer: Any) -> None:
    server, driver = writer
    await driver.write("temp_c", -12.3)
    assert await server.get(HOLDING, 80, 1) == [(-123) & 0xFFFF]


async def test_writing_text_pads_it_to_its_registers(writer: Any) -> None:
    server, driver = writer
    await driver.write("label", "ABC")
    assert await server.get(HOLDING, 90, 3) == [0x4142, 0x4300, 0x0000]


async def test_writing_a_read_only_tag_is_refused(writer: Any) -> None:
    server, driver = writer
    with pytest.raises(WriteError, match=r"plc\.reading: tag is not writable"):
        await driver.write("reading", 1)
    assert server.trace.requests() == []


async def test_writing_an_unknown_tag_is_refused(writer: Any) -> None:
    _, driver = writer
    with pytest.raises(WriteError, match="no such tag"):
        await driver.write("nope", 1)


async def test_writing_a_value_out_of_range_is_refused(writer: Any) -> None:
    server, driver = writer
    with pytest.raises(WriteError, match="outside the uint16 range"):
        await driver.write("setpoint", 70000)
    assert server.trace.requests() == []


async def test_a_write_the_device_rejects_raises_with_its_exception(writer: Any) -> None:
    _, driver = writer
    with pytest.raises(WriteError, match=r"plc\.ghost: exception 2: illegal data address"):
        await driver.write("ghost", 7)


async def test_a_write_to_an_unreachable_device_raises_with_the_reason(
    refused_port: int, ctx: DriverContext
) -> None:
    driver = one_driver(device_config("plc", tcp(refused_port), WRITABLE), ctx)
    with pytest.raises(WriteError, match=r"plc\.setpoint: connection refused"):
        await driver.write("setpoint", 1)
    await driver.close()


async def test_refused_connection_gives_bad_samples_and_a_reconnecting_status(
    refused_port: int, ctx: DriverContext, recorder: Recorder
) -> None:
    tags = [
        {"name": "a", "address": 0},
        {"name": "b", "table": "coil", "address": 0, "type": "bool"},
    ]
    driver = one_driver(device_config("plc", tcp(refused_port), tags), ctx)
    await driver.poll_once()
    await driver.close()
    samples = recorder.latest("plc")
    assert {(s.value, s.quality, s.reason) for s in samples.values()} == {
        (None, Quality.BAD, "connection refused")
    }
    status = recorder.statuses[0]
    assert (status.state, status.last_error, status.consecutive_failures) == (
        LinkState.RECONNECTING,
        "connection refused",
        1,
    )


async def test_silent_device_gives_timeout_samples_and_a_failed_status(
    silent_peer: Any, ctx: DriverContext, recorder: Recorder
) -> None:
    tags = [{"name": "a", "address": 0}]
    driver = one_driver(device_config("plc", tcp(silent_peer.port), tags, timeout="250ms"), ctx)
    await driver.poll_once()
    await driver.close()
    sample = recorder.latest("plc")["a"]
    assert (sample.value, sample.quality, sample.reason) == (
        None,
        Quality.BAD,
        "timeout after 250ms",
    )
    status = recorder.statuses[0]
    assert (status.state, status.last_error) == (LinkState.FAILED, "timeout after 250ms")


async def test_after_a_timeout_the_units_other_requests_wait_for_the_next_cycle(
    silent_peer: Any, ctx: DriverContext, recorder: Recorder
) -> None:
    tags = [
        {"name": "a", "address": 0},
        {"name": "b", "table": "input", "address": 0},
        {"name": "c", "table": "coil", "address": 0, "type": "bool"},
    ]
    device = device_config("plc", tcp(silent_peer.port), tags, timeout="200ms")
    driver = one_driver(device, ctx)
    await driver.poll_once()
    await driver.close()
    assert silent_peer.mbap_requests() == 1
    assert {s.reason for s in recorder.latest("plc").values()} == {"timeout after 200ms"}


async def test_exception_response_gives_bad_samples_naming_the_exception(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    tags = [{"name": "ok", "address": 0}, {"name": "missing", "address": 1000}]
    driver = one_driver(device_config("plc", tcp(server.port), tags), ctx)
    await driver.poll_once()
    await driver.close()
    got = recorder.latest("plc")
    assert got["ok"].quality is Quality.GOOD
    assert (got["missing"].value, got["missing"].reason) == (
        None,
        "exception 2: illegal data address",
    )
    status = recorder.statuses[0]
    assert (status.state, status.last_error) == (
        LinkState.CONNECTED,
        "exception 2: illegal data address",
    )


async def test_undecodable_text_gives_a_bad_sample_with_a_decode_error(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    await server.set(HOLDING, 0, [0xFFFE])
    tags = [{"name": "name", "address": 0, "type": "string", "length": 1}]
    driver = one_driver(device_config("plc", tcp(server.port), tags), ctx)
    await driver.poll_once()
    await driver.close()
    sample = recorder.latest("plc")["name"]
    assert sample.value is None
    assert sample.reason.startswith("decode error: text is not UTF-8")


async def test_status_reports_latency_and_poll_count(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    driver = one_driver(device_config("plc", tcp(server.port), [{"name": "a", "address": 0}]), ctx)
    await driver.poll_once()
    await driver.poll_once()
    status = driver.status()
    await driver.close()
    assert (status.state, status.polls, status.consecutive_failures) == (LinkState.CONNECTED, 2, 0)
    assert status.latency_ms is not None
    assert status.latency_ms > 0
    assert [s.polls for s in recorder.statuses[:2]] == [1, 2]


async def test_close_reports_the_stopped_state(
    refused_port: int, ctx: DriverContext, recorder: Recorder
) -> None:
    driver = one_driver(device_config("plc", tcp(refused_port), [{"name": "a", "address": 0}]), ctx)
    await driver.close()
    assert recorder.statuses[-1].state is LinkState.STOPPED


FAULTS = ["refused", "silent", "exception"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_faulty_device_does_not_slow_a_healthy_ones_polls(
    fault: str,
    modbus_server: ServerFactory,
    refused_port: int,
    silent_peer: Any,
    ctx: DriverContext,
    recorder: Recorder,
) -> None:
    healthy_server: RunningServer = await modbus_server()
    bad_port = {
        "refused": refused_port,
        "silent": silent_peer.port,
        "exception": (await modbus_server()).port,
    }[fault]
    healthy = device_config(
        "healthy", tcp(healthy_server.port), [{"name": "a", "address": 0}], poll_interval="150ms"
    )
    faulty = device_config(
        "faulty", tcp(bad_port), [{"name": "a", "address": 5000}], poll_interval="150ms"
    )
    drivers = build_modbus_drivers([healthy, faulty], ctx, backoff=FAST_BACKOFF)
    await run_for(drivers, 1.4)
    healthy_batches = recorder.of("healthy")
    assert all(s.quality is Quality.GOOD for batch in healthy_batches for s in batch)
    gaps = intervals_ms(healthy_batches)
    assert len(gaps) >= 6
    assert max(gaps) <= 150 + 100, gaps
    assert recorder.status_of("healthy").skipped_cycles == 0
    assert all(s.quality is Quality.BAD for batch in recorder.of("faulty") for s in batch)


class SteppedClock:
    """Monotonic time that moves only when told (and to each deadline slept until)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(self.now * 1000)

    async def sleep_until(self, deadline: float) -> None:
        self.sleeps.append(round(deadline - 1000.0, 6))
        self.now = max(self.now, deadline)
        await asyncio.sleep(0)


async def run_with_poll_duration(
    server: RunningServer, tmp_path: Path, poll_seconds: float, polls: int
) -> tuple[SteppedClock, ModbusDriver]:
    """Runs a driver whose every poll takes `poll_seconds` of clock time, for `polls` polls."""
    clock = SteppedClock()
    done = asyncio.Event()
    count = 0

    def on_samples(_: Any) -> None:
        nonlocal count
        clock.now += poll_seconds
        count += 1
        if count == polls:
            done.set()

    ctx = DriverContext(clock, on_samples, lambda _: None, tmp_path)
    device = device_config(
        "plc", tcp(server.port), [{"name": "a", "address": 0}], poll_interval="100ms"
    )
    driver = one_driver(device, ctx)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(driver.run())
        await done.wait()
        task.cancel()
    return clock, driver


async def test_poll_schedule_does_not_drift_with_poll_duration(
    modbus_server: ServerFactory, tmp_path: Path
) -> None:
    clock, driver = await run_with_poll_duration(await modbus_server(), tmp_path, 0.03, 5)
    assert clock.sleeps[:5] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert driver.status().skipped_cycles == 0


async def test_overrunning_polls_skip_missed_cycles_and_count_them(
    modbus_server: ServerFactory, tmp_path: Path
) -> None:
    clock, driver = await run_with_poll_duration(await modbus_server(), tmp_path, 0.25, 3)
    assert clock.sleeps[:3] == [0.0, 0.3, 0.6]
    assert driver.status().skipped_cycles == 6


async def test_device_reconnects_after_its_server_restarts(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    await server.set(HOLDING, 0, [7])
    driver = one_driver(device_config("plc", tcp(server.port), [{"name": "a", "address": 0}]), ctx)
    await driver.poll_once()
    await server.stop()
    await driver.poll_once()
    assert recorder.latest("plc")["a"].quality is Quality.BAD
    restarted: RunningServer = await modbus_server(port=server.port)
    await restarted.set(HOLDING, 0, [8])
    async with asyncio.timeout(5):
        while recorder.latest("plc")["a"].value != 8:
            await asyncio.sleep(0.05)
            await driver.poll_once()
    status = driver.status()
    await driver.close()
    assert (status.state, status.reconnects) == (LinkState.CONNECTED, 1)


async def test_failure_and_recovery_are_each_logged_once(
    modbus_server: ServerFactory, refused_port: int, ctx: DriverContext
) -> None:
    driver = one_driver(device_config("plc", tcp(refused_port), [{"name": "a", "address": 0}]), ctx)
    with capture_logs() as logs:
        for _ in range(3):
            await driver.poll_once()
        await modbus_server(port=refused_port)
        async with asyncio.timeout(5):
            while driver.status().state is not LinkState.CONNECTED:
                await asyncio.sleep(0.03)
                await driver.poll_once()
        await driver.poll_once()
    await driver.close()
    events = [e["event"] for e in logs if e["event"].startswith("modbus device")]
    assert events == ["modbus device failed", "modbus device recovered"]

"""SimModbusServer on a serial line: Modbus RTU over a socat pty pair, read by a real client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient

from drivers.modbus.codec import decode
from drivers.modbus.config import ByteOrder, DataType
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.plant import Plant
from drivers.sim.scenario import Scenario

from .conftest import device


@pytest.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Two linked pseudo-terminals: what one end writes, the other reads (a null modem)."""
    server_end, client_end = tmp_path / "server", tmp_path / "client"
    proc = await asyncio.create_subprocess_exec(
        "socat",
        f"pty,raw,echo=0,link={server_end}",
        f"pty,raw,echo=0,link={client_end}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(5):
            # socat makes the links when it is ready; nothing to wait on but the files.
            while not (server_end.exists() and client_end.exists()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        yield str(server_end), str(client_end)
    finally:
        proc.terminate()
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5)


async def test_rtu_client_reads_the_water_meter_over_a_serial_line(
    pty_pair: tuple[str, str], plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    server_end, client_end = pty_pair
    meter = device(normal_day, "water-meter")
    async with SimModbusServer(plant_mid_shift, [meter], serial_port=server_end, baudrate=19200):
        client = AsyncModbusSerialClient(client_end, baudrate=19200, timeout=2, retries=1)
        assert await asyncio.wait_for(client.connect(), 5)
        try:
            reply = await client.read_holding_registers(0, count=2, device_id=meter.unit_id)
        finally:
            client.close()
    assert not reply.isError()
    flow = decode(reply.registers, DataType.FLOAT32, ByteOrder.CDAB)
    assert flow == pytest.approx(
        float(plant_mid_shift.read_point("water_meter.flow_m3_h")), rel=1e-6
    )

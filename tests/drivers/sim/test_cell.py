"""SimCell: the plant and its Modbus faces on free ports, in lock-step and in real time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.codec import decode, encode
from drivers.modbus.config import ByteOrder, DataType
from drivers.sim.cell import SimCell, SimCellError
from drivers.sim.scenario import Scenario


async def _read_energy(endpoint: tuple[str, int, int]) -> float:
    host, port, unit = endpoint
    client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
    assert await asyncio.wait_for(client.connect(), 5)
    try:
        reply = await client.read_input_registers(72, count=2, device_id=unit)
    finally:
        client.close()
    value = decode(reply.registers, DataType.FLOAT32, ByteOrder.ABCD)
    assert isinstance(value, float)
    return value


async def test_every_modbus_device_gets_an_endpoint_on_a_free_port(normal_day: Scenario) -> None:
    async with SimCell(normal_day, speed=None, ports=0, opcua=False) as cell:
        endpoints = dict(cell.modbus_endpoints)
    assert set(endpoints) == {d.name for d in normal_day.modbus_devices}
    ports = [port for _, port, _ in endpoints.values()]
    assert len(set(ports)) == len(ports)
    assert all(host == "127.0.0.1" and port > 0 for host, port, _ in endpoints.values())


async def test_lock_step_moves_plant_time_and_registers_together(normal_day: Scenario) -> None:
    async with SimCell(normal_day, speed=None, ports=0, opcua=False) as cell:
        before = await _read_energy(cell.modbus_endpoints["site-meter"])
        await cell.step(3600.0)
        after = await _read_energy(cell.modbus_endpoints["site-meter"])
        assert cell.plant.time_s == 3600.0
        assert after == pytest.approx(
            float(cell.plant.read_point("site_meter.import_energy_kwh")), rel=1e-7
        )
    assert after > before


async def test_real_time_cell_advances_at_its_speed(normal_day: Scenario) -> None:
    async with SimCell(normal_day, speed=600.0, ports=0, tick=0.05, opcua=False) as cell:
        await asyncio.sleep(0.5)
        simulated = cell.plant.time_s
    # At 600x, half a second of real time is about 300 simulated seconds (loose: shared CPU).
    assert 60.0 < simulated < 1200.0


async def test_step_is_refused_on_a_real_time_cell(normal_day: Scenario) -> None:
    async with SimCell(normal_day, speed=1.0, ports=0, opcua=False) as cell:
        with pytest.raises(SimCellError, match="lock-step"):
            await cell.step(1.0)


async def test_opcua_face_serves_the_plant_and_passes_writes(normal_day: Scenario) -> None:
    from asyncua import Client, ua

    async with SimCell(normal_day, speed=None, ports=0) as cell:
        await cell.step(8 * 3600.0)
        endpoint = cell.opcua_endpoints["utility-plc"]
        async with Client(endpoint, timeout=5) as client:
            pressure = await client.get_node("ns=2;s=Compressor.Pressure").read_value()
            await client.get_node("ns=2;s=Compressor.Heartbeat").write_value(
                ua.DataValue(ua.Variant(5, ua.VariantType.UInt16))
            )
            await client.get_node("ns=2;s=Compressor.PressureSetpoint").write_value(
                ua.DataValue(ua.Variant(6.9, ua.VariantType.Double))
            )
        assert pressure == cell.plant.read_point("compressor.pressure_bar")
        assert cell.plant.read_point("compressor.pressure_setpoint_bar") == 6.9


async def test_ground_truth_goes_to_a_file_not_to_the_protocols(
    normal_day: Scenario, tmp_path: Path
) -> None:
    async with SimCell(normal_day, speed=None, ports=0, opcua=False) as cell:
        await cell.step(3600.0)
        cell.write_ground_truth(tmp_path / "truth.json")
        points = list(cell.plant.point_names())
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["elapsed_s"] == 3600.0
    assert truth["site_import_kwh"] > 0
    # Nothing a protocol can read says where a leak is or when it started.
    assert not any("leak" in point for point in points)


async def test_plc_drops_a_modbus_written_setpoint_when_the_heartbeat_stops(
    normal_day: Scenario,
) -> None:
    default = normal_day.chilled_water.supply_setpoint_c.default
    async with SimCell(normal_day, speed=None, ports=0, opcua=False) as cell:
        host, port, unit = cell.modbus_endpoints["process-plc"]
        client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
        assert await asyncio.wait_for(client.connect(), 5)
        try:
            await client.write_register(110, 1, device_id=unit)  # chiller heartbeat
            await client.write_registers(
                100, encode(11.0, DataType.FLOAT32, ByteOrder.ABCD), device_id=unit
            )
            await cell.step(20.0)
            held = await client.read_holding_registers(100, count=2, device_id=unit)
            await cell.step(60.0)  # past the 30 s watchdog with no new heartbeat
            dropped = await client.read_holding_registers(100, count=2, device_id=unit)
        finally:
            client.close()
    assert decode(held.registers, DataType.FLOAT32, ByteOrder.ABCD) == 11.0
    assert decode(dropped.registers, DataType.FLOAT32, ByteOrder.ABCD) == default

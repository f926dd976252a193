"""SimModbusServer over real Modbus TCP: a pymodbus client and mbpoll read the plant's values,
and writes reach the plant through the PLC's limits."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.codec import decode, encode
from drivers.modbus.config import ByteOrder, DataType
from drivers.sim.modbus_server import SimModbusServer, SimServerError
from drivers.sim.plant import Plant
from drivers.sim.scenario import ModbusDeviceSpec, Scenario

from .conftest import device


async def _client(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await asyncio.wait_for(client.connect(), 5)
    return client


def _float(registers: list[int], order: ByteOrder) -> float:
    value = decode(registers, DataType.FLOAT32, order)
    assert isinstance(value, float)
    return value


def _as_float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


async def test_energy_meter_input_registers_hold_the_plant_values_in_abcd(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    meter = device(normal_day, "site-meter")
    async with SimModbusServer(plant_mid_shift, [meter], port=0) as server:
        client = await _client(server.port)
        try:
            reply = await client.read_input_registers(0, count=18, device_id=1)
            power = await client.read_input_registers(52, count=2, device_id=1)
            energy = await client.read_input_registers(72, count=2, device_id=1)
        finally:
            client.close()
    assert not reply.isError()
    voltages = [_float(reply.registers[i : i + 2], ByteOrder.ABCD) for i in (0, 2, 4)]
    assert voltages == [
        _as_float32(float(plant_mid_shift.read_point(f"site_meter.voltage_l{n}_v")))
        for n in (1, 2, 3)
    ]
    # The SDM630 serves power in W.
    assert _float(power.registers, ByteOrder.ABCD) == _as_float32(
        float(plant_mid_shift.read_point("site_meter.active_power_kw")) * 1000
    )
    assert _float(energy.registers, ByteOrder.ABCD) == _as_float32(
        float(plant_mid_shift.read_point("site_meter.import_energy_kwh"))
    )


async def test_water_meter_holding_registers_are_word_swapped(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    meter = device(normal_day, "water-meter")
    assert meter.word_order is ByteOrder.CDAB
    async with SimModbusServer(plant_mid_shift, [meter], port=0) as server:
        client = await _client(server.port)
        try:
            flow = await client.read_holding_registers(0, count=2, device_id=1)
            total = await client.read_holding_registers(112, count=2, device_id=1)
        finally:
            client.close()
    expected_flow = _as_float32(float(plant_mid_shift.read_point("water_meter.flow_m3_h")))
    assert _float(flow.registers, ByteOrder.CDAB) == expected_flow
    assert flow.registers == encode(expected_flow, DataType.FLOAT32, ByteOrder.CDAB)
    assert _float(total.registers, ByteOrder.CDAB) == _as_float32(
        float(plant_mid_shift.read_point("water_meter.total_m3"))
    )


async def test_refresh_brings_new_plant_values_to_the_registers(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    meter = device(normal_day, "site-meter")
    async with SimModbusServer(plant_mid_shift, [meter], port=0) as server:
        client = await _client(server.port)
        try:
            before = await client.read_input_registers(72, count=2, device_id=1)
            for _ in range(60):
                plant_mid_shift.step(5.0)
            await server.refresh()
            after = await client.read_input_registers(72, count=2, device_id=1)
        finally:
            client.close()
    assert _float(after.registers, ByteOrder.ABCD) > _float(before.registers, ByteOrder.ABCD)
    assert _float(after.registers, ByteOrder.ABCD) == _as_float32(
        float(plant_mid_shift.read_point("site_meter.import_energy_kwh"))
    )


async def test_written_setpoint_reaches_the_plant(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    plc = device(normal_day, "process-plc")
    async with SimModbusServer(plant_mid_shift, [plc], port=0) as server:
        client = await _client(server.port)
        try:
            beat = await client.write_register(110, 7, device_id=1)  # chiller heartbeat
            wrote = await client.write_registers(
                100, encode(10.5, DataType.FLOAT32, ByteOrder.ABCD), device_id=1
            )
            await server.refresh()
            readback = await client.read_holding_registers(100, count=2, device_id=1)
        finally:
            client.close()
    assert not beat.isError()
    assert not wrote.isError()
    assert plant_mid_shift.read_point("chiller.supply_setpoint_c") == 10.5
    assert _float(readback.registers, ByteOrder.ABCD) == 10.5


async def test_written_setpoint_is_clamped_to_the_plc_limits(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    plc = device(normal_day, "process-plc")
    limit = normal_day.chilled_water.supply_setpoint_c.max
    async with SimModbusServer(plant_mid_shift, [plc], port=0) as server:
        client = await _client(server.port)
        try:
            await client.write_register(110, 1, device_id=1)
            await client.write_registers(
                100, encode(40.0, DataType.FLOAT32, ByteOrder.ABCD), device_id=1
            )
            await server.refresh()
            readback = await client.read_holding_registers(100, count=2, device_id=1)
        finally:
            client.close()
    assert _float(readback.registers, ByteOrder.ABCD) == limit


async def test_write_to_a_measurement_is_refused_with_illegal_address(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    plc = device(normal_day, "process-plc")
    before = plant_mid_shift.read_point("chiller.supply_temp_c")
    async with SimModbusServer(plant_mid_shift, [plc], port=0) as server:
        client = await _client(server.port)
        try:
            reply = await client.write_registers(
                0, encode(1.0, DataType.FLOAT32, ByteOrder.ABCD), device_id=1
            )
        finally:
            client.close()
    assert reply.isError()
    assert reply.exception_code == 2
    assert plant_mid_shift.read_point("chiller.supply_temp_c") == before


async def test_gaps_inside_the_map_read_as_zero(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    meter = device(normal_day, "site-meter")
    async with SimModbusServer(plant_mid_shift, [meter], port=0) as server:
        client = await _client(server.port)
        try:
            reply = await client.read_input_registers(18, count=34, device_id=1)
        finally:
            client.close()
    assert reply.registers == [0] * 34


def test_a_register_for_an_unknown_point_is_refused(plant_mid_shift: Plant) -> None:
    spec = ModbusDeviceSpec.model_validate(
        {"name": "bad", "registers": [{"point": "nowhere.nothing", "address": 0}]}
    )
    with pytest.raises(SimServerError, match=r"no point 'nowhere\.nothing'"):
        SimModbusServer(plant_mid_shift, [spec])


async def test_mbpoll_reads_the_energy_meter(plant_mid_shift: Plant, normal_day: Scenario) -> None:
    meter = device(normal_day, "site-meter")
    async with SimModbusServer(plant_mid_shift, [meter], port=0) as server:
        # Input registers (-t 3), float, big-endian word order (-B), references from 1.
        proc = await asyncio.create_subprocess_exec(
            "mbpoll",
            "-m",
            "tcp",
            "-a",
            "1",
            "-r",
            "1",
            "-c",
            "3",
            "-t",
            "3:float",
            "-B",
            "-1",
            "-o",
            "2",
            "-p",
            str(server.port),
            "127.0.0.1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()
    values = {
        line.split(":")[0].strip(" [").rstrip("]"): float(line.split(":")[1])
        for line in out.decode().splitlines()
        if line.startswith("[")
    }
    for n, ref in ((1, "1"), (2, "3"), (3, "5")):
        expected = float(plant_mid_shift.read_point(f"site_meter.voltage_l{n}_v"))
        assert values[ref] == pytest.approx(expected, abs=1e-3)


async def test_standby_request_and_heater_enable_written_over_modbus_reach_the_plant(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    plc = device(normal_day, "process-plc")
    async with SimModbusServer(plant_mid_shift, [plc], port=0) as server:
        client = await _client(server.port)
        try:
            await client.write_register(112, 3, device_id=1)  # process heartbeat
            request = await client.write_register(46, 1, device_id=1)  # press-1 standby
            enable = await client.write_register(50, 0, device_id=1)  # wash-tank heater off
            plant_mid_shift.step(5.0)
            await server.refresh()
            state = await client.read_holding_registers(40, count=1, device_id=1)
            commands = await client.read_holding_registers(46, count=6, device_id=1)
        finally:
            client.close()
    assert not request.isError()
    assert not enable.isError()
    assert state.registers == [1]  # press-1 in standby
    assert commands.registers == [1, 0, 0, 0, 0, 1]  # requests 46-49, heater 50, charger 51
    assert plant_mid_shift.read_point("wash-tank.heater_power_kw") == 0.0

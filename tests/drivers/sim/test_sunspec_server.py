"""The simulated PV inverter and battery as SunSpec devices, checked by the SunSpec Alliance's
own client (pysunspec2): it finds `SunS`, walks the models, reads PV power and SoC through their
scale factors, writes the battery's rate, and the plant follows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sunspec2.modbus.client as sunspec_client  # the SunSpec Alliance's client (dev extra)
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.sunspec_models import MODELS
from drivers.sim.cell import SimCell
from drivers.sim.scenario import (
    BatterySpec,
    PvSpec,
    Scenario,
    ScenarioError,
    SunSpecDeviceSpec,
    load_scenario,
)


def storage_scenario() -> Scenario:
    base = load_scenario("normal-day")
    return base.model_copy(
        update={
            "pv": PvSpec(latitude=48.78, longitude=9.18, kwp=150.0),
            "battery": BatterySpec(
                usable_kwh=200.0, max_charge_kw=100.0, max_discharge_kw=100.0, initial_soc_pct=60.0
            ),
            "sunspec_devices": [
                SunSpecDeviceSpec(name="pv-inverter", equipment="pv", model="STP 110-60"),
                SunSpecDeviceSpec(name="battery", equipment="battery", unit_id=3),
            ],
        }
    )


@pytest.fixture
async def cell() -> AsyncIterator[SimCell]:
    async with SimCell(storage_scenario(), speed=None, ports=0, opcua=False) as cell:
        await cell.step(12 * 3600.0)  # noon: the sun is up, the battery in its local program
        yield cell


@pytest.fixture
async def night_cell() -> AsyncIterator[SimCell]:
    async with SimCell(storage_scenario(), speed=None, ports=0, opcua=False) as cell:
        await cell.step(300.0)  # 00:05: the battery covers the night's import from 60 % SoC
        yield cell


def scan(endpoint: tuple[str, int, int]) -> Any:
    host, port, unit = endpoint
    device = sunspec_client.SunSpecModbusClientDeviceTCP(
        slave_id=unit, ipaddr=host, ipport=port, timeout=5
    )
    device.scan()
    return device


def model_ids(device: Any) -> list[int]:
    return sorted(key for key in device.models if isinstance(key, int))


async def test_pysunspec2_discovers_the_pv_inverter_and_reads_its_power(cell: SimCell) -> None:
    device = await asyncio.to_thread(scan, cell.modbus_endpoints["pv-inverter"])
    try:
        assert device.base_addr == 40000
        assert model_ids(device) == [1, 103]
        common = device.models[1][0]
        assert common.Mn.value == "edgecell-sim"
        assert common.Md.value == "STP 110-60"
        inverter = device.models[103][0]
        watts = inverter.W.cvalue
        plant_kw = float(cell.plant.read_point("pv.power_kw"))
        assert plant_kw > 50.0
        assert watts == pytest.approx(plant_kw * 1000.0, abs=5.0)  # W_SF 1: 10 W steps
        assert inverter.St.value == 4  # MPPT
        assert inverter.Hz.cvalue == pytest.approx(
            float(cell.plant.read_point("site_meter.frequency_hz")), abs=0.005
        )
        assert inverter.WH.cvalue == pytest.approx(
            float(cell.plant.read_point("pv.energy_kwh")) * 1000.0, abs=1.0
        )
        # Every point pysunspec2 decodes the way our own table says it is laid out.
        for model_id in (1, 103):
            group = device.models[model_id][0]
            for point in MODELS[model_id].points:
                assert group.points[point.name].offset == point.offset, (model_id, point.name)
                assert group.points[point.name].len == point.size, (model_id, point.name)
    finally:
        device.close()


def write_rate(device: Any, name: str, percent: float) -> None:
    storage = device.models[124][0]
    storage.read()
    storage.StorCtl_Mod.value = 3
    getattr(storage, name).cvalue = percent
    storage.write()


async def test_pysunspec2_reads_soc_and_writes_the_battery_setpoint_the_plant_follows(
    night_cell: SimCell,
) -> None:
    cell = night_cell
    endpoint = cell.modbus_endpoints["battery"]
    assert endpoint[2] == 3
    device = await asyncio.to_thread(scan, endpoint)
    try:
        assert model_ids(device) == [1, 103, 124]
        storage = device.models[124][0]
        soc = float(cell.plant.read_point("battery.soc_pct"))
        assert storage.ChaState.cvalue == pytest.approx(soc, abs=0.05)
        assert storage.WChaMax.cvalue == pytest.approx(100_000.0)
        assert storage.StorCtl_Mod.value == 0  # its local program
        assert storage.InOutWRte_RvrtTms.value == 30

        await asyncio.to_thread(write_rate, device, "OutWRte", 50.0)
        assert cell.plant.read_point("battery.setpoint_kw") == pytest.approx(50.0)
        await cell.step(10.0)
        assert cell.plant.read_point("battery.power_kw") == pytest.approx(50.0)
        await asyncio.to_thread(device.models[103][0].read)
        await asyncio.to_thread(storage.read)
        assert device.models[103][0].W.cvalue == pytest.approx(50_000.0, abs=5.0)
        assert storage.StorCtl_Mod.value == 3
        assert storage.ChaSt.value == 3  # DISCHARGING
        assert storage.OutWRte.cvalue == pytest.approx(50.0)

        await asyncio.to_thread(write_rate, device, "InWRte", 40.0)  # charge at 40 %
        await cell.step(10.0)
        assert cell.plant.read_point("battery.power_kw") == pytest.approx(-40.0)
        await asyncio.to_thread(storage.read)
        assert storage.ChaSt.value == 4  # CHARGING
        assert storage.ChaState.cvalue > soc - 1.0

        await cell.step(60.0)  # silence past the 30 s revert timer
        await asyncio.to_thread(storage.read)
        assert storage.StorCtl_Mod.value == 0
        assert cell.plant.read_point("battery.following_setpoint") is False
    finally:
        device.close()


async def test_the_battery_refuses_writes_it_cannot_follow(cell: SimCell) -> None:
    host, port, unit = cell.modbus_endpoints["battery"]
    base = 40000 + 2 + (2 + MODELS[1].length) + (2 + MODELS[103].length)
    out_rate = base + MODELS[124].point("OutWRte").offset
    client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
    assert await client.connect()
    try:
        too_much = await client.write_register(out_rate, 2000, device_id=unit)  # 200 %
        assert too_much.isError()
        assert too_much.exception_code == 3  # ILLEGAL DATA VALUE
        read_only = await client.write_register(
            base + MODELS[124].point("ChaState").offset, 100, device_id=unit
        )
        assert read_only.isError()
        assert read_only.exception_code == 2  # ILLEGAL DATA ADDRESS
        marker = await client.write_registers(40000, [0, 0], device_id=unit)
        assert marker.isError()
        assert cell.plant.read_point("battery.following_setpoint") is False
        reply = await client.read_holding_registers(40000, count=2, device_id=unit)
        assert reply.registers == [0x5375, 0x6E53]
    finally:
        client.close()


def test_a_sunspec_device_needs_its_equipment(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("base: normal-day\nname: bad\nsunspec_devices: [{name: inv, equipment: pv}]\n")
    with pytest.raises(ScenarioError, match="no pv: section"):
        load_scenario(path)

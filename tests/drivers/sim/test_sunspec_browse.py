"""`edgecell browse modbus://...` against the simulated SunSpec battery: it lists the models,
prints a `devices:` entry that `edgecell validate` accepts, and that entry polls the device
through the scale factors. A device without SunSpec, and a bad address, are refused."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.clock import SystemClock
from controller.config import load_config
from controller.model import DeviceStatus, Quality, Sample
from drivers.base import DriverContext
from drivers.modbus import ModbusDriver, build_modbus_drivers
from drivers.modbus.config import ModbusDevice
from drivers.sim.cell import SimCell

from .test_sunspec_server import storage_scenario

REPO = Path(__file__).resolve().parents[3]


async def edgecell(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def cell() -> AsyncIterator[SimCell]:
    scenario = storage_scenario()
    scenario = scenario.model_copy(
        update={"modbus_devices": [d for d in scenario.modbus_devices if d.name == "site-meter"]}
    )
    async with SimCell(scenario, speed=None, ports=0, opcua=False) as cell:
        await cell.step(300.0)
        yield cell


class Collect:
    def __init__(self) -> None:
        self.samples: dict[str, Sample] = {}

    def on_samples(self, samples: list[Sample]) -> None:
        self.samples.update((s.tag, s) for s in samples)

    def on_status(self, status: DeviceStatus) -> None:
        del status


async def test_browse_lists_the_models_and_prints_an_entry_that_validates_and_runs(
    cell: SimCell, tmp_path: Path
) -> None:
    host, port, unit = cell.modbus_endpoints["battery"]
    url = f"modbus://{host}:{port}"
    code, out, err = await edgecell("browse", url, "--unit", str(unit))
    assert code == 0, err
    assert "base 40000" in out
    for line in ("model 1 ", "model 103 ", "model 124 ", "Mn: edgecell-sim", "end model"):
        assert line in out, out

    code, out, err = await edgecell("browse", url, "--unit", str(unit), "--yaml", "--name", "bess")
    assert code == 0, err
    assert "scale_factor: storage_chastate_sf" in out
    browsed = tmp_path / "browsed.yaml"
    browsed.write_text(out)
    code, vout, verr = await edgecell("validate", str(browsed))
    assert code == 0, vout + verr

    (device,) = load_config(browsed).config.devices
    assert isinstance(device, ModbusDevice)
    collect = Collect()
    ctx = DriverContext(
        clock=SystemClock(),
        on_samples=collect.on_samples,
        on_status=collect.on_status,
        state_dir=tmp_path,
    )
    (driver,) = build_modbus_drivers([device], ctx)
    assert isinstance(driver, ModbusDriver)
    try:
        await driver.poll_once()
    finally:
        await driver.close()
    got = collect.samples
    assert all(s.quality is Quality.GOOD for s in got.values()), [
        (s.tag, s.reason) for s in got.values() if s.quality is not Quality.GOOD
    ]
    soc = float(cell.plant.read_point("battery.soc_pct"))
    assert got["storage_chastate"].value == pytest.approx(soc, abs=0.05)
    watts = float(cell.plant.read_point("battery.power_kw")) * 1000.0
    assert got["inverter_w"].value == pytest.approx(watts, abs=5.0)
    assert got["common_mn"].value == "edgecell-sim"
    assert "storage_inbatv" not in got  # not implemented on the simulated battery: left out


async def test_a_device_without_sunspec_and_a_bad_address_are_refused(cell: SimCell) -> None:
    host, port, unit = cell.modbus_endpoints["site-meter"]
    code, out, err = await edgecell("browse", f"modbus://{host}:{port}", "--unit", str(unit))
    assert code == 1
    assert out == ""
    assert "no SunSpec marker 'SunS' at 40000, 0, 50000" in err
    code, _, err = await edgecell("browse", "modbus://127.0.0.1:99999")
    assert code == 2
    assert "edgecell browse:" in err
    code, _, err = await edgecell("browse", f"modbus://{host}:{port}", "--unit", "300")
    assert code == 2
    assert "--unit 300" in err

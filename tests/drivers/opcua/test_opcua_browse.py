"""`edgecell browse` against the simulated PLC: the tree, and a --yaml device entry that the
config loader accepts."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from opcua_peers import UTILITY_PLC

from controller.config import parse_config
from drivers.opcua.browse import browse, format_tree, format_yaml
from drivers.opcua.config import OpcUaDevice

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO = Path(__file__).resolve().parents[3]


async def test_tree_shows_the_compressor_nodes(sim, tmp_path: Path):
    root = await browse(sim.endpoint, 3, state_dir=tmp_path)
    tree = format_tree(root)
    ns = sim.namespace_index
    pressure, setpoint, running = (
        json.dumps(sim.plant.read_point(point))
        for point in (
            "compressor.pressure_bar",
            "compressor.pressure_setpoint_bar",
            "compressor.running",
        )
    )
    assert f"├── {ns}:Compressor  (Object)  [ns={ns};s=Compressor]" in tree
    assert f"{ns}:Pressure  Double = {pressure}  [ns={ns};s=Compressor.Pressure]" in tree
    assert (
        f"{ns}:PressureSetpoint  Double = {setpoint}  writable  "
        f"[ns={ns};s=Compressor.PressureSetpoint]" in tree
    )
    assert f"{ns}:Running  Boolean = {running}  [ns={ns};s=Compressor.Running]" in tree
    assert "0:Server" not in tree


async def test_yaml_is_a_device_entry_the_config_accepts(sim, tmp_path: Path):
    root = await browse(sim.endpoint, 3, state_dir=tmp_path)
    text = format_yaml(root, endpoint=sim.endpoint, device_name="compressor-room")
    config = parse_config(text, "browsed.yaml")
    device = config.devices[0]
    assert isinstance(device, OpcUaDevice)
    nodes = {tag.name: tag.node for tag in device.tags}
    ns = sim.namespace_index
    assert nodes["compressor_pressure"] == f"ns={ns};s=Compressor.Pressure"
    assert nodes["compressor_pressure_setpoint"] == f"ns={ns};s=Compressor.PressureSetpoint"
    assert nodes["chiller_supply_temperature"] == f"ns={ns};s=Chiller.SupplyTemperature"
    # The chiller's alarm condition is not a folder of tags: it is offered as events.
    assert len(device.tags) == sum(len(obj.points) for obj in UTILITY_PLC.objects)
    assert [e.notifier for e in device.events] == ["i=2253"]
    assert f"condition: ns={ns};s=Chiller.SupplyTemperatureHigh" in text


async def test_browse_command_prints_the_tree(sim, tmp_path: Path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        "browse",
        sim.endpoint,
        "--depth",
        "2",
        "--state-dir",
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    power = sim.plant.read_point("compressor.motor_power_kw")
    assert f"{sim.namespace_index}:MotorPower  Float = {json.dumps(power)}" in out.decode()


async def test_browse_command_with_unoffered_policy_fails_clearly(sim, tmp_path: Path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        "browse",
        sim.endpoint,
        "--policy",
        "Basic256Sha256",
        "--mode",
        "Sign",
        "--state-dir",
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 1
    assert out == b""
    assert "edgecell browse: the server does not offer security Basic256Sha256/Sign" in err.decode()


async def test_browse_yaml_output_validates_as_it_is(sim, tmp_path: Path):
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

    code, out, err = await edgecell(
        "browse", sim.endpoint, "--yaml", "--depth", "3", "--state-dir", str(tmp_path)
    )
    assert code == 0, err
    browsed = tmp_path / "browsed.yaml"
    browsed.write_text(out)
    code, out, err = await edgecell("validate", str(browsed))
    assert code == 0, out + err

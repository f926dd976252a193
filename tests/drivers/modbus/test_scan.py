"""`edgecell scan` against real Modbus peers: every device of the simulated cell (its unit and
every readable block, edges exact to the register, as the scenario maps them), and an RTU line
(socat pair) with a silent unit and an absent one, where the scan must not stall and must send
nothing but reads. The printed config validates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.config import parse_config
from drivers.modbus.config import ModbusDevice, SerialLink, Table, TcpLink
from drivers.modbus.scan import Block, ScanLimits, format_yaml, parse_units, scan
from drivers.sim.cell import SimCell
from drivers.sim.scenario import load_scenario

from .conftest import BITS, REGISTERS, SerialPair, Trace

ROOT = Path(__file__).resolve().parents[3]
FAST = ScanLimits(timeout=0.3, rate=1000.0)


def _expected_blocks(spec: Any) -> list[Block]:
    """The sim serves, per table, every address from its first to its last mapped register;
    a bit table it does not use reads as 16 zeros at 0 (pymodbus wants every table)."""
    blocks = []
    for table in (Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE):
        regs = [r for r in spec.registers if r.table is table]
        if regs:
            start = min(r.address for r in regs)
            end = max(r.address + r.register_count for r in regs)
            blocks.append(Block(table, start, end - start))
        elif table.is_bits:
            blocks.append(Block(table, 0, 16))
    return blocks


async def test_scan_finds_every_unit_and_block_of_the_simulated_cell() -> None:
    scenario = load_scenario("normal-day")
    async with SimCell(scenario, speed=None, ports=0, opcua=False) as cell:
        for spec in scenario.modbus_devices:
            host, port, unit = cell.modbus_endpoints[spec.name]
            link = TcpLink(host=host, port=port)
            report = await scan(link, [1, 2, 3], FAST)
            assert [u.unit for u in report.units] == [unit], spec.name
            found = report.units[0].blocks
            assert found == _expected_blocks(spec), spec.name
            config = parse_config(format_yaml(link, report, device_prefix=spec.name), "s.yaml")
            device = config.devices[0]
            assert isinstance(device, ModbusDevice)
            assert device.unit_id == unit
            served = {(b.table, a) for b in found for a in range(b.start, b.end)}
            listed = {(t.table, t.address) for t in device.tags}
            assert listed == served, spec.name


async def test_rtu_line_with_a_silent_unit_is_scanned_without_stalling(
    serial_pair: SerialPair, serial_server: Any
) -> None:
    trace = Trace(silent_units=frozenset({2}))
    await serial_server((1, 2, 3), trace)
    link = SerialLink(transport="rtu", port=serial_pair.client_port, baudrate=115200)
    limits = ScanLimits(timeout=0.3, rate=200.0, max_address=400)
    started = asyncio.get_running_loop().time()
    report = await scan(link, [1, 2, 3, 4], limits)
    elapsed = asyncio.get_running_loop().time() - started
    assert [u.unit for u in report.units] == [1, 3]
    assert report.silent == [2, 4]
    for unit in report.units:
        assert unit.blocks == [
            Block(Table.HOLDING, 0, REGISTERS),
            Block(Table.INPUT, 0, REGISTERS),
            Block(Table.COIL, 0, BITS),
            Block(Table.DISCRETE, 0, BITS),
        ]
    # Reads only: function codes 1-4, nothing that writes.
    assert set(trace.requests()) <= {1, 2, 3, 4}
    # Two units that never answer cost one bounded timeout each (plus the line's pause).
    assert elapsed < 60, elapsed
    text = format_yaml(link, report, device_prefix="line")
    config = parse_config(text, "s.yaml")
    assert [d.unit_id for d in config.devices if isinstance(d, ModbusDevice)] == [1, 3]
    assert "silent: 2,4" in text


def test_unit_ranges_are_parsed_and_bad_ones_refused() -> None:
    assert parse_units("1-3,7, 9-10") == [1, 2, 3, 7, 9, 10]
    for bad in ("0-300", "5-2", "a", "1;2", ""):
        with pytest.raises(ValueError, match="unit id"):
            parse_units(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "not a host"], "neither host[:port] nor a serial port"),
        (["scan", "127.0.0.1:1", "--units", "1-999"], "unit ids are 0-247"),
        (["scan", "127.0.0.1:1", "--rate", "0"], "--rate"),
        (["scan", "127.0.0.1:1", "--tables", "holding,registers"], "registers"),
    ],
)
def test_bad_arguments_exit_2_naming_what(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_connection_exits_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller", "scan", "127.0.0.1:1", "--timeout", "0.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "connection refused" in result.stderr


async def test_scan_recognises_the_simulated_sunspec_devices() -> None:
    from tests.drivers.sim.test_sunspec_server import storage_scenario

    async with SimCell(storage_scenario(), speed=None, ports=0, opcua=False) as cell:
        for name in ("pv-inverter", "battery"):
            host, port, unit = cell.modbus_endpoints[name]
            link = TcpLink(host=host, port=port)
            report = await scan(link, [unit], ScanLimits(timeout=0.3, rate=1000, max_address=200))
            assert [u.unit for u in report.units] == [unit]
            assert report.units[0].sunspec_base == 40000, name
            text = format_yaml(link, report, device_prefix=name)
            assert "SunSpec device: 'SunS' at holding 40000" in text
            parse_config(text, "s.yaml")

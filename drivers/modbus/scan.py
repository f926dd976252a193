"""`edgecell scan`: find what a Modbus line or host serves, reading only, so commissioning a
device does not start with its manual register by register.

1. Units: each unit id in the range is asked for one holding register. Data or an exception
   about the request (illegal function, address or value) means a unit is there; no answer,
   "device failure" (4) or a gateway's "path unavailable"/"target failed to respond" (10, 11)
   mean none. A TCP device that answers the first three ids answers any id: scanned once.
2. Blocks: for each unit and table, addresses 0 .. max_address - 1 are read in requests of
   the planner's sizes (125 registers, 2000 bits); a refused request is read again in pieces
   of `step` addresses, and a refused piece next to a readable one is bisected, so a block's
   edges are exact to the register. Readable islands smaller than `step` inside refused
   pieces can be missed (documented).
3. SunSpec: the `SunS` marker at 40000, 0 or 50000 (holding) is looked for and reported.

Safe by construction: only function codes 1-4 are sent; requests are spaced to `rate` per
second (RS-485 lines are shared with the PLC); every request is bounded by `timeout`; a unit's
probing stops after `max_requests`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.clock import SYSTEM_CLOCK
from controller.model import DeviceUnavailableError
from drivers.modbus.config import SerialLink, Table, TcpLink
from drivers.modbus.link import (
    ConnectionLostError,
    ModbusExceptionError,
    ModbusLink,
    Priority,
    RequestTimeoutError,
    ResponseError,
)

MAX_REGISTERS = 125  # the planner's request sizes (Modbus: at most 125 registers, 2000 bits)
MAX_BITS = 2000
MAX_LOSSES_IN_ROW = 5
BIT_STEP_FACTOR = 16  # bits are probed in pieces 16 times longer than registers
SUNSPEC_BASES = (40000, 0, 50000)
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
# Exceptions that mean no unit: 4 device failure, 10 gateway path unavailable, 11 gateway
# target failed to respond.
NOT_A_UNIT = frozenset({4, 10, 11})
TABLE_PREFIX = {Table.HOLDING: "hr", Table.INPUT: "ir", Table.COIL: "co", Table.DISCRETE: "di"}


@dataclass(frozen=True, slots=True)
class Block:
    """Addresses `start` .. `start + count - 1` of one table read without an exception."""

    table: Table
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count


@dataclass(slots=True)
class UnitReport:
    unit: int
    blocks: list[Block] = field(default_factory=list)
    sunspec_base: int | None = None
    requests: int = 0
    truncated: bool = False  # max_requests was reached


@dataclass(slots=True)
class ScanReport:
    units: list[UnitReport]
    silent: list[int]
    any_unit_id: bool = False  # a TCP device answering every unit id
    requests: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ScanLimits:
    timeout: float = 0.5
    rate: float = 20.0  # requests per second
    max_address: int = 2_000  # addresses 0 .. max_address - 1 of each table are probed
    max_requests: int = 2_000  # per unit
    step: int = 16  # a refused request is retried in pieces of this many addresses
    tables: tuple[Table, ...] = (Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE)


@dataclass(slots=True)
class _Probe:
    """One table of one unit being probed."""

    report: UnitReport
    table: Table
    unit: int
    start: int  # the scanner's request count when the unit's probing began
    found: list[Block]
    bisected: set[int] = field(default_factory=set)  # pieces already bisected


class _Budget(Exception):
    """The unit's request budget is spent."""


class Scanner:
    """One link, read at a bounded rate."""

    def __init__(
        self,
        link: TcpLink | SerialLink,
        limits: ScanLimits,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = link
        self.limits = limits
        self._link = ModbusLink(link, SYSTEM_CLOCK)
        self._progress = progress or (lambda _text: None)
        self._next_at = 0.0
        self.requests = 0
        self.losses = 0  # connections lost in a row

    def close(self) -> None:
        self._link.close()

    async def _read(
        self, table: Table, address: int, count: int, unit: int
    ) -> list[int] | list[bool]:
        loop = asyncio.get_running_loop()
        wait = self._next_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_at = loop.time() + 1.0 / self.limits.rate
        self.requests += 1
        async with self._link.owned(Priority.POLL) as session:
            return await session.read(
                table, address, count, unit=unit, time_limit=self.limits.timeout
            )

    async def unit_answers(self, unit: int) -> bool:
        """Data, or an exception about the request itself (1 function, 2 address, 3 value,
        5 acknowledge, 6 busy), means a device parsed it. No answer, 4 (device failure: what
        pymodbus's server sends for a unit it does not have) and the gateway's 10 and 11 mean
        no usable unit."""
        try:
            await self._read(Table.HOLDING, 0, 1, unit)
        except ModbusExceptionError as exc:
            return exc.code not in NOT_A_UNIT
        except (RequestTimeoutError, ResponseError):
            return False
        return True

    async def probe(self, unit: int) -> UnitReport:
        report = UnitReport(unit)
        start = self.requests
        try:
            for table in self.limits.tables:
                size = MAX_BITS if table.is_bits else MAX_REGISTERS
                found: list[Block] = []
                probe = _Probe(report, table, unit, start, found)
                for address in range(0, self.limits.max_address, size):
                    count = min(size, self.limits.max_address - address)
                    await self._probe_chunk(probe, address, count)
                await self._refine_starts(probe)
                report.blocks.extend(_merge(sorted(found, key=lambda b: b.start)))
                self._progress(f"unit {unit}: {table.value} probed")
            report.sunspec_base = await self._sunspec(unit)
        except _Budget:
            report.truncated = True
            report.blocks = _merge(sorted(report.blocks, key=lambda b: (b.table, b.start)))
        report.requests = self.requests - start
        return report

    async def _probe_chunk(self, probe: _Probe, address: int, count: int) -> None:
        """One request of the planner's size; when refused, its `step`-sized pieces: a piece
        whose first address reads is read whole, or bisected to its exact readable part; a
        piece after a readable one is bisected to the block's exact end. An island that
        neither starts at a piece boundary nor touches a readable piece can be missed."""
        if await self._readable(probe, address, count):
            probe.found.append(Block(probe.table, address, count))
            return
        step = self._step(probe.table)
        end = address + count
        for piece in range(address, end, step):
            size = min(step, end - piece)
            starts = await self._readable(probe, piece, 1)
            if starts and size > 1 and await self._readable(probe, piece, size):
                probe.found.append(Block(probe.table, piece, size))
            elif starts or _ends_readable(probe, piece):
                probe.bisected.add(piece)
                await self._bisect(probe, piece, size)

    def _step(self, table: Table) -> int:
        return self.limits.step * (BIT_STEP_FACTOR if table.is_bits else 1)

    async def _refine_starts(self, probe: _Probe) -> None:
        """A block that starts where a refused piece of the chunk before ended: that piece was
        not known to border a readable one when it was refused, so its edge is found now."""
        step = self._step(probe.table)
        for block in list(probe.found):
            start = max(0, block.start - step)
            if start < block.start and start not in probe.bisected and not _covers(probe, start):
                probe.bisected.add(start)
                await self._bisect(probe, start, block.start - start)

    async def _bisect(self, probe: _Probe, address: int, count: int) -> None:
        if await self._readable(probe, address, count):
            probe.found.append(Block(probe.table, address, count))
            return
        if count == 1:
            return
        half = count // 2
        await self._bisect(probe, address, half)
        await self._bisect(probe, address + half, count - half)

    async def _readable(self, probe: _Probe, address: int, count: int) -> bool:
        if self.requests - probe.start >= self.limits.max_requests:
            probe.report.blocks.extend(_merge(sorted(probe.found, key=lambda b: b.start)))
            probe.found.clear()
            raise _Budget
        try:
            await self._read(probe.table, address, count, probe.unit)
        except (ModbusExceptionError, RequestTimeoutError, ResponseError):
            return False
        except ConnectionLostError:
            # Some devices drop the connection on a request they cannot serve: not readable;
            # the next request reconnects. A device that keeps dropping ends the scan.
            self.losses += 1
            if self.losses >= MAX_LOSSES_IN_ROW:
                raise
            return False
        self.losses = 0
        return True

    async def _sunspec(self, unit: int) -> int | None:
        for base in SUNSPEC_BASES:
            try:
                words = await self._read(Table.HOLDING, base, 2, unit)
            except (ModbusExceptionError, RequestTimeoutError, ResponseError):
                continue
            if tuple(words[:2]) == SUNSPEC_MARKER:
                return base
        return None


def _covers(probe: _Probe, address: int) -> bool:
    return any(block.start <= address < block.end for block in probe.found)


def _ends_readable(probe: _Probe, address: int) -> bool:
    """Whether what was found so far ends just before `address` (the previous chunk)."""
    return any(block.end == address for block in probe.found)


def _merge(blocks: list[Block]) -> list[Block]:
    """Adjacent blocks of one table as one."""
    merged: list[Block] = []
    for block in blocks:
        last = merged[-1] if merged else None
        if last is not None and last.table is block.table and last.end == block.start:
            merged[-1] = Block(block.table, last.start, last.count + block.count)
        else:
            merged.append(block)
    return merged


async def scan(
    link: TcpLink | SerialLink,
    units: Sequence[int],
    limits: ScanLimits,
    progress: Callable[[str], None] | None = None,
) -> ScanReport:
    """Find the units of `units` that answer on `link`, then probe each one."""
    started = time.monotonic()
    scanner = Scanner(link, limits, progress)
    present: list[int] = []
    silent: list[int] = []
    any_unit_id = False
    if isinstance(link, SerialLink):
        units = [u for u in units if u != 0]  # 0 is the serial broadcast address: no answers
    try:
        for unit in units:
            try:
                answers = await scanner.unit_answers(unit)
            except DeviceUnavailableError as exc:
                raise ScanError(f"{link.key}: {exc}") from exc
            (present if answers else silent).append(unit)
            scanner._progress(f"unit {unit}: {'answers' if answers else 'silent'}")
            if isinstance(link, TcpLink) and len(present) == 3 and present == list(units[:3]):
                any_unit_id = True  # a TCP device that ignores the unit id
                present = present[:1]
                break
        reports = []
        for unit in present:
            try:
                reports.append(await scanner.probe(unit))
            except DeviceUnavailableError as exc:
                raise ScanError(f"{link.key}: unit {unit}: {exc}") from exc
    finally:
        scanner.close()
    return ScanReport(
        reports, silent, any_unit_id, scanner.requests, time.monotonic() - started
    )


class ScanError(Exception):
    """The link itself failed (refused, closed): nothing can be scanned."""


def parse_units(text: str) -> list[int]:
    """`1-5,9,247` -> [1, 2, 3, 4, 5, 9, 247]; ids 0-247 (ValueError naming the bad part)."""
    units: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,3})\s*(?:-\s*(\d{1,3})\s*)?", part)
        if match is None:
            raise ValueError(f"{part!r} is not a unit id or a range a-b")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not 0 <= first <= last <= 247:
            raise ValueError(f"{part!r}: unit ids are 0-247, low to high")
        units.extend(u for u in range(first, last + 1) if u not in units)
    return units


# --- the config it prints ----------------------------------------------------------------------


def format_yaml(
    link: TcpLink | SerialLink,
    report: ScanReport,
    *,
    device_prefix: str,
    max_tags: int = 500,
) -> str:
    """A config that validates as it is: one device per unit, one tag per readable register
    (uint16) or bit (bool), named by table and address and marked as needing a name and a
    type. At most `max_tags` per unit; the rest of a block is listed as a comment."""
    lines = [
        f"# edgecell scan {link.key}: {len(report.units)} unit(s) answered"
        f"{', silent: ' + _ranges(report.silent) if report.silent else ''}.",
        "# Every tag below is a raw register or bit: give it a name, a type (float32 spans two",
        "# registers), a scale and a unit, and delete what you do not need. Reads only were sent.",
    ]
    if report.any_unit_id:
        lines.append("# This TCP device answered every unit id: scanned as the first one.")
    lines += [
        "gateway:",
        "  id: cell-1  # this gateway's name in MQTT topics: set yours",
        "devices:",
    ]
    if not report.units:
        lines.append("  []  # no unit answered")
    for unit in report.units:
        lines += _device_lines(link, unit, device_prefix, max_tags)
    return "\n".join(lines) + "\n"


def _device_lines(
    link: TcpLink | SerialLink, unit: UnitReport, prefix: str, max_tags: int
) -> list[str]:
    name = f"{prefix}-unit{unit.unit}"
    lines = [
        "  - driver: modbus",
        f"    name: {json.dumps(name)}",
        f"    link: {_link_yaml(link)}",
        f"    unit_id: {unit.unit}",
        "    timeout: 1s",
    ]
    if unit.sunspec_base is not None:
        lines.append(
            f"    # SunSpec device: 'SunS' at holding {unit.sunspec_base}; its models name "
            "every register (see docs/modbus.md)"
        )
    if unit.truncated:
        lines.append(f"    # probing stopped after {unit.requests} requests (--max-requests)")
    if not unit.blocks:
        lines.append("    # no readable register or bit found in the probed range")
        lines.append(
            "    tags: [{name: hr_0, address: 0}]  # placeholder: a unit needs one tag"
        )
        return lines
    lines.append("    tags:")
    count = 0
    for block in unit.blocks:
        prefix_ = TABLE_PREFIX[block.table]
        lines.append(
            f"      # {block.table.value} {block.start}-{block.end - 1} "
            f"({block.count} {'bits' if block.table.is_bits else 'registers'}): "
            "name and type these"
        )
        for address in range(block.start, block.end):
            if count >= max_tags:
                lines.append(f"      # ... {block.end - address} more in this block, not listed")
                break
            kind = "bool" if block.table.is_bits else "uint16"
            lines.append(
                f"      - {{name: {prefix_}_{address}, table: {block.table.value}, "
                f"address: {address}, type: {kind}}}"
            )
            count += 1
    return lines


def _link_yaml(link: TcpLink | SerialLink) -> str:
    if isinstance(link, TcpLink):
        return f"{{transport: {link.transport}, host: {json.dumps(link.host)}, port: {link.port}}}"
    return (
        f"{{transport: rtu, port: {json.dumps(link.port)}, baudrate: {link.baudrate}, "
        f"parity: {link.parity}, stopbits: {link.stopbits}}}"
    )


def _ranges(units: Sequence[int]) -> str:
    parts: list[str] = []
    for unit in units:
        if parts and "-" not in parts[-1] and int(parts[-1]) == unit - 1:
            parts[-1] = f"{parts[-1]}-{unit}"
        elif parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == unit - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{unit}"
        else:
            parts.append(str(unit))
    return ",".join(parts)

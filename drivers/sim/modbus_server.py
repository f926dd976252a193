"""Real Modbus TCP and RTU servers in front of the simulated plant.

Each simulated device is one unit with its own register map (from the scenario): `refresh()`
lays the plant's points into the registers, and a client's write to a register that holds a
writable point goes to `plant.write_point` before the datastore takes it. pymodbus 3.16 turns
the server context into a SimCore: values change only through `server.async_setValues`, and the
SimDevice `action` hook sees every access first, which is where writes are caught.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, cast

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.codec import CodecError, decode, encode
from drivers.modbus.config import DataType, Table
from drivers.sim.points import PointSource, PointValue
from drivers.sim.scenario import ModbusDeviceSpec, RegisterSpec

log = structlog.get_logger(__name__)

# Function codes the refresh uses to put values in each table (the datastore maps them to the
# table); a client's writes arrive with 5, 6, 15, 16, 22 or 23 instead.
_TABLE_FC: dict[Table, int] = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}
_COIL_WRITES = (5, 15)
_REGISTER_WRITES = (6, 16, 22, 23)
_TUPLE_ORDER = (Table.COIL, Table.DISCRETE, Table.HOLDING, Table.INPUT)


class SimServerError(Exception):
    """A simulated device cannot be served (bad map, port taken)."""


@dataclass(frozen=True)
class Span:
    first: int
    count: int


class _UnitSpec(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def unit_id(self) -> int: ...


class ServedUnit(Protocol):
    """What a server needs of a unit: a register map (SimUnit) or a SunSpec device."""

    @property
    def spec(self) -> _UnitSpec: ...

    @property
    def spans(self) -> dict[Table, Span]: ...

    def simdevice(self) -> SimDevice: ...

    def images(self) -> Any: ...


class SimUnit:
    """One simulated Modbus unit: its register map over a plant, the registers' present images
    and the translation of a client's write back into point values."""

    def __init__(self, plant: PointSource, spec: ModbusDeviceSpec) -> None:
        self.plant = plant
        self.spec = spec
        known = set(plant.point_names())
        for reg in spec.registers:
            if reg.point not in known:
                raise SimServerError(f"device {spec.name}: the plant has no point {reg.point!r}")
        self.spans: dict[Table, Span] = {}
        for table in Table:
            regs = [r for r in spec.registers if r.table is table]
            if regs:
                first = min(r.address for r in regs)
                last = max(r.address + r.register_count for r in regs)
                self.spans[table] = Span(first, last - first)

    def simdevice(self) -> SimDevice:
        blocks: list[list[SimData]] = []
        for table in _TUPLE_ORDER:
            span = self.spans.get(table)
            if table.is_bits:
                # A block may not be empty; an unused bit table gets one word of zeros.
                first, count = (span.first, span.count) if span else (0, 16)
                blocks.append([SimData(first, values=[False] * count, datatype=SimType.BITS)])
            elif span is None:
                blocks.append([SimData(0, datatype=SimType.INVALID)])
            else:
                # One contiguous block: unmapped registers inside it read as 0, as on most
                # meters, so a client's read planner may span the gaps.
                blocks.append(
                    [SimData(span.first, values=[0] * span.count, datatype=SimType.REGISTERS)]
                )
        return SimDevice(
            id=self.spec.unit_id,
            simdata=(blocks[0], blocks[1], blocks[2], blocks[3]),
            action=functools.partial(_on_access, self),
        )

    def _encode(self, reg: RegisterSpec) -> list[int] | bool:
        value = self.plant.read_point(reg.point)
        if reg.type is DataType.BOOL:
            return bool(value)
        number = float(value) * reg.scale if not isinstance(value, bool) else float(value)
        if reg.type in (DataType.FLOAT32, DataType.FLOAT64):
            return encode(number, reg.type, self.spec.word_order)
        return encode(round(number), reg.type, self.spec.word_order)

    def images(self) -> dict[Table, list[int] | list[bool]]:
        """Every mapped table as it should read now, from its first mapped address."""
        images: dict[Table, list[Any]] = {
            table: [False] * span.count if table.is_bits else [0] * span.count
            for table, span in self.spans.items()
        }
        for reg in self.spec.registers:
            span = self.spans[reg.table]
            offset = reg.address - span.first
            encoded = self._encode(reg)
            if isinstance(encoded, bool):
                images[reg.table][offset] = encoded
            else:
                images[reg.table][offset : offset + len(encoded)] = encoded
        return images

    def apply_write(
        self, table: Table, address: int, values: Sequence[int] | Sequence[bool], current: list[int]
    ) -> ExcCodes | None:
        """A client writes `values` from `address`; `current` holds the table's registers from
        the span's first address. Every point touched is written to the plant, or none is."""
        end = address + len(values)
        touched = [
            r
            for r in self.spec.registers
            if r.table is table and r.address < end and address < r.address + r.register_count
        ]
        covered: set[int] = set()
        for reg in touched:
            covered.update(range(reg.address, reg.address + reg.register_count))
        if any(a not in covered for a in range(address, end)):
            return ExcCodes.ILLEGAL_ADDRESS
        writes: list[tuple[str, PointValue]] = []
        for reg in touched:
            if table.is_bits:
                writes.append((reg.point, bool(values[reg.address - address])))
                continue
            span = self.spans[table]
            words = [current[reg.address - span.first + i] for i in range(reg.register_count)]
            for i in range(reg.register_count):
                if address <= reg.address + i < end:
                    words[i] = int(values[reg.address + i - address])
            try:
                raw = decode(words, reg.type, self.spec.word_order)
            except CodecError:
                return ExcCodes.ILLEGAL_VALUE
            if not isinstance(raw, int | float):
                return ExcCodes.ILLEGAL_VALUE
            writes.append((reg.point, raw / reg.scale if reg.scale != 1 else raw))
        for point, value in writes:
            try:
                self.plant.write_point(point, value)
            except PermissionError:
                log.info(
                    "sim_write_refused", device=self.spec.name, point=point, reason="read-only"
                )
                return ExcCodes.ILLEGAL_ADDRESS
            except (TypeError, ValueError) as exc:
                log.info("sim_write_refused", device=self.spec.name, point=point, reason=str(exc))
                return ExcCodes.ILLEGAL_VALUE
            log.debug("sim_write", device=self.spec.name, point=point, value=value)
        return None


async def _on_access(  # noqa: PLR0917  (pymodbus's SimAction signature)
    unit: SimUnit,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """pymodbus calls this before every read and write of the unit's datastore."""
    del start_address, count
    if set_values is None:
        return None
    if function_code in _COIL_WRITES:
        return unit.apply_write(Table.COIL, address, set_values, registers)
    if function_code in _REGISTER_WRITES:
        span = unit.spans.get(Table.HOLDING)
        if span is None:
            return ExcCodes.ILLEGAL_ADDRESS
        return unit.apply_write(Table.HOLDING, address, set_values, registers)
    return None  # the refresh writing the plant's values


class SimModbusServer:
    """One Modbus server (a TCP port, or a serial line) serving one or more simulated units.

    `units=` adds units that are not register maps (drivers/sim/sunspec_server.py).
    `async with SimModbusServer(plant, [device], port=0) as server:` listens on 127.0.0.1 on a
    free port (`server.port`); `await server.refresh()` copies the plant's points in.
    With `serial_port=` it serves Modbus RTU on that device instead (a pty from socat works).
    """

    def __init__(
        self,
        plant: PointSource,
        devices: Sequence[ModbusDeviceSpec],
        *,
        units: Sequence[ServedUnit] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "N",
        stopbits: int = 1,
    ) -> None:
        served: list[ServedUnit] = [SimUnit(plant, d) for d in devices]
        served.extend(units)
        if not served:
            raise SimServerError("a Modbus server needs at least one device")
        ids = [u.spec.unit_id for u in served]
        if len(set(ids)) != len(ids):
            raise SimServerError(f"unit ids repeat on one server: {ids}")
        self.plant = plant
        self.units = served
        self.host = host
        self._requested_port = port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.port = port

    @property
    def name(self) -> str:
        return "+".join(u.spec.name for u in self.units)

    def endpoint(self, device: str) -> tuple[str, int, int]:
        for unit in self.units:
            if unit.spec.name == device:
                return (self.host, self.port, unit.spec.unit_id)
        raise KeyError(device)

    async def __aenter__(self) -> SimModbusServer:
        devices = [u.simdevice() for u in self.units]
        if self.serial_port is not None:
            self._server = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
            )
        else:
            self._server = ModbusTcpServer(devices, address=(self.host, self._requested_port))
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:
            where = self.serial_port or f"{self.host}:{self._requested_port}"
            raise SimServerError(f"{self.name}: cannot serve on {where}: {exc}") from exc
        if self.serial_port is None:
            listener = cast(asyncio.Server, self._server.transport)
            sockets = listener.sockets
            self.port = int(sockets[0].getsockname()[1])
        await self.refresh()
        log.info(
            "sim_modbus_serving",
            devices=self.name,
            where=self.serial_port or f"{self.host}:{self.port}",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def refresh(self) -> None:
        """Copy the plant's present point values into every unit's registers."""
        server = self._server
        if server is None:
            raise SimServerError(f"{self.name} is not serving")
        for unit in self.units:
            for table, image in unit.images().items():
                await server.async_setValues(
                    unit.spec.unit_id, _TABLE_FC[table], unit.spans[table].first, image
                )

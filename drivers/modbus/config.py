"""The YAML shape of a Modbus device: its link, unit id, schedule, byte/word order and tags."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from controller.configtypes import (
    Duration,
    Name,
    PositiveDuration,
    StrictModel,
    WriteLimits,
    format_duration,
)


class Table(StrEnum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)


class DataType(StrEnum):
    BOOL = "bool"  # a coil or discrete input
    BIT = "bit"  # one bit of a holding/input register
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


# Registers each fixed-width type takes; strings take `length`, bits and bools one.
REGISTERS: dict[DataType, int] = {
    DataType.BIT: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
}


class ByteOrder(StrEnum):
    """Byte and word order of multi-register values, named by where bytes A (most significant)
    to D land: ABCD big-endian (Modbus standard), CDAB word-swapped (common in meters), BADC
    byte-swapped, DCBA little-endian. For 64-bit values the pattern extends over four words."""

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


class ModbusTag(WriteLimits):
    name: Name
    table: Table = Table.HOLDING
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.UINT16
    order: ByteOrder | None = None  # overrides the device's byte_order
    bit: int | None = Field(default=None, ge=0, le=15)
    length: int | None = Field(default=None, ge=1, le=123, description="registers, for strings")
    scale: float = 1.0
    offset: float = 0.0
    # Another tag of the device holding a power-of-ten exponent (a SunSpec `sunssf`, int16):
    # value = raw * 10**exponent * scale + offset, both read in the same request.
    scale_factor: Name | None = None
    unit: str | None = None

    @model_validator(mode="after")
    def _type_fits_table(self) -> ModbusTag:
        if self.table.is_bits and self.type is not DataType.BOOL:
            raise ValueError(
                f"a {self.table.value} holds single bits: use type bool, not {self.type}"
            )
        if not self.table.is_bits and self.type is DataType.BOOL:
            raise ValueError(
                f"type bool is for coils and discrete inputs; for one bit of a {self.table.value} "
                "register use type bit with bit: N"
            )
        if self.type is DataType.BIT and self.bit is None:
            raise ValueError("type bit needs bit: 0..15")
        if self.type is not DataType.BIT and self.bit is not None:
            raise ValueError("bit: is only for type bit")
        if self.type is DataType.STRING and self.length is None:
            raise ValueError("type string needs length: (registers, 2 characters each)")
        if self.type is not DataType.STRING and self.length is not None:
            raise ValueError("length: is only for type string")
        if self.writable and self.table in (Table.DISCRETE, Table.INPUT):
            raise ValueError(
                f"the {self.table.value} table is read-only in Modbus; "
                "a tag in it cannot be writable"
            )
        if self.address + self.register_count > 65536:
            raise ValueError(f"address {self.address} + {self.register_count} runs past 65535")
        if self.scale == 0:
            # Every reading would be `offset`, and no raw value could be written.
            raise ValueError("scale: 0 maps every raw value to the offset; write a nonzero scale")
        if self.scale_factor is not None and self.type in (
            DataType.BOOL,
            DataType.BIT,
            DataType.STRING,
        ):
            raise ValueError(f"scale_factor: a {self.type.value} tag has no scale")
        if self.scale_factor == self.name:
            raise ValueError("scale_factor: a tag cannot be its own scale factor")
        self._fallback_fits_type()
        return self

    def _fallback_fits_type(self) -> None:
        fallback = self.fallback
        if fallback is None:
            return
        is_state = self.type in (DataType.BOOL, DataType.BIT)
        if self.type is DataType.STRING:
            raise ValueError("fallback: a string tag has no fallback")
        if is_state and not isinstance(fallback, bool):
            raise ValueError(
                f"fallback: {fallback:g}, but type {self.type.value} takes true or false"
            )
        if not is_state and isinstance(fallback, bool):
            raise ValueError(
                f"fallback: {str(fallback).lower()}, but type {self.type.value} takes a number"
            )

    @property
    def register_count(self) -> int:
        """Registers (or bits, for coil/discrete) this tag spans."""
        if self.type is DataType.BOOL:
            return 1
        if self.type is DataType.STRING:
            assert self.length is not None  # checked by the validator
            return self.length
        return REGISTERS[self.type]


# A unit that timed out may still be answering, or busy: on a shared line the next request
# waits this long after a timeout so it does not land in that unit's window (docs/modbus.md).
SERIAL_PAUSE_AFTER_TIMEOUT = 0.1


class TcpLink(StrictModel):
    """Modbus TCP (MBAP framing), or RTU framing over TCP for serial-to-Ethernet gateways."""

    transport: Literal["tcp", "rtu_over_tcp"] = "tcp"
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    # Silence on the link between the end of one request (answer or timeout) and the next.
    request_gap: Duration = 0.0
    # Silence after a timeout; default 100ms for rtu_over_tcp (an RS-485 line behind), 0 for tcp.
    pause_after_timeout: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _serial_line_defaults(cls, data: object) -> object:
        if (
            isinstance(data, dict)
            and data.get("transport") == "rtu_over_tcp"
            and "pause_after_timeout" not in data
        ):
            return {**data, "pause_after_timeout": format_duration(SERIAL_PAUSE_AFTER_TIMEOUT)}
        return data

    @property
    def key(self) -> str:
        return f"{self.transport}://{self.host}:{self.port}"


class SerialLink(StrictModel):
    """Modbus RTU on a serial port (RS-485/RS-232)."""

    transport: Literal["rtu"]
    port: str  # /dev/ttyUSB0, /dev/serial/by-id/...
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    # Silence between requests; never shorter than the 3.5-character frame gap of the line.
    request_gap: Duration = 0.0
    pause_after_timeout: Duration = SERIAL_PAUSE_AFTER_TIMEOUT

    @property
    def key(self) -> str:
        return f"rtu://{self.port}"


Link = Annotated[TcpLink | SerialLink, Field(discriminator="transport")]


class ModbusDevice(StrictModel):
    """One Modbus unit. Devices whose `link` is the same share one connection and one queue."""

    driver: Literal["modbus"]
    name: Name
    link: Link
    unit_id: int = Field(default=1, ge=0, le=247)
    poll_interval: PositiveDuration = 1.0
    timeout: PositiveDuration = 1.0
    retries: int = Field(default=0, ge=0, le=5)
    byte_order: ByteOrder = ByteOrder.ABCD
    max_gap: int = Field(default=16, ge=0, le=124, description="unused registers a read may span")
    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    max_bits_per_request: int = Field(default=2000, ge=1, le=2000)
    tags: list[ModbusTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _tags_are_consistent(self) -> ModbusDevice:
        # Messages start with the offending item's path so the loader can name its line.
        seen: set[str] = set()
        for j, tag in enumerate(self.tags):
            if tag.name in seen:
                raise ValueError(f"tags[{j}].name: duplicate tag name {tag.name!r}")
            seen.add(tag.name)
            if not tag.table.is_bits and tag.register_count > self.max_registers_per_request:
                raise ValueError(
                    f"tags[{j}]: {tag.name!r} spans {tag.register_count} registers, more than "
                    f"one read may take (max_registers_per_request: "
                    f"{self.max_registers_per_request})"
                )
        self._scale_factors_resolve()
        # Only pairs with a writable tag can clash: O(writable x tags), not O(tags^2) (a device
        # of 1,000 read-only tags took 0.4 s here). The first pair in (i, j) order is reported.
        tags = self.tags
        clashes = [
            (min(w, k), max(w, k))
            for w, writable in enumerate(tags)
            if writable.writable
            for k, other in enumerate(tags)
            if k != w and _overlap(writable, other)
        ]
        if clashes:
            i, j = min(clashes)
            a, b = tags[i], tags[j]
            raise ValueError(
                f"tags[{j}]: writable tags must not share registers: {a.name!r} and "
                f"{b.name!r} overlap in the {a.table.value} table"
            )
        return self

    def _scale_factors_resolve(self) -> None:
        """A scale factor is a plain int16 tag of the same table, close enough to its tags that
        one request reads both (a value and its exponent from different reads could mix)."""
        by_name = {tag.name: (j, tag) for j, tag in enumerate(self.tags)}
        for j, tag in enumerate(self.tags):
            if tag.scale_factor is None:
                continue
            where = f"tags[{j}].scale_factor"
            found = by_name.get(tag.scale_factor)
            if found is None:
                raise ValueError(f"{where}: no tag {tag.scale_factor!r} on this device")
            _, sf = found
            if sf.type is not DataType.INT16:
                raise ValueError(
                    f"{where}: {sf.name!r} is {sf.type.value}; a scale factor is int16"
                )
            if sf.table is not tag.table:
                raise ValueError(
                    f"{where}: {sf.name!r} is in the {sf.table.value} table, {tag.name!r} in "
                    f"the {tag.table.value} table: one request must read both"
                )
            if sf.scale_factor is not None or (sf.scale, sf.offset) != (1.0, 0.0):
                raise ValueError(
                    f"{where}: {sf.name!r} must be read raw (no scale, offset or scale_factor)"
                )
            if sf.writable:
                raise ValueError(f"{where}: {sf.name!r} is writable; a scale factor is read-only")
        # A scale factor and every tag it scales are read in one request.
        groups: dict[str, list[ModbusTag]] = {}
        for tag in self.tags:
            if tag.scale_factor is not None:
                groups.setdefault(tag.scale_factor, [by_name[tag.scale_factor][1]]).append(tag)
        for sf_name, members in groups.items():
            first = min(t.address for t in members)
            end = max(t.address + t.register_count for t in members)
            if end - first > self.max_registers_per_request:
                j = by_name[members[-1].name][0]
                raise ValueError(
                    f"tags[{j}].scale_factor: {sf_name!r} and the tags it scales span "
                    f"{end - first} registers ({first}..{end - 1}), more than one read may take "
                    f"(max_registers_per_request: {self.max_registers_per_request})"
                )


def _overlap(a: ModbusTag, b: ModbusTag) -> bool:
    if a.table is not b.table:
        return False
    if a.type is DataType.BIT and b.type is DataType.BIT and a.address == b.address:
        return a.bit == b.bit
    return a.address < b.address + b.register_count and b.address < a.address + a.register_count

"""Registers <-> values: Modbus data types, byte/word orders and engineering-unit scaling.

Also compiles a per-request block decoder (struct formats with precomputed offsets) so one read
response of many tags is decoded in a few C calls rather than one Python dispatch per tag.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from controller.model import Value
from drivers.modbus.config import REGISTERS, ByteOrder, DataType

__all__ = [
    "BlockDecoder",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "FieldSpec",
    "apply_scale",
    "decode",
    "encode",
    "remove_scale",
    "set_bit",
    "whole_number",
]


class CodecError(Exception):
    """A value and its registers do not fit each other."""


class DecodeError(CodecError):
    """Registers that cannot be decoded as the configured type (wrong count, bad text)."""


class EncodeError(CodecError):
    """A value that cannot be encoded as the configured type (out of range, wrong kind)."""


# struct codes of the numeric types; the byte order prefix is chosen per ByteOrder below.
_STRUCT_CODE: dict[DataType, str] = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}
_FLOATS = (DataType.FLOAT32, DataType.FLOAT64)

# Every order is one struct read over the registers packed either big-endian (each word high
# byte first, as on the wire) or little-endian (each word low byte first):
#   ABCD  wire bytes A B C D            -> big-endian words, read '>'
#   DCBA  wire bytes D C B A            -> big-endian words, read '<'
#   BADC  wire bytes B A D C -> A B C D -> little-endian words, read '>'
#   CDAB  wire bytes C D A B -> D C B A -> little-endian words, read '<'
# The same holds for 16-bit values (BADC/DCBA swap the two bytes, as Telegraf's "BA") and for
# 64-bit values over four words (CDAB reverses the word order, BADC swaps bytes in each word).
_WORDS_LITTLE_ENDIAN: dict[ByteOrder, bool] = {
    ByteOrder.ABCD: False,
    ByteOrder.DCBA: False,
    ByteOrder.BADC: True,
    ByteOrder.CDAB: True,
}
_READ_PREFIX: dict[ByteOrder, str] = {
    ByteOrder.ABCD: ">",
    ByteOrder.DCBA: "<",
    ByteOrder.BADC: ">",
    ByteOrder.CDAB: "<",
}
# Strings are two characters per register, first character in the high byte; BADC and DCBA
# swap the bytes within each register (devices that store text little-endian). Word order is
# never reversed for text.
_STRING_SWAPS_BYTES: dict[ByteOrder, bool] = {
    ByteOrder.ABCD: False,
    ByteOrder.CDAB: False,
    ByteOrder.BADC: True,
    ByteOrder.DCBA: True,
}

_WORDS_STRUCTS: dict[tuple[bool, int], struct.Struct] = {}


def _words_struct(little_endian: bool, count: int) -> struct.Struct:
    key = (little_endian, count)
    packer = _WORDS_STRUCTS.get(key)
    if packer is None:
        packer = struct.Struct(f"{'<' if little_endian else '>'}{count}H")
        _WORDS_STRUCTS[key] = packer
    return packer


def _pack_words(words: Sequence[int], little_endian: bool) -> bytes:
    try:
        return _words_struct(little_endian, len(words)).pack(*words)
    except struct.error as exc:
        raise DecodeError(f"registers are 16-bit unsigned words: {exc}") from exc


def _unpack_words(data: bytes, little_endian: bool) -> list[int]:
    return list(_words_struct(little_endian, len(data) // 2).unpack(data))


def register_count(dtype: DataType, length: int | None = None) -> int:
    """Registers a value of `dtype` takes (strings: `length`; bool and bit: one)."""
    if dtype is DataType.STRING:
        if length is None or length < 1:
            raise CodecError("type string needs a length in registers")
        return length
    if dtype is DataType.BOOL:
        return 1
    return REGISTERS[dtype]


def set_bit(word: int, bit: int, value: bool) -> int:
    """`word` with `bit` (0 = least significant) set or cleared: the modify step of a
    read-modify-write of one bit of a register."""
    if not 0 <= bit <= 15:
        raise EncodeError(f"bit {bit} is outside 0..15")
    return (word | (1 << bit)) if value else (word & ~(1 << bit) & 0xFFFF)


# How far a float may be from a whole number and still be taken as it: the noise of scaling
# (21.5 / 0.1 is 215.00000000000003), not a fraction anybody asked for.
WHOLE_TOLERANCE = 1e-9


def whole_number(value: float) -> int | None:
    """`value` as an integer when it is one (within float noise), else None."""
    if not math.isfinite(value):
        return None
    nearest = round(value)
    return nearest if abs(value - nearest) <= WHOLE_TOLERANCE * max(1.0, abs(value)) else None


def _as_integer(value: Value, dtype: DataType) -> int:
    if isinstance(value, bool):
        raise EncodeError(f"it takes a number, not {value}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"{value} cannot be written as {dtype.value}")
        whole = whole_number(value)
        if whole is None:
            # Never rounded here: the device would hold another value than the one asked for.
            raise EncodeError(f"{value:g} is not a whole number")
        number = whole
    else:
        raise EncodeError(f"{value!r} is not a number; {dtype.value} needs one")
    low, high = _INT_RANGE[dtype]
    if not low <= number <= high:
        raise EncodeError(f"{number} is outside the {dtype.value} range {low}..{high}")
    return number


def _as_float(value: Value, dtype: DataType) -> float:
    if isinstance(value, bool):
        raise EncodeError(f"it takes a number, not {value}")
    if isinstance(value, int | float):
        return float(value)
    raise EncodeError(f"{value!r} is not a number; {dtype.value} needs one")


def encode(
    value: Value, dtype: DataType, order: ByteOrder, *, length: int | None = None
) -> list[int]:
    """`value` as the register words to write, in wire order.

    BOOL gives one word 0/1 (coils are written as bits, not through this); BIT is refused: one
    bit of a register is written by read-modify-write with `set_bit`. Strings are UTF-8, padded
    with NULs to `length` registers (default: just enough for the text).
    """
    if dtype is DataType.BOOL:
        return [1 if value else 0]
    if dtype is DataType.BIT:
        raise EncodeError("one bit of a register is written by read-modify-write (set_bit)")
    if dtype is DataType.STRING:
        return _encode_string(value, order, length)
    code = _STRUCT_CODE[dtype]
    number: int | float = _as_float(value, dtype) if dtype in _FLOATS else _as_integer(value, dtype)
    try:
        data = struct.pack(_READ_PREFIX[order] + code, number)
    except (struct.error, OverflowError) as exc:
        raise EncodeError(f"{value!r} does not fit {dtype.value}: {exc}") from exc
    return _unpack_words(data, _WORDS_LITTLE_ENDIAN[order])


def _encode_string(value: Value, order: ByteOrder, length: int | None) -> list[int]:
    if not isinstance(value, str):
        raise EncodeError(f"{value!r} is not text")
    data = value.encode("utf-8")
    registers = length if length is not None else max(1, (len(data) + 1) // 2)
    if len(data) > registers * 2:
        raise EncodeError(
            f"{len(data)} bytes of text do not fit {registers} registers ({registers * 2} bytes)"
        )
    data = data.ljust(registers * 2, b"\x00")
    return _unpack_words(data, _STRING_SWAPS_BYTES[order])


def _decode_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"text is not UTF-8: {data!r}") from exc
    return text.rstrip("\x00 ")


def decode(
    registers: Sequence[int],
    dtype: DataType,
    order: ByteOrder,
    *,
    bit: int | None = None,
    length: int | None = None,
) -> Value:
    """The value held by `registers` (exactly the registers of one value, in wire order).

    BOOL takes one item (a coil/discrete bit, or a register: non-zero is true); BIT takes one
    register and `bit` 0..15. NaN and infinities decode as such.
    """
    if dtype is DataType.BOOL:
        _expect_count(registers, 1, dtype)
        return bool(registers[0])
    if dtype is DataType.BIT:
        _expect_count(registers, 1, dtype)
        if bit is None or not 0 <= bit <= 15:
            raise DecodeError(f"type bit needs bit 0..15, not {bit}")
        return bool((_check_word(registers[0]) >> bit) & 1)
    count = register_count(dtype, length) if dtype is DataType.STRING else REGISTERS[dtype]
    _expect_count(registers, count, dtype)
    if dtype is DataType.STRING:
        return _decode_text(_pack_words(registers, _STRING_SWAPS_BYTES[order]))
    data = _pack_words(registers, _WORDS_LITTLE_ENDIAN[order])
    result: int | float = struct.unpack(_READ_PREFIX[order] + _STRUCT_CODE[dtype], data)[0]
    return result


def _expect_count(registers: Sequence[int], count: int, dtype: DataType) -> None:
    if len(registers) != count:
        raise DecodeError(f"{dtype.value} needs {count} registers, got {len(registers)}")


def _check_word(word: int) -> int:
    if not 0 <= word <= 0xFFFF:
        raise DecodeError(f"{word} is not a 16-bit register value")
    return word


def apply_scale(raw: Value, scale: float, offset: float) -> Value:
    """Raw value -> engineering units: `raw * scale + offset`. Only numbers are scaled (bools and
    text pass through); integers stay integers when scale is 1 and offset 0."""
    if scale == 1 and offset == 0:
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return raw
    return raw * scale + offset


def remove_scale(value: Value, scale: float, offset: float) -> Value:
    """Engineering units -> raw value to encode: `(value - offset) / scale`."""
    if scale == 1 and offset == 0:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if scale == 0:
        raise EncodeError("scale is 0: no raw value gives this engineering value")
    return (value - offset) / scale


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One tag inside a read block: where it starts (registers or bits from the block's first
    address) and how to turn its registers into a value."""

    position: int
    dtype: DataType
    order: ByteOrder = ByteOrder.ABCD
    bit: int | None = None
    length: int | None = None
    scale: float = 1.0
    offset: float = 0.0

    @property
    def span(self) -> int:
        return register_count(self.dtype, self.length)


@dataclass(frozen=True, slots=True)
class _StructRun:
    """Non-overlapping numeric fields read by one struct format from one packed buffer.
    `first` >= 0 when `indexes` are `first, first + 1, ...`: the values then go into the output
    by one slice assignment."""

    little_endian_words: bool
    unpacker: struct.Struct
    indexes: tuple[int, ...]
    first: int


@dataclass(frozen=True, slots=True)
class _Scaling:
    """Fields of one (scale, offset): the slice `start:stop` of the output when they are
    consecutive (`indexes` empty), else `indexes`."""

    scale: float
    offset: float
    start: int
    stop: int
    indexes: tuple[int, ...]


def _first_of_consecutive(indexes: Sequence[int]) -> int:
    """indexes[0] when `indexes` are consecutive and ascending, else -1."""
    first = indexes[0]
    return first if list(indexes) == list(range(first, first + len(indexes))) else -1


def _struct_format(prefix: str, codes: Sequence[tuple[str, int]]) -> str:
    """`prefix` and (code, repeat) pairs with neighbours of one code merged ("125H", not 125
    "H"s): a struct keeps one entry per code written, 32 bytes each."""
    merged: list[tuple[str, int]] = []
    for code, repeat in codes:
        if merged and merged[-1][0] == code:
            merged[-1] = (code, merged[-1][1] + repeat)
        else:
            merged.append((code, repeat))
    return prefix + "".join(f"{n}{code}" if n > 1 else code for code, n in merged)


class BlockDecoder:
    """Decodes every field of one read response at once.

    Built once per planned request and kept for the daemon's life, so it keeps only what
    decoding needs (one decoder per read: 800 of them for 100,000 tags): `decode()` packs the
    response's words into bytes (once per word layout needed) and unpacks all numeric fields
    with a few precompiled struct formats (pad bytes skip the gaps), scales them per group of
    one (scale, offset), then handles bits and text. A field that cannot be decoded (bad text)
    yields a `DecodeError` in its slot; a response of the wrong size raises one.
    """

    def __init__(self, fields: Sequence[FieldSpec], count: int, *, bits: bool = False) -> None:
        fields = tuple(fields)
        self.size = len(fields)
        self.count = count
        self.bits = bits
        for spec in fields:
            if spec.position < 0 or spec.position + spec.span > count:
                raise CodecError(f"field at {spec.position} runs outside a block of {count}")
            if bits and spec.dtype is not DataType.BOOL:
                raise CodecError(f"a bit block holds bools only, not {spec.dtype.value}")
        self._bit_positions = tuple(spec.position for spec in fields) if bits else ()
        self._runs = () if bits else _compile_runs(fields)
        numeric = sorted(i for run in self._runs for i in run.indexes)
        numeric_set = set(numeric)
        # Text, bits of a register and bools over a register: decoded one by one.
        self._others = tuple(
            (i, spec) for i, spec in enumerate(fields) if not bits and i not in numeric_set
        )
        # Engineering units, numeric fields only (apply_scale leaves bools and text alone), per
        # group of one (scale, offset); keyed by their bits, so -0.0 and 0.0 stay apart.
        groups: dict[bytes, list[int]] = {}
        for i in numeric:
            spec = fields[i]
            if spec.scale != 1 or spec.offset != 0:
                groups.setdefault(struct.pack("<dd", spec.scale, spec.offset), []).append(i)
        scalings: list[_Scaling] = []
        for key, indexes in groups.items():
            scale, offset = struct.unpack("<dd", key)
            first = _first_of_consecutive(indexes)
            if first >= 0:
                scalings.append(_Scaling(scale, offset, first, first + len(indexes), ()))
            else:
                scalings.append(_Scaling(scale, offset, 0, 0, tuple(indexes)))
        self._scaling = tuple(scalings)
        # Only text (bad UTF-8) and bits (a word out of range) can fail one field alone.
        self.may_fail = any(
            spec.dtype in (DataType.STRING, DataType.BIT) for spec in fields
        )

    def decode(self, words: Sequence[int] | Sequence[bool]) -> list[Value | DecodeError]:
        """One value (or the DecodeError of that field) per field, in the fields' order.

        Bit responses may carry padding up to a multiple of 8; register responses must have
        exactly `count` words.
        """
        if self.bits:
            if len(words) < self.count:
                raise DecodeError(f"expected {self.count} bits, got {len(words)}")
            return [bool(words[position]) for position in self._bit_positions]
        if len(words) != self.count:
            raise DecodeError(f"expected {self.count} registers, got {len(words)}")
        out: list[Value | DecodeError] = [0] * self.size
        packed: dict[bool, bytes] = {}
        for run in self._runs:
            data = packed.get(run.little_endian_words)
            if data is None:
                data = _pack_words(words, run.little_endian_words)
                packed[run.little_endian_words] = data
            values = run.unpacker.unpack_from(data)
            if run.first >= 0:
                out[run.first : run.first + len(values)] = values
            else:
                for i, value in zip(run.indexes, values, strict=True):
                    out[i] = value
        for i, spec in self._others:
            try:
                if spec.dtype is DataType.STRING:
                    swapped = _STRING_SWAPS_BYTES[spec.order]
                    data = packed.get(swapped)
                    if data is None:
                        data = _pack_words(words, swapped)
                        packed[swapped] = data
                    start = spec.position * 2
                    out[i] = _decode_text(data[start : start + spec.span * 2])
                elif spec.dtype is DataType.BIT:
                    out[i] = bool((_check_word(int(words[spec.position])) >> (spec.bit or 0)) & 1)
                else:  # BOOL over a register
                    out[i] = bool(words[spec.position])
            except DecodeError as exc:
                out[i] = exc
        # apply_scale inline (this runs for every scaled tag of every poll); the fields are all
        # struct-decoded ints and floats.
        for scaling in self._scaling:
            scale, offset = scaling.scale, scaling.offset
            if scaling.indexes:
                for i in scaling.indexes:
                    out[i] = out[i] * scale + offset  # type: ignore[operator]
            else:
                start, stop = scaling.start, scaling.stop
                out[start:stop] = [
                    raw * scale + offset  # type: ignore[operator]
                    for raw in out[start:stop]
                ]
        return out


def _compile_runs(fields: Sequence[FieldSpec]) -> tuple[_StructRun, ...]:
    groups: dict[tuple[bool, str], list[int]] = {}
    for i, spec in enumerate(fields):
        if spec.dtype in _STRUCT_CODE:
            key = (_WORDS_LITTLE_ENDIAN[spec.order], _READ_PREFIX[spec.order])
            groups.setdefault(key, []).append(i)
    runs: list[_StructRun] = []
    for (little_endian_words, prefix), indexes in sorted(groups.items()):
        # Fields are laid into chains of non-overlapping ones (overlaps are legal for
        # read-only tags, e.g. a float32 and its two halves); one struct format per chain.
        chains: list[list[int]] = []
        ends: list[int] = []
        for i in sorted(indexes, key=lambda i: (fields[i].position, i)):
            spec = fields[i]
            for c, end in enumerate(ends):
                if spec.position >= end:
                    chains[c].append(i)
                    ends[c] = spec.position + spec.span
                    break
            else:
                chains.append([i])
                ends.append(spec.position + spec.span)
        for chain in chains:
            codes: list[tuple[str, int]] = []
            cursor = 0
            for i in chain:
                spec = fields[i]
                if spec.position > cursor:
                    codes.append(("x", (spec.position - cursor) * 2))
                codes.append((_STRUCT_CODE[spec.dtype], 1))
                cursor = spec.position + spec.span
            unpacker = struct.Struct(_struct_format(prefix, codes))
            first = _first_of_consecutive(chain)
            runs.append(_StructRun(little_endian_words, unpacker, tuple(chain), first))
    return tuple(runs)

"""The codec: every type in every byte/word order round-trips, known vectors, errors, scaling,
and the compiled block decoder agrees with the one-value decoder."""

from __future__ import annotations

import dataclasses
import math
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.codec import (
    BlockDecoder,
    DecodeError,
    EncodeError,
    FieldSpec,
    apply_scale,
    decode,
    encode,
    remove_scale,
    set_bit,
)
from drivers.modbus.config import REGISTERS, ByteOrder, DataType

ORDERS = list(ByteOrder)
INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


def same_float(a: object, b: object) -> bool:
    assert isinstance(a, float)
    assert isinstance(b, float)
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("dtype", list(INT_RANGES))
@pytest.mark.parametrize("order", ORDERS)
@given(data=st.data())
def test_integers_round_trip(dtype: DataType, order: ByteOrder, data: st.DataObject) -> None:
    low, high = INT_RANGES[dtype]
    value = data.draw(st.integers(low, high))
    words = encode(value, dtype, order)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode(words, dtype, order) == value


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(width=32, allow_nan=True, allow_infinity=True))
def test_float32_round_trips(order: ByteOrder, value: float) -> None:
    assert same_float(
        decode(encode(value, DataType.FLOAT32, order), DataType.FLOAT32, order), value
    )


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_float64_round_trips(order: ByteOrder, value: float) -> None:
    assert same_float(
        decode(encode(value, DataType.FLOAT64, order), DataType.FLOAT64, order), value
    )


TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20
).filter(lambda t: t == t.rstrip(" "))


@pytest.mark.parametrize("order", ORDERS)
@given(text=TEXT, extra=st.integers(0, 3))
def test_strings_round_trip_in_fixed_length(order: ByteOrder, text: str, extra: int) -> None:
    length = max(1, (len(text.encode()) + 1) // 2) + extra
    words = encode(text, DataType.STRING, order, length=length)
    assert len(words) == length
    assert decode(words, DataType.STRING, order, length=length) == text


@pytest.mark.parametrize("order", ORDERS)
@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15))
def test_bit_of_register_reads_that_bit_whatever_the_order(
    order: ByteOrder, word: int, bit: int
) -> None:
    assert decode([word], DataType.BIT, order, bit=bit) is bool(word >> bit & 1)


@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15), value=st.booleans())
def test_set_bit_changes_only_that_bit(word: int, bit: int, value: bool) -> None:
    changed = set_bit(word, bit, value)
    assert decode([changed], DataType.BIT, ByteOrder.ABCD, bit=bit) is value
    assert changed & ~(1 << bit) == word & ~(1 << bit)


def test_bool_decodes_coil_and_encodes_one_word() -> None:
    assert decode([True], DataType.BOOL, ByteOrder.ABCD) is True
    assert decode([0], DataType.BOOL, ByteOrder.ABCD) is False
    assert encode(True, DataType.BOOL, ByteOrder.ABCD) == [1]


@pytest.mark.parametrize(
    ("order", "words"),
    [
        (ByteOrder.ABCD, [0x3F80, 0x0000]),
        (ByteOrder.CDAB, [0x0000, 0x3F80]),
        (ByteOrder.BADC, [0x803F, 0x0000]),
        (ByteOrder.DCBA, [0x0000, 0x803F]),
    ],
)
def test_float32_one_point_zero_known_vectors(order: ByteOrder, words: list[int]) -> None:
    assert encode(1.0, DataType.FLOAT32, order) == words
    assert decode(words, DataType.FLOAT32, order) == 1.0


@pytest.mark.parametrize(
    ("order", "words"),
    [
        (ByteOrder.ABCD, [0x0102, 0x0304]),
        (ByteOrder.CDAB, [0x0304, 0x0102]),
        (ByteOrder.BADC, [0x0201, 0x0403]),
        (ByteOrder.DCBA, [0x0403, 0x0201]),
    ],
)
def test_uint32_known_vectors(order: ByteOrder, words: list[int]) -> None:
    assert encode(0x01020304, DataType.UINT32, order) == words


@pytest.mark.parametrize(
    ("order", "words"),
    [
        (ByteOrder.ABCD, [0x0102, 0x0304, 0x0506, 0x0708]),
        (ByteOrder.CDAB, [0x0708, 0x0506, 0x0304, 0x0102]),
        (ByteOrder.BADC, [0x0201, 0x0403, 0x0605, 0x0807]),
        (ByteOrder.DCBA, [0x0807, 0x0605, 0x0403, 0x0201]),
    ],
)
def test_uint64_known_vectors(order: ByteOrder, words: list[int]) -> None:
    assert encode(0x0102030405060708, DataType.UINT64, order) == words


@pytest.mark.parametrize(
    ("order", "word"),
    [
        (ByteOrder.ABCD, 0x0102),
        (ByteOrder.CDAB, 0x0102),
        (ByteOrder.BADC, 0x0201),
        (ByteOrder.DCBA, 0x0201),
    ],
)
def test_uint16_swaps_bytes_only_in_byte_swapped_orders(order: ByteOrder, word: int) -> None:
    assert encode(0x0102, DataType.UINT16, order) == [word]


def test_int16_minus_two_is_twos_complement() -> None:
    assert encode(-2, DataType.INT16, ByteOrder.ABCD) == [0xFFFE]
    assert decode([0xFFFE], DataType.INT16, ByteOrder.ABCD) == -2


def test_float64_known_vector_in_word_swapped_order() -> None:
    big_endian = struct.unpack(">4H", struct.pack(">d", 1.5))
    assert encode(1.5, DataType.FLOAT64, ByteOrder.CDAB) == list(reversed(big_endian))


def test_string_is_high_byte_first_and_strips_trailing_nuls_and_spaces() -> None:
    assert encode("AB", DataType.STRING, ByteOrder.ABCD, length=2) == [0x4142, 0x0000]
    assert decode([0x4142, 0x4320, 0x2000], DataType.STRING, ByteOrder.ABCD, length=3) == "ABC"


def test_string_in_byte_swapped_order_swaps_each_register() -> None:
    assert encode("AB", DataType.STRING, ByteOrder.BADC, length=1) == [0x4241]


def test_decoding_nan_and_infinity_gives_them() -> None:
    assert math.isnan(decode([0x7FC0, 0x0000], DataType.FLOAT32, ByteOrder.ABCD))  # type: ignore[arg-type]
    assert decode([0x7F80, 0x0000], DataType.FLOAT32, ByteOrder.ABCD) == math.inf


def test_wrong_register_count_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="float32 needs 2 registers, got 1"):
        decode([1], DataType.FLOAT32, ByteOrder.ABCD)


def test_non_utf8_text_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not UTF-8"):
        decode([0xFFFE], DataType.STRING, ByteOrder.ABCD, length=1)


def test_register_outside_sixteen_bits_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="16-bit"):
        decode([0x10000], DataType.UINT16, ByteOrder.ABCD)


@pytest.mark.parametrize(
    ("value", "dtype", "message"),
    [
        (70000, DataType.INT16, "outside the int16 range"),
        (-1, DataType.UINT32, "outside the uint32 range"),
        ("x", DataType.FLOAT32, "not a number"),
        (math.nan, DataType.INT32, "cannot be written"),
        (1e39, DataType.FLOAT32, "does not fit float32"),
        (True, DataType.BIT, "read-modify-write"),
    ],
)
def test_values_that_do_not_fit_are_encode_errors(
    value: float | str, dtype: DataType, message: str
) -> None:
    with pytest.raises(EncodeError, match=message):
        encode(value, dtype, ByteOrder.ABCD)


def test_text_longer_than_its_registers_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="do not fit 1 registers"):
        encode("ABC", DataType.STRING, ByteOrder.ABCD, length=1)


def test_fraction_for_an_integer_type_is_an_encode_error_not_rounded() -> None:
    with pytest.raises(EncodeError, match=r"41\.6 is not a whole number"):
        encode(41.6, DataType.UINT16, ByteOrder.ABCD)


def test_whole_float_with_the_noise_of_scaling_is_written_as_its_integer() -> None:
    assert encode(21.5 / 0.1, DataType.UINT16, ByteOrder.ABCD) == [215]


@pytest.mark.parametrize("dtype", [DataType.INT16, DataType.FLOAT32])
def test_true_or_false_for_a_number_type_is_an_encode_error(dtype: DataType) -> None:
    with pytest.raises(EncodeError, match="it takes a number, not True"):
        encode(True, dtype, ByteOrder.ABCD)


def test_unscaled_integers_stay_integers() -> None:
    value = apply_scale(7, 1.0, 0.0)
    assert value == 7
    assert isinstance(value, int)


def test_scale_and_offset_give_engineering_units_and_back() -> None:
    assert apply_scale(215, 0.1, -10.0) == pytest.approx(11.5)
    assert remove_scale(11.5, 0.1, -10.0) == pytest.approx(215)


def test_scale_leaves_bools_and_text_alone() -> None:
    assert apply_scale(True, 10.0, 1.0) is True
    assert remove_scale("on", 10.0, 1.0) == "on"


def test_removing_a_zero_scale_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="scale is 0"):
        remove_scale(5.0, 0.0, 0.0)


NUMERIC = [t for t in DataType if t not in (DataType.BOOL, DataType.STRING, DataType.BIT)]


@st.composite
def fields_and_words(draw: st.DrawFn) -> tuple[list[FieldSpec], list[int]]:
    count = draw(st.integers(1, 30))
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count))
    fields: list[FieldSpec] = []
    for _ in range(draw(st.integers(1, 12))):
        dtype = draw(st.sampled_from([*NUMERIC, DataType.BIT, DataType.STRING]))
        length = draw(st.integers(1, 4)) if dtype is DataType.STRING else None
        span = length if length is not None else REGISTERS[dtype]
        if span > count:
            continue
        fields.append(
            FieldSpec(
                position=draw(st.integers(0, count - span)),
                dtype=dtype,
                order=draw(st.sampled_from(ORDERS)),
                bit=draw(st.integers(0, 15)) if dtype is DataType.BIT else None,
                length=length,
                scale=draw(st.sampled_from([1.0, 0.5, 10.0])),
                offset=draw(st.sampled_from([0.0, -3.0])),
            )
        )
    return fields, words


@given(case=fields_and_words())
def test_block_decoder_agrees_with_decoding_each_value(
    case: tuple[list[FieldSpec], list[int]],
) -> None:
    fields, words = case
    decoded = BlockDecoder(fields, len(words)).decode(words)
    for spec, got in zip(fields, decoded, strict=True):
        chunk = words[spec.position : spec.position + spec.span]
        raw: object
        try:
            raw = decode(chunk, spec.dtype, spec.order, bit=spec.bit, length=spec.length)
        except DecodeError as exc:
            raw = exc
        if isinstance(raw, DecodeError):
            assert isinstance(got, DecodeError)
            assert str(got) == str(raw)
            continue
        expected = apply_scale(raw, spec.scale, spec.offset)
        if isinstance(expected, float):
            assert same_float(got, expected)
        else:
            assert got == expected
            assert type(got) is type(expected)


def test_block_decoder_gives_a_bad_string_its_own_error() -> None:
    decoder = BlockDecoder(
        [FieldSpec(0, DataType.UINT16), FieldSpec(1, DataType.STRING, length=1)], 2
    )
    good, bad = decoder.decode([5, 0xFFFE])
    assert good == 5
    assert isinstance(bad, DecodeError)


def test_block_decoder_refuses_a_response_of_the_wrong_size() -> None:
    with pytest.raises(DecodeError, match="expected 3 registers, got 2"):
        BlockDecoder([FieldSpec(0, DataType.UINT16)], 3).decode([1, 2])


def test_block_decoder_reads_bits_from_a_padded_coil_response() -> None:
    decoder = BlockDecoder([FieldSpec(0, DataType.BOOL), FieldSpec(2, DataType.BOOL)], 3, bits=True)
    assert decoder.decode([True, False, False, False, False, False, False, False]) == [
        True,
        False,
    ]


def _held_by(build: Callable[[], object]) -> int:
    """Bytes still allocated after `build()` returned, while its result is alive (a first call
    warms the caches: struct formats, free lists)."""
    build()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del built
    return held


@pytest.mark.parametrize(
    "layout",
    [
        [FieldSpec(i, DataType.UINT16, scale=0.1) for i in range(125)],
        [FieldSpec(2 * i, DataType.FLOAT32) for i in range(50)]
        + [FieldSpec(100 + i, DataType.INT16, scale=0.1) for i in range(25)],
    ],
    ids=["uint16x125", "mixed"],
)
def test_a_compiled_block_decoder_holds_a_few_bytes_per_field(layout: list[FieldSpec]) -> None:
    # The daemon keeps one decoder per planned read for its life: 800 of them at 100,000 tags.
    # What one holds per field (its FieldSpec, a (index, scale, offset) tuple, one struct code
    # per field) is held 100,000 times.
    def build() -> BlockDecoder:
        return BlockDecoder([dataclasses.replace(spec) for spec in layout], 125)

    assert _held_by(build) / len(layout) <= 40

"""OPC UA values to Samples and back: types, quality, timestamps, write conversion."""

from __future__ import annotations

import datetime as dt

import pytest
from asyncua import ua

from controller.model import Quality
from drivers.opcua.codec import encode_for_write, sample_from_datavalue

READ_TS = 1_700_000_000_000


def _dv(
    value: object,
    vtype: ua.VariantType,
    status: int | None = None,
    source: dt.datetime | None = None,
):
    return ua.DataValue(
        Value=ua.Variant(value, vtype),
        StatusCode=ua.StatusCode(status) if status is not None else ua.StatusCode(),
        SourceTimestamp=source,
    )


@pytest.mark.parametrize(
    ("value", "vtype", "expected"),
    [
        (True, ua.VariantType.Boolean, True),
        (-5, ua.VariantType.SByte, -5),
        (65535, ua.VariantType.UInt16, 65535),
        (-(2**40), ua.VariantType.Int64, -(2**40)),
        (2**63, ua.VariantType.UInt64, 2**63),
        (21.5, ua.VariantType.Double, 21.5),
        ("running", ua.VariantType.String, "running"),
        ([1.5, 2.5], ua.VariantType.Double, [1.5, 2.5]),
    ],
)
def test_builtin_types_become_python_values(value, vtype, expected):
    sample = sample_from_datavalue("plc", "t", _dv(value, vtype), READ_TS)
    assert sample.value == expected
    assert type(sample.value) is type(expected)


def test_float32_arrives_as_the_decimal_the_plc_shows():
    # 21.1 as a Float is 21.100000381469727 once widened to a double.
    sample = sample_from_datavalue("plc", "t", _dv(21.1, ua.VariantType.Float), READ_TS)
    assert sample.value == 21.1


def test_datetime_becomes_epoch_milliseconds():
    moment = dt.datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)
    sample = sample_from_datavalue("plc", "t", _dv(moment, ua.VariantType.DateTime), READ_TS)
    assert sample.value == int(moment.timestamp() * 1000)


def test_source_timestamp_is_kept_as_source_ts():
    source = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    sample = sample_from_datavalue(
        "plc", "t", _dv(1.0, ua.VariantType.Double, source=source), READ_TS
    )
    assert (sample.source_ts, sample.read_ts) == (int(source.timestamp() * 1000), READ_TS)


def test_missing_source_timestamp_falls_back_to_read_time():
    sample = sample_from_datavalue("plc", "t", _dv(1.0, ua.VariantType.Double), READ_TS)
    assert sample.source_ts == READ_TS


def test_uncertain_status_keeps_the_value_and_names_the_status():
    value = _dv(4.2, ua.VariantType.Double, ua.StatusCodes.UncertainLastUsableValue)
    sample = sample_from_datavalue("plc", "t", value, READ_TS)
    assert (sample.quality, sample.value, sample.reason) == (
        Quality.UNCERTAIN,
        4.2,
        "UncertainLastUsableValue",
    )


def test_bad_status_drops_the_value_and_names_the_status():
    value = _dv(4.2, ua.VariantType.Double, ua.StatusCodes.BadSensorFailure)
    sample = sample_from_datavalue("plc", "t", value, READ_TS)
    assert (sample.quality, sample.value, sample.reason) == (Quality.BAD, None, "BadSensorFailure")


def test_unsupported_type_is_a_bad_sample_saying_so():
    sample = sample_from_datavalue("plc", "t", _dv(b"\x00\x01", ua.VariantType.ByteString), READ_TS)
    assert sample.quality is Quality.BAD
    assert sample.reason == "values of type ByteString are not supported"


@pytest.mark.parametrize(
    ("value", "vtype", "expected"),
    [
        (5, ua.VariantType.Double, 5.0),
        (7.0, ua.VariantType.Int16, 7),
        (1, ua.VariantType.Boolean, True),
        (12.5, ua.VariantType.Float, 12.5),
        ([1, 2], ua.VariantType.Double, [1.0, 2.0]),
    ],
)
def test_write_value_is_converted_to_the_node_type(value, vtype, expected):
    variant = encode_for_write(value, vtype)
    # repr tells 5 from 5.0 and True from 1.
    assert (variant.VariantType, repr(variant.Value)) == (vtype, repr(expected))


@pytest.mark.parametrize(
    ("value", "vtype"),
    [
        (70000, ua.VariantType.Int16),
        (2.5, ua.VariantType.Int32),
        ("open", ua.VariantType.Double),
        (3, ua.VariantType.Boolean),
    ],
)
def test_write_value_that_does_not_convert_keeps_its_own_type(value, vtype):
    variant = encode_for_write(value, vtype)
    assert variant.VariantType != vtype
    assert variant.Value == value

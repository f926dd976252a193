"""Tags as Sparkplug metrics: datatypes from the config, values in the field their datatype
uses (two's complement for signed integers), command values read back the same way, and the
config refusing what a host could not tell apart."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import ConfigError, load_config, parse_config
from controller.sparkplug import metrics as m
from controller.sparkplug.hoststate import HostStateError, parse_state
from controller.sparkplug.sparkplug_b_pb2 import DataType, Payload


def tag(**fields: object) -> object:
    settings = ", ".join(f"{k}: {v}" for k, v in fields.items())
    config = parse_config(
        "gateway: {id: gw}\ndevices:\n  - name: d\n    driver: modbus\n"
        "    link: {transport: tcp, host: 127.0.0.1, port: 1}\n"
        f"    tags: [{{name: t, address: 0, {settings}}}]\n",
        "c.yaml",
    )
    return config.devices[0].tags[0]


@pytest.mark.parametrize(
    ("fields", "datatype"),
    [
        ({"type": "int16"}, DataType.Int16),
        ({"type": "uint32"}, DataType.UInt32),
        ({"type": "float32"}, DataType.Float),
        ({"type": "int16", "scale": 0.1}, DataType.Double),  # scaled: engineering units
        ({"table": "coil", "type": "bool"}, DataType.Boolean),
        ({"type": "string", "length": 4}, DataType.String),
    ],
)
def test_the_config_says_the_datatype(fields: dict[str, object], datatype: int) -> None:
    assert m.declared_datatype(tag(**fields)) == datatype


@pytest.mark.parametrize(
    ("datatype", "value", "field", "raw"),
    [
        (DataType.Int16, -2, "int_value", 0xFFFFFFFE),
        (DataType.Int64, -2, "long_value", 0xFFFFFFFFFFFFFFFE),
        (DataType.UInt16, 65535, "int_value", 65535),
        (DataType.Boolean, True, "boolean_value", True),
        (DataType.Double, 2.5, "double_value", 2.5),
        (DataType.String, [1, 2], "string_value", "[1,2]"),  # OPC UA arrays: JSON text
    ],
)
def test_values_go_in_their_datatypes_field_and_commands_read_back(
    datatype: int, value: object, field: str, raw: object
) -> None:
    metric = Payload.Metric()
    m.set_value(metric, datatype, value)  # type: ignore[arg-type]
    assert metric.WhichOneof("value") == field
    assert getattr(metric, field) == raw
    if datatype != DataType.String:
        assert m.command_value(metric, datatype) == value


def test_a_value_that_does_not_fit_asks_for_a_rebirth() -> None:
    with pytest.raises(m.DatatypeChangedError):
        m.set_value(Payload.Metric(), DataType.Int16, 70000)
    with pytest.raises(m.DatatypeChangedError):
        m.set_value(Payload.Metric(), DataType.Boolean, 1)
    null = Payload.Metric()
    m.set_value(null, DataType.Double, float("nan"))
    assert null.is_null


def test_command_values_that_cannot_be_written_are_refused() -> None:
    text = Payload.Metric(string_value="7")
    with pytest.raises(m.CommandValueError, match="string_value cannot be written"):
        m.command_value(text, DataType.Float)
    with pytest.raises(m.CommandValueError, match="no value"):
        m.command_value(Payload.Metric(), DataType.Float)
    with pytest.raises(m.CommandValueError, match="finite"):
        m.command_value(Payload.Metric(double_value=float("inf")), DataType.Double)


def test_tag_names_that_differ_only_in_case_are_refused_with_sparkplug_on(
    tmp_path: Path,
) -> None:
    text = (
        "gateway: {id: gw}\nsparkplug: {enabled: true, group_id: g}\ndevices:\n"
        "  - name: d\n    driver: modbus\n    link: {transport: tcp, host: 127.0.0.1, port: 1}\n"
        "    tags: [{name: Temp, address: 0}, {name: temp, address: 1}]\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "differ only in case" in str(refused.value.problems)
    path.write_text(text.replace("enabled: true", "enabled: false"), encoding="utf-8")
    load_config(path)  # the JSON contract alone has no such limit


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200), datatype=st.sampled_from(list(DataType.values())))
def test_any_command_bytes_are_a_value_or_a_typed_refusal(raw: bytes, datatype: int) -> None:
    """What a DCMD handler meets: a decode error, or metrics whose values are read as a bool
    or a finite number, or refused with `CommandValueError`; nothing else escapes."""
    try:
        payload = Payload.FromString(raw)
    except DecodeError:
        return
    for metric in payload.metrics:
        try:
            value = m.command_value(metric, datatype)
        except m.CommandValueError:
            continue
        assert isinstance(value, bool | int | float)
        assert value == value  # not NaN


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(
    st.binary(max_size=100),
    st.builds(lambda o, t: orjson.dumps({"online": o, "timestamp": t}),
              st.one_of(st.booleans(), st.integers(-9, 9), st.none(), st.text(max_size=5)),
              st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
                        st.booleans(), st.none())),
))
def test_any_state_payload_is_a_host_state_or_a_typed_refusal(raw: bytes) -> None:
    try:
        state = parse_state(raw)
    except HostStateError:
        return
    assert isinstance(state.online, bool)
    assert isinstance(state.timestamp, int)
    assert state.timestamp >= 0

"""OPC UA values in and out: a DataValue becomes a `Sample` (built-in types to Python values,
StatusCode to quality, SourceTimestamp to `source_ts`); a value to write becomes a Variant of
the node's own data type."""

from __future__ import annotations

import datetime as dt
import math
import struct
import uuid
from typing import Any

from asyncua import ua

from controller.model import Quality, Sample, Value

_INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOATS = (ua.VariantType.Float, ua.VariantType.Double)
# Types that have a plain text form a consumer can use.
_TEXTS = (ua.VariantType.String, ua.VariantType.LocalizedText, ua.VariantType.QualifiedName)
_FLOAT32_MAX = 3.4028234663852886e38


class UnsupportedValueError(Exception):
    """A value of a type that has no `Sample` form (structures, byte strings, matrices)."""


def quality_of(status: ua.StatusCode | None) -> Quality:
    """OPC UA's severity bits (Part 4, 7.39): 00 good, 01 uncertain, 1x bad."""
    if status is None or status.is_good():
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def epoch_ms(timestamp: dt.datetime) -> int:
    """A DateTime (asyncua gives UTC, naive or aware) as epoch milliseconds."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    return int(timestamp.timestamp() * 1000)


def sample_from_datavalue(device: str, tag: str, value: ua.DataValue, read_ts: int) -> Sample:
    """One Sample from one DataValue. Uncertain samples keep their value; bad ones carry
    `value` None. Either way `reason` is the StatusCode's name (`UncertainLastUsableValue`)."""
    status = value.StatusCode
    quality = quality_of(status)
    source_ts = epoch_ms(value.SourceTimestamp) if value.SourceTimestamp is not None else read_ts
    reason = status.name if status is not None and quality is not Quality.GOOD else ""
    if quality is Quality.BAD:
        return Sample(device, tag, None, quality, source_ts, read_ts, reason)
    try:
        decoded = decode_variant(value.Value)
    except UnsupportedValueError as exc:
        return Sample(device, tag, None, Quality.BAD, source_ts, read_ts, str(exc))
    return Sample(device, tag, decoded, quality, source_ts, read_ts, reason)


def bad_sample(device: str, tag: str, reason: str, now: int) -> Sample:
    return Sample(device, tag, None, Quality.BAD, now, now, reason)


def decode_variant(variant: ua.Variant | None) -> Value:
    """A Variant of a built-in type as a Sample value; arrays as lists."""
    if variant is None or variant.VariantType == ua.VariantType.Null or variant.Value is None:
        raise UnsupportedValueError("the server sent no value (Null)")
    vtype = variant.VariantType
    if variant.Dimensions and len(variant.Dimensions) > 1:
        raise UnsupportedValueError(f"matrices of {vtype.name} are not supported")
    if variant.is_array or isinstance(variant.Value, list | tuple):
        # Homogeneous: an array has one VariantType.
        return [_decode_scalar(vtype, item) for item in variant.Value]  # type: ignore[return-value]
    return _decode_scalar(vtype, variant.Value)


def _decode_scalar(vtype: Any, value: Any) -> bool | int | float | str:
    if vtype == ua.VariantType.Boolean:
        return bool(value)
    if vtype in _INTEGER_RANGES:
        return int(value)
    if vtype == ua.VariantType.Float:
        return _shortest_float32(float(value))
    if vtype == ua.VariantType.Double:
        return float(value)
    if vtype == ua.VariantType.DateTime:
        return epoch_ms(value)
    if vtype == ua.VariantType.String:
        return str(value)
    if vtype == ua.VariantType.LocalizedText:
        return str(value.Text or "")
    if vtype == ua.VariantType.QualifiedName:
        return str(value.to_string())
    if vtype == ua.VariantType.Guid:
        return str(value)
    if vtype in (ua.VariantType.NodeId, ua.VariantType.ExpandedNodeId):
        return str(value.to_string())
    if vtype == ua.VariantType.StatusCode:
        return str(value.name)
    name = getattr(vtype, "name", str(vtype))
    raise UnsupportedValueError(f"values of type {name} are not supported")


def _shortest_float32(value: float) -> float:
    """A Float arrives widened to double (21.1 -> 21.100000381469727); give the shortest decimal
    that is the same single-precision number, which is what the PLC shows."""
    if not math.isfinite(value):
        return value
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


# --- writes -----------------------------------------------------------------------------------


def variant_type_of_datatype(datatype: ua.NodeId) -> ua.VariantType | None:
    """The VariantType of a built-in DataType NodeId (ns=0;i=1..25), else None."""
    if datatype.NamespaceIndex == 0 and isinstance(datatype.Identifier, int):
        try:
            vtype = ua.VariantType(datatype.Identifier)
        except ValueError:
            return None
        return None if vtype == ua.VariantType.Null else vtype
    return None


def encode_for_write(value: Value, vtype: ua.VariantType | None) -> ua.Variant:
    """`value` as a Variant of the node's data type when it converts without loss (5 -> 5.0
    for a Double, 1.0 -> 1 for an Int16, 1 -> True for a Boolean). A value that does not
    convert is sent with its own type, and the server answers with its own refusal
    (BadTypeMismatch): the device, not the driver, says what it accepts."""
    if vtype is None:
        return ua.Variant(value)
    if isinstance(value, list):
        converted = [_convert(item, vtype) for item in value]
        if any(item is _NO_CONVERSION for item in converted):
            return ua.Variant(value)
        return ua.Variant(converted, vtype, is_array=True)
    converted_scalar = _convert(value, vtype)
    if converted_scalar is _NO_CONVERSION:
        return ua.Variant(value)
    return ua.Variant(converted_scalar, vtype)


_NO_CONVERSION: Any = object()


def converts_for_write(value: Value, vtype: ua.VariantType) -> bool:
    """Whether `encode_for_write` gives `value` the node's type `vtype` (if not, the server
    would refuse it). true/false is not taken for a number, though it converts to 1/0."""
    if isinstance(value, bool) and vtype != ua.VariantType.Boolean:
        return False
    return _convert(value, vtype) is not _NO_CONVERSION


def is_integer_type(vtype: ua.VariantType) -> bool:
    return vtype in _INTEGER_RANGES


def _convert(value: Any, vtype: ua.VariantType) -> Any:
    if vtype == ua.VariantType.Boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        return _NO_CONVERSION
    if vtype in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[vtype]
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and low <= value <= high:
            return value
        return _NO_CONVERSION
    if vtype in _FLOATS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            too_big = math.isfinite(number) and abs(number) > _FLOAT32_MAX
            if vtype == ua.VariantType.Float and too_big:
                return _NO_CONVERSION
            return number
        return _NO_CONVERSION
    if vtype == ua.VariantType.String:
        return value if isinstance(value, str) else _NO_CONVERSION
    if vtype == ua.VariantType.DateTime:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
        return _NO_CONVERSION
    if vtype == ua.VariantType.Guid and isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return _NO_CONVERSION
    return _NO_CONVERSION

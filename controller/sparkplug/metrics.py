"""Sparkplug B payloads of edgecell's tags: each tag a metric with a datatype, an engineering
unit, an alias fixed by the config, and its quality as the `Quality` property hosts read
(192 good, 0 bad, 500 stale: Sparkplug 3.0's quality codes, Ignition's MQTT Engine's).

Datatypes come from the config where it says (a Modbus tag's `type`; `Double` when it is scaled)
and from the first value otherwise (OPC UA). A value that no longer fits its metric's datatype
asks for the device's rebirth (`DatatypeChangedError`); OPC UA arrays travel as JSON text in a
String metric (docs/sparkplug.md, "Datatypes").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from controller.model import Quality, Sample, Value
from controller.sparkplug.sparkplug_b_pb2 import DataType, Payload

# The datatypes as plain ints: an attribute of the generated enum wrapper (`DataType.Float`)
# is a dictionary walk costing microseconds, paid per metric on the publishing path.
(INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING) = (
    DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64, DataType.UInt8,
    DataType.UInt16, DataType.UInt32, DataType.UInt64, DataType.Float, DataType.Double,
    DataType.Boolean, DataType.String,
)

QUALITY_GOOD = 192
QUALITY_BAD = 0
QUALITY_STALE = 500
# OPC UA's Uncertain has no code of its own in Sparkplug 3.0: it is not good, and the value is
# not a held last value (stale) either, so hosts see it bad (docs/sparkplug.md, "Quality").
QUALITY_CODES: Mapping[Quality, int] = {
    Quality.GOOD: QUALITY_GOOD,
    Quality.UNCERTAIN: QUALITY_BAD,
    Quality.BAD: QUALITY_BAD,
}
QUALITY_PROPERTY = "Quality"
UNIT_PROPERTY = "engUnit"  # the engineering unit, as Ignition's MQTT Engine names it

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"

_INT32 = frozenset({INT8, INT16, INT32})
_UINT32 = frozenset({UINT8, UINT16, UINT32})
_BITS: dict[int, int] = {
    INT8: 8, INT16: 16, INT32: 32, INT64: 64,
    UINT8: 8, UINT16: 16, UINT32: 32, UINT64: 64,
}
INTEGER_TYPES = frozenset(_BITS)
NUMBER_TYPES = INTEGER_TYPES | {FLOAT, DOUBLE}

# A Modbus tag's `type` -> its datatype (unscaled); bit and bool are Boolean.
MODBUS_TYPES: Mapping[str, int] = {
    "bool": BOOLEAN, "bit": BOOLEAN,
    "int16": INT16, "uint16": UINT16,
    "int32": INT32, "uint32": UINT32,
    "int64": INT64, "uint64": UINT64,
    "float32": FLOAT, "float64": DOUBLE,
    "string": STRING,
}


class DatatypeChangedError(ValueError):
    """A value that its metric's datatype cannot carry: the device is born again with the new
    datatype."""


class CommandValueError(ValueError):
    """A command metric whose value edgecell cannot write (missing, null, text, ...)."""


@dataclass(frozen=True, slots=True)
class TagMetric:
    """One tag as a metric: its alias, unit and (when the config fixes it) datatype."""

    name: str
    alias: int
    unit: str | None = None
    datatype: int | None = None  # None: taken from the first value


@dataclass(slots=True)
class DeviceMetrics:
    """The metrics of one device, in config order."""

    device: str
    tags: dict[str, TagMetric] = field(default_factory=dict)
    by_alias: dict[int, TagMetric] = field(default_factory=dict)


def declared_datatype(tag: Any) -> int | None:
    """What the config says a tag holds: a Modbus tag's type (Double when scaled), None for
    OPC UA (the server's node says, seen in the first value)."""
    kind = getattr(tag, "type", None)
    if kind is None:
        return None
    datatype = MODBUS_TYPES.get(str(kind))
    scaled = getattr(tag, "scale", 1.0) != 1.0 or getattr(tag, "offset", 0.0) != 0.0
    if datatype in NUMBER_TYPES and scaled:
        return DOUBLE
    return datatype


def device_metrics(devices: Sequence[Any], first_alias: int) -> dict[str, DeviceMetrics]:
    """Every configured device's metrics; aliases numbered from `first_alias` in config order,
    unique across the node (tck-id-payloads-alias-uniqueness) and the same at every start with
    the same config."""
    alias = first_alias
    out: dict[str, DeviceMetrics] = {}
    for device in devices:
        metrics = DeviceMetrics(device.name)
        for tag in device.tags:
            metric = TagMetric(tag.name, alias, getattr(tag, "unit", None), declared_datatype(tag))
            metrics.tags[tag.name] = metric
            metrics.by_alias[alias] = metric
            alias += 1
        out[device.name] = metrics
    return out


def datatype_of(value: Value | None) -> int:
    """The datatype a value travels as when the config does not say."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INT64
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str | list):
        return STRING
    return DOUBLE  # nothing read yet: the common case of an OPC UA process value


def fits(datatype: int, value: Value | None) -> bool:
    """Whether `value` can travel as `datatype` without changing it."""
    if value is None:
        return True
    if datatype == BOOLEAN:
        return isinstance(value, bool)
    if datatype == STRING:
        return isinstance(value, (str, list))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if datatype in (FLOAT, DOUBLE):
        return True
    if not isinstance(value, int):
        return False
    bits = _BITS[datatype]
    if datatype in _UINT32 or datatype == UINT64:
        return 0 <= value < 1 << bits
    return -(1 << (bits - 1)) <= value < 1 << (bits - 1)


def set_value(metric: Payload.Metric, datatype: int, value: Value | None) -> None:
    """The value in the field its datatype uses (Sparkplug 3.0, "Datatypes"): signed integers
    as two's complement in int_value (32 bits and less) or long_value; null as is_null."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        metric.is_null = True
        return
    if not fits(datatype, value):
        raise DatatypeChangedError(f"{value!r} does not fit {DataType.Name(datatype)}")
    if datatype == BOOLEAN:
        metric.boolean_value = bool(value)
    elif datatype == STRING:
        metric.string_value = value if isinstance(value, str) else orjson.dumps(value).decode()
    elif datatype == FLOAT:
        metric.float_value = float(value)  # type: ignore[arg-type]
    elif datatype == DOUBLE:
        metric.double_value = float(value)  # type: ignore[arg-type]
    elif datatype in _INT32 or datatype in _UINT32:
        metric.int_value = int(value) & 0xFFFFFFFF  # type: ignore[arg-type]
    else:
        metric.long_value = int(value) & 0xFFFFFFFFFFFFFFFF  # type: ignore[arg-type]


def set_quality(metric: Payload.Metric, quality: int) -> None:
    properties = metric.properties
    properties.keys.append(QUALITY_PROPERTY)
    properties.values.add(type=INT32, int_value=quality)


def birth_metric(
    payload: Payload, tag: TagMetric, datatype: int, sample: Sample | None, *, now: int
) -> None:
    """A DBIRTH metric: name, alias, datatype, timestamp, value (or is_null), Quality and
    engUnit properties."""
    metric = payload.metrics.add(name=tag.name, alias=tag.alias, datatype=datatype)
    metric.timestamp = sample.source_ts if sample is not None else now
    set_value(metric, datatype, sample.value if sample is not None else None)
    # Not read yet: stale, the host's code for "no current value" (Sparkplug 3.0).
    set_quality(metric, QUALITY_CODES[sample.quality] if sample is not None else QUALITY_STALE)
    if tag.unit is not None:
        metric.properties.keys.append(UNIT_PROPERTY)
        metric.properties.values.add(type=STRING, string_value=tag.unit)


def data_metric(
    payload: Payload,
    tag: TagMetric,
    datatype: int,
    sample: Sample,
    *,
    with_quality: bool,
    historical: bool = False,
) -> None:
    """A DDATA metric: alias only (tck-id-payloads-alias-data-cmd-requirement), timestamp, value,
    and Quality when it is not good or just became good again (a host takes a metric without
    it as good, Cirrus Link's convention)."""
    metric = payload.metrics.add(alias=tag.alias, timestamp=sample.source_ts)
    if historical:
        metric.is_historical = True
    set_value(metric, datatype, sample.value)
    if with_quality:
        set_quality(metric, QUALITY_CODES[sample.quality])


def node_birth(
    *, bdseq: int, now: int, properties: Mapping[str, str], first_alias: int
) -> Payload:
    """NBIRTH: bdSeq, `Node Control/Rebirth` (false, without alias:
    tck-id-operational-behavior-data-commands-rebirth-name-aliases) and the node's text
    properties, aliases from `first_alias`. seq 0."""
    payload = Payload(timestamp=now, seq=0)
    payload.metrics.add(
        name=BDSEQ, alias=first_alias, timestamp=now, datatype=INT64, long_value=bdseq
    )
    payload.metrics.add(name=REBIRTH, timestamp=now, datatype=BOOLEAN,
                        boolean_value=False)
    for offset, (name, text) in enumerate(properties.items(), start=1):
        payload.metrics.add(
            name=name, alias=first_alias + offset, timestamp=now, datatype=STRING,
            string_value=text,
        )
    return payload


def node_death(*, bdseq: int, now: int) -> bytes:
    """NDEATH: the bdSeq metric only, no seq (tck-id-topics-ndeath-payload, -seq)."""
    payload = Payload(timestamp=now)
    payload.metrics.add(name=BDSEQ, timestamp=now, datatype=INT64, long_value=bdseq)
    return payload.SerializeToString()


def command_value(metric: Payload.Metric, datatype: int) -> bool | int | float:
    """The value a host asks to write, read as the metric's (born) datatype: a bool or a finite
    number. Raises `CommandValueError`."""
    if metric.is_null:
        raise CommandValueError("the metric is null; edgecell writes a number or a boolean")
    kind = metric.WhichOneof("value")
    if kind is None:
        raise CommandValueError("the metric has no value")
    if kind == "boolean_value":
        return bool(metric.boolean_value)
    if kind in ("float_value", "double_value"):
        number = float(getattr(metric, kind))
        if not math.isfinite(number):
            raise CommandValueError(f"{number} is not a finite number")
        return number
    if kind in ("int_value", "long_value"):
        raw = int(getattr(metric, kind))
        bits = 32 if kind == "int_value" else 64
        signed = datatype in _INT32 or datatype == INT64 or datatype not in INTEGER_TYPES
        if signed and raw >= 2 ** (bits - 1):
            raw -= 2**bits  # two's complement
        return raw
    raise CommandValueError(f"a {kind} cannot be written; send a number or a boolean")


def encode_history(samples: Iterable[Sample]) -> bytes:
    """What the history file keeps of a batch: names, not aliases (a reload may renumber them),
    so the replay encodes with the aliases of its own session."""
    return bytes(orjson.dumps(
        [[s.tag, s.value, s.quality.value, s.source_ts, s.read_ts] for s in samples]
    ))


def decode_history(device: str, payload: bytes) -> list[Sample]:
    rows = orjson.loads(payload)
    return [Sample(device, row[0], row[1], Quality(row[2]), row[3], row[4]) for row in rows]

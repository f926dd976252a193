"""The shared vocabulary: samples, their quality, write requests and device status.

Nothing downstream of a driver ever sees a raw register or a raw OPC UA DataValue: drivers turn
them into `Sample`s, and everything after them speaks only this module's types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# A tag's value once decoded. Lists hold OPC UA arrays.
Value = bool | int | float | str | list[bool] | list[int] | list[float] | list[str]


class Quality(StrEnum):
    """OPC UA's three quality classes; Modbus samples use the same."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one tag.

    `source_ts` is the device's own timestamp when it gives one (OPC UA SourceTimestamp), else the
    read time; both are epoch milliseconds from the injectable clock. A bad sample carries `value`
    None and a `reason` a person can act on ("timeout after 500 ms", "exception 2: illegal data
    address", "BadNodeIdUnknown").
    """

    device: str
    tag: str
    value: Value | None
    quality: Quality
    source_ts: int
    read_ts: int
    reason: str = ""

    @property
    def key(self) -> str:
        """The gateway-wide tag id `device.tag` that rules and commands use."""
        return f"{self.device}.{self.tag}"


class _SampleUnderConstruction:
    """Sample's slots without its frozen `__setattr__`: `samples_of` fills one with plain
    (specialised, fast) slot stores, then makes it a Sample by assigning `__class__`, which
    Python allows between classes of the same slots."""

    __slots__ = Sample.__slots__


_new_object = object.__new__


def samples_of(
    device: str,
    tags: Sequence[str],
    values: Sequence[Value | None],
    *,
    quality: Quality,
    source_ts: int,
    read_ts: int,
    reason: str = "",
) -> list[Sample]:
    """`[Sample(device, tag, value, quality, source_ts, read_ts, reason) ...]` for each
    (tag, value): the same frozen objects, built in a third of the time. A driver emits one
    sample per tag per poll, and the frozen dataclass's __init__ (one `object.__setattr__` per
    field) was the largest single cost of a poll (bench/README.md)."""
    new = _new_object
    samples: list[Sample] = []
    append = samples.append
    for tag, value in zip(tags, values, strict=True):
        sample: Any = new(_SampleUnderConstruction)
        sample.device = device
        sample.tag = tag
        sample.value = value
        sample.quality = quality
        sample.source_ts = source_ts
        sample.read_ts = read_ts
        sample.reason = reason
        sample.__class__ = Sample
        append(sample)
    return samples


class LinkState(StrEnum):
    """Connection state of a device as published on `{base}/devices/{device}/status`."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(slots=True)
class DeviceStatus:
    """What an operator needs to know about one device, kept by its driver."""

    device: str
    state: LinkState = LinkState.CONNECTING
    last_error: str = ""
    consecutive_failures: int = 0
    reconnects: int = 0
    polls: int = 0
    skipped_cycles: int = 0
    latency_ms: float | None = None
    since_ms: int = 0
    extra: dict[str, str | int | float] = field(default_factory=dict)


class WriteError(Exception):
    """A write was refused or failed; the message says by whom and why."""


class DeviceUnavailableError(Exception):
    """The device did not answer (timeout, refused, closed). Drivers raise it, owners turn it into
    bad-quality samples and a device status, once per state change in the log."""


@dataclass(frozen=True, slots=True)
class ConditionState:
    """The state of an alarm condition a device reports (OPC UA Alarms & Conditions, Part 9):
    `condition_id` identifies the condition on the device (its NodeId), `event_id` the event
    that carried this state (an acknowledgement names it)."""

    condition_id: str
    name: str
    active: bool
    acked: bool
    retain: bool
    event_id: bytes


class DeviceEventKind(StrEnum):
    """What an event means to the gateway beyond being published."""

    EVENT = "event"  # a plain event, or a condition's state change
    REFRESH_START = "refresh_start"  # the device begins re-sending every retained condition
    REFRESH_END = "refresh_end"  # ... and has sent them all


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One event a device raised, already checked: `time_ms` is the device's time of the event,
    `severity` 1-1000, `message` at most a few hundred characters; `condition` is set when the
    event is a condition's state (then `alarms` says whether the device's config maps it to an
    alarm)."""

    device: str
    kind: DeviceEventKind
    event_type: str
    source: str
    source_node: str
    time_ms: int
    severity: int
    message: str
    event_id: bytes
    condition: ConditionState | None = None
    alarms: bool = True
    # False for a condition state under the entry's min_severity: it may update or clear an
    # alarm already raised, never raise one (and is not published).
    may_raise: bool = True

    def payload(self) -> dict[str, Any]:
        """The JSON of `{base}/events/opcua/{device}` (docs/mqtt-topics.md), without `ts`."""
        body: dict[str, Any] = {
            "device": self.device,
            "event_id": self.event_id.hex(),
            "type": self.event_type,
            "source": self.source,
            "source_node": self.source_node,
            "time": self.time_ms,
            "severity": self.severity,
            "message": self.message,
        }
        if self.condition is not None:
            c = self.condition
            body["condition"] = {
                "id": c.condition_id,
                "name": c.name,
                "active": c.active,
                "acked": c.acked,
                "retain": c.retain,
            }
        return body

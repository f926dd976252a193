"""The shared vocabulary: samples, their quality, write requests and device status.

Nothing downstream of a driver ever sees a raw register or a raw OPC UA DataValue: drivers turn
them into `Sample`s, and everything after them speaks only this module's types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
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


# The slot descriptors of Sample's fields, in order: setting them directly skips the frozen
# dataclass's per-field object.__setattr__ (see samples_of).
_SAMPLE_SLOTS: tuple[Any, ...] = tuple(Sample.__dict__[f.name].__set__ for f in fields(Sample))
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
    (tag, value): the same objects, built in about half the time. A driver emits one sample per
    tag per poll, and the frozen dataclass's __init__ was the largest single cost of a
    10,000-tag poll (bench/README.md)."""
    set_device, set_tag, set_value, set_quality, set_source, set_read, set_reason = _SAMPLE_SLOTS
    new = _new_object
    samples: list[Sample] = []
    append = samples.append
    for tag, value in zip(tags, values, strict=True):
        sample = new(Sample)
        set_device(sample, device)
        set_tag(sample, tag)
        set_value(sample, value)
        set_quality(sample, quality)
        set_source(sample, source_ts)
        set_read(sample, read_ts)
        set_reason(sample, reason)
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

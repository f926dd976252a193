"""What the actuator remembers between cycles: operators' overrides, each written tag's last
write, its read-back verification and equipment timers, which tags have been read since the
start, the heartbeats, and which events were published (so that repeats are counted, not
published). Plain data and pure decisions on it; no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.actuation.outcomes import Outcome, WriteResult
from controller.model import Quality, Sample, Value
from controller.rules.common import OutputValue
from controller.rules.cycling import MinOnOffTimes

# Outcomes published every time; the others only when they differ from the last event of the
# tag, so a rule held off for minutes, or a device down for an hour, does not publish the same
# refusal or failure every cycle. The repeats left unpublished are counted in the next event of
# the tag (`repeats`).
ALWAYS_PUBLISHED = frozenset(
    {Outcome.WRITTEN, Outcome.VERIFY_FAILED, Outcome.EXPIRED, Outcome.CLEARED}
)
# A failure that goes on is published again this often (seconds), with its count of repeats.
REPEAT_SUMMARY = 60.0


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's value for a tag, winning over every rule until `expires_at` (monotonic)."""

    tag: str
    value: OutputValue
    expires_at: float
    expires_ms: int
    by: str


@dataclass(frozen=True, slots=True)
class Pending:
    """A write waiting for a reading of the tag that shows it."""

    value: OutputValue
    deadline: float
    written_ms: int
    source: str
    rule: str | None


@dataclass
class TagState:
    """What the actuator remembers about one written tag (one for real writes, one for shadow)."""

    last_value: OutputValue | None = None
    last_time: float | None = None
    pending: Pending | None = None
    equipment: MinOnOffTimes | None = None
    holder: str | None = None  # the source that held the tag last cycle
    last_event: tuple[Any, ...] | None = None
    repeats: int = 0  # events like the last one published, not published since
    published_at: float = -math.inf  # monotonic time of the last event published


@dataclass
class Heartbeat:
    tag: str
    period: float
    modulo: int
    counter: int = 0
    due: float = -math.inf
    failing: bool = False


@dataclass
class ActuatorStats:
    """Counts for the health topic."""

    writes: int = 0
    failures: int = 0
    verify_failures: int = 0
    refusals: int = 0
    # Values already in place written again (actuation.outputs.<tag>.refresh), not in `writes`.
    refreshes: int = 0
    heartbeats: int = 0
    heartbeat_failures: int = 0


class FirstReadings:
    """Which writable tags have had a good reading since the start: a tag is written only after
    one (a start is bumpless: read first, then act)."""

    def __init__(self) -> None:
        self._read: set[str] = set()
        self._unread: set[str] = set()

    def expect(self, tags: Iterable[str]) -> None:
        """The writable tags of the config (again after a reload); those read stay read."""
        self._unread = {tag for tag in tags if tag not in self._read}

    def note(self, snapshot: Mapping[str, Sample]) -> None:
        if not self._unread:
            return
        for tag in [t for t in self._unread if present(snapshot, t) is not None]:
            self._unread.discard(tag)
            self._read.add(tag)

    def read(self, tag: str) -> bool:
        return tag not in self._unread


def present(snapshot: Mapping[str, Sample], tag: str) -> Value | None:
    """The tag's value when its reading is good, else None."""
    sample = snapshot.get(tag)
    if sample is None or sample.quality is not Quality.GOOD:
        return None
    return sample.value


def verification(
    pending: Pending, sample: Sample | None, now: float, tolerance: float
) -> bool | str | None:
    """A pending write against the latest reading: True when the reading shows it, None while
    there is still time, else why it failed."""
    # Strictly later: a reading taken in the same millisecond may predate the write.
    fresh = sample is not None and sample.read_ts > pending.written_ms
    if (
        fresh
        and sample is not None
        and sample.quality is Quality.GOOD
        and same(sample.value, pending.value, tolerance)
    ):
        return True
    if now < pending.deadline:
        return None
    if not fresh or sample is None:
        return "no reading of the tag since the write"
    if sample.quality is not Quality.GOOD:
        return f"its reading is {sample.quality.value}: {sample.reason}"
    return f"it reads {sample.value!r}"


def signature(result: WriteResult) -> tuple[Any, ...]:
    """What makes two events of a tag the same event. A failure is the same failure whatever
    value it was for: a rule that keeps proposing while its device is down repeats one event."""
    value = None if result.outcome is Outcome.FAILED else result.value
    return (result.outcome, result.source, result.rule, value, result.reason)


def to_publish(state: TagState, result: WriteResult, now: float) -> int | None:
    """Whether `result` is published: the count of repeats its event carries, or None when it
    is a repeat (counted in `state`) or no event at all (`unchanged`)."""
    if result.outcome is Outcome.UNCHANGED:  # not an event: nothing was attempted
        state.last_event = signature(result)
        return None
    if result.outcome in ALWAYS_PUBLISHED:
        state.last_event = None
    else:
        same_event = signature(result)
        summary_due = (
            result.outcome is Outcome.FAILED and now - state.published_at >= REPEAT_SUMMARY
        )
        if same_event == state.last_event and not summary_due:
            state.repeats += 1
            return None
        state.last_event = same_event
    repeats, state.repeats = state.repeats, 0
    state.published_at = now
    return repeats


def as_number(value: Value | OutputValue | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def same(a: Value | OutputValue | None, b: Value | OutputValue | None, tolerance: float) -> bool:
    """Equal for a read-back: bools exactly (0/1 count as false/true), numbers within the tag's
    tolerance or float32 precision."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is not None and b is not None and bool(a) == bool(b) and (
            isinstance(a, bool | int) and isinstance(b, bool | int)
        )
    x, y = as_number(a), as_number(b)
    if x is None or y is None:
        return False
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=max(tolerance, 1e-9))

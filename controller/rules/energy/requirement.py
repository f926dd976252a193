"""A load's requirement that a trim-and-respond reset must keep (a far-end pressure, a process
temperature), the requests it makes, and when it is endangered enough for the reset to act at
once instead of at the end of its period: shared by the compressed-air and chilled-water
resets."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import Field, model_validator

from controller.configtypes import Duration, StrictModel
from controller.model import Sample
from controller.rules.common import TagKey
from controller.rules.rule import number

# The rate of a requirement's variable is its slope over about this long: long enough to smooth
# a sensor's noise, short enough to see a step of load that began a minute ago.
RATE_WINDOW_S = 60.0


class OneSidedLimit(StrictModel):
    """A variable that must stay at least `min` or at most `max`: how far it is from that limit,
    and whether it is near enough for a rule to act (within a guard of it, or reaching it within
    `lead` at its present rate). A requirement of a reset and a process limit of a shed are
    both one."""

    tag: TagKey
    min: float | None = None
    max: float | None = None
    lead: Duration = 120.0

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min: or max:")
        return self

    def describe(self) -> str:
        return f"max {self.max:g}" if self.max is not None else f"min {self.min:g}"

    def headroom(self, value: float) -> float:
        """How far `value` is from the limit, on the safe side (negative: past it)."""
        if self.max is not None:
            return self.max - value
        assert self.min is not None
        return value - self.min

    def near(self, value: float, rate: float, guard: float) -> str | None:
        """Why `value` is too near its limit, or None: within `guard` of it, or reaching it
        within `lead` at `rate` (the variable's change per second)."""
        room = self.headroom(value)
        if room <= guard:
            return f"{self.tag} {value:g} within {guard:g} of its {self.describe()}"
        towards = rate if self.max is not None else -rate  # headroom lost per second
        if self.lead > 0 and towards > 0 and room / towards <= self.lead:
            return (
                f"{self.tag} {value:g} reaches its {self.describe()} in about"
                f" {room / towards:.0f} s"
            )
        return None


class Requirement(OneSidedLimit):
    """A load's need the reset must keep: `tag` at least `min` (a far-end pressure) or at
    most `max` (a process temperature, a valve position). Within `margin` of it the load makes
    one request; past it, two. With `guard`, the requirement is endangered when it is within
    `guard` of its limit, or when its present rate would take it to the limit within `lead`:
    the reset then acts at once (its fast path) instead of waiting for the end of its period."""

    margin: float = Field(default=0.0, ge=0)
    guard: float | None = Field(default=None, gt=0)

    def requests(self, value: float) -> int:
        if self.min is not None:
            return 2 if value < self.min else 1 if value < self.min + self.margin else 0
        if self.max is not None:
            return 2 if value > self.max else 1 if value > self.max - self.margin else 0
        return 0

    def violated(self, value: float) -> bool:
        return self.requests(value) == 2

    def endangered(self, value: float, rate: float) -> str | None:
        """Why the reset must act at once, or None (always None without a `guard`). `rate`:
        the variable's change per second."""
        return None if self.guard is None else self.near(value, rate, self.guard)


class Trend:
    """The recent values of a variable (seconds, value): its rate over `RATE_WINDOW_S`."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, float]] = deque()

    def clear(self) -> None:
        self.points.clear()

    def add(self, t: float, value: float) -> None:
        points = self.points
        if points and t <= points[-1][0]:
            return
        points.append((t, value))
        # keep one point at or before the window's start, as the slope's anchor
        while len(points) > 2 and points[1][0] <= t - RATE_WINDOW_S:
            points.popleft()

    @property
    def rate(self) -> float:
        if len(self.points) < 2:
            return 0.0
        (t0, v0), (t1, v1) = self.points[0], self.points[-1]
        return (v1 - v0) / (t1 - t0)


def count_requests(requirements: list[Requirement], snapshot: Mapping[str, Sample]) -> int:
    return sum(req.requests(number(snapshot, req.tag)) for req in requirements)


def first_endangered(
    requirements: Sequence[Any], trends: Sequence[Trend], snapshot: Mapping[str, Sample], t: float
) -> tuple[str | None, float]:
    """Feed each requirement's trend its present value; the first requirement endangered
    (why, and its `lead`), or (None, 0.0). Every trend is fed, endangered or not."""
    found: str | None = None
    lead = 0.0
    for req, trend in zip(requirements, trends, strict=True):
        value = number(snapshot, req.tag)
        trend.add(t, value)
        why = req.endangered(value, trend.rate)
        if why is not None and found is None:
            found, lead = why, req.lead
    return found, lead

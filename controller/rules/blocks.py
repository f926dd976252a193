"""The small signal blocks rules are built from: on/off with hysteresis, deadband, rate limiter,
and the errors every control block raises. Blocks are pure and synchronous: time comes in as an
argument (seconds of the injectable clock's `monotonic()`), never read by the block itself.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from controller.configtypes import StrictModel

# "direct": the output rises with the input (cooling, a fan on high temperature);
# "reverse": the output rises when the input falls (heating, a fill pump on low level).
Action = Literal["direct", "reverse"]


class BlockError(Exception):
    """A control block was driven in a way it cannot honour; the message says how."""


class InvalidInputError(BlockError, ValueError):
    """An input was NaN or infinite; bad samples must be filtered before they reach a block."""


class TimeWentBackwardsError(BlockError, ValueError):
    """A block was given a time earlier than one it has already seen."""


class NoSampleError(BlockError):
    """A block was asked for its output before it had any input to compute it from."""


def require_finite(name: str, value: float) -> float:
    """`value` unchanged, or `InvalidInputError` naming the input when it is NaN or infinite."""
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return value


def require_forward(name: str, now: float, last: float | None) -> None:
    """Refuse a time earlier than the last one the block saw (equal is allowed: dt == 0)."""
    if last is not None and now < last:
        raise TimeWentBackwardsError(f"{name}: time went backwards from {last!r} to {now!r}")


class HysteresisConfig(StrictModel):
    """Two thresholds: the output switches at one and switches back only at the other."""

    high: float
    low: float
    action: Action = "direct"
    initial: bool = False

    @model_validator(mode="after")
    def _low_below_high(self) -> HysteresisConfig:
        if not self.low < self.high:
            raise ValueError(
                f"low ({self.low}) must be below high ({self.high}): equal thresholds chatter"
            )
        return self


class Hysteresis:
    """On/off from a measurement with two thresholds.

    Direct action: on when the input reaches `high`, off when it falls to `low`. Reverse action:
    on when it falls to `low`, off when it reaches `high`. Between the two the output holds.
    """

    def __init__(self, config: HysteresisConfig) -> None:
        self.config = config
        self.output = config.initial

    def update(self, value: float) -> bool:
        require_finite("hysteresis input", value)
        if value >= self.config.high:
            self.output = self.config.action == "direct"
        elif value <= self.config.low:
            self.output = self.config.action == "reverse"
        return self.output


class DeadbandConfig(StrictModel):
    """How far the input must move before the output follows it."""

    band: float = Field(gt=0)


class Deadband:
    """Holds its output until the input has moved more than `band` away from it, then jumps to
    the input. Keeps small measurement noise from turning into a stream of new setpoints."""

    def __init__(self, config: DeadbandConfig) -> None:
        self.config = config
        self._output: float | None = None

    @property
    def output(self) -> float:
        if self._output is None:
            raise NoSampleError("deadband has had no input yet")
        return self._output

    def update(self, value: float) -> float:
        require_finite("deadband input", value)
        if self._output is None or abs(value - self._output) > self.config.band:
            self._output = value
        return self._output


class RateLimiterConfig(StrictModel):
    """How fast the output may move: per second of time, per update, or both."""

    max_rate_per_s: float | None = Field(default=None, gt=0)
    max_step: float | None = Field(default=None, gt=0)
    limit: Literal["both", "up", "down"] = "both"

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimiterConfig:
        if self.max_rate_per_s is None and self.max_step is None:
            raise ValueError("a rate limiter needs max_rate_per_s, max_step or both")
        return self


class RateLimiter:
    """Moves its output towards the target no faster than the configured rate and step.

    `limit: up` limits rises only (a load comes back slowly after a shed but can drop at once);
    `limit: down` the opposite. The first update passes its target through unless `reset` set a
    starting value (use the device's present setpoint so the first move is limited too).
    """

    def __init__(self, config: RateLimiterConfig) -> None:
        self.config = config
        self._output: float | None = None
        self._time: float | None = None

    @property
    def output(self) -> float:
        if self._output is None:
            raise NoSampleError("rate limiter has had no input yet")
        return self._output

    def reset(self, now: float, value: float) -> None:
        """Start (again) from `value` at time `now`, e.g. the value the device holds now."""
        self._output = require_finite("rate limiter value", value)
        self._time = now

    def update(self, now: float, target: float) -> float:
        require_finite("rate limiter target", target)
        require_forward("rate limiter", now, self._time)
        if self._output is None or self._time is None:
            self.reset(now, target)
            return target
        allowed = math.inf
        if self.config.max_step is not None:
            allowed = self.config.max_step
        if self.config.max_rate_per_s is not None:
            allowed = min(allowed, self.config.max_rate_per_s * (now - self._time))
        change = target - self._output
        if change > allowed and self.config.limit != "down":
            self._output += allowed
        elif change < -allowed and self.config.limit != "up":
            self._output -= allowed
        else:
            self._output = target
        self._time = now
        return self._output

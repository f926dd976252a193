"""Trim and respond (ASHRAE Guideline 36, section 5.1.14): a setpoint reset that creeps towards
the cheap end by a small trim every period and steps back by a response for each request from
the loads it serves. It finds the lowest pressure (or warmest water) that still satisfies the
most demanding load without a model of the plant.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from controller.configtypes import Duration, PositiveDuration, StrictModel
from controller.rules.blocks import NoSampleError, require_finite, require_forward


class TrimRespondConfig(StrictModel):
    """G36 names in brackets. `trim` and `respond` have opposite signs: a pressure setpoint
    trims down (negative) and responds up; a chilled-water setpoint trims up and responds down.
    """

    min: float  # [SPmin]
    max: float  # [SPmax]
    initial: float | None = None  # [SP0]: the start when the output's present value is unknown
    delay: Duration = 0.0  # [Td]: hold after a (re)start before the first trim
    period: PositiveDuration = 120.0  # [T]
    ignored_requests: int = Field(default=0, ge=0)  # [I]
    trim: float  # [SPtrim]
    respond: float  # [SPres], per request beyond the ignored ones
    max_response: float  # [SPres-max]

    @model_validator(mode="after")
    def _consistent(self) -> TrimRespondConfig:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        if self.trim == 0 or self.respond == 0 or (self.trim > 0) == (self.respond > 0):
            raise ValueError("trim and respond must be non-zero and of opposite signs")
        if (self.max_response > 0) != (self.respond > 0) or abs(self.max_response) < abs(
            self.respond
        ):
            raise ValueError("max_response must have the sign of respond and be at least as large")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError(f"initial ({self.initial:g}) must lie within min and max")
        return self


class TrimRespond:
    """One trim-and-respond reset. Call `update(now, requests)` every cycle with the number of
    requests the loads make now; every `period` the setpoint moves by the trim (when the most
    requests seen in the period were no more than the ignored ones) or by the response
    ((requests - ignored) * respond, at most max_response), within [min, max]."""

    def __init__(self, config: TrimRespondConfig) -> None:
        self.config = config
        self._value: float | None = None
        self._period_start: float | None = None
        self._hold_until = 0.0
        self._requests = 0
        self.last_requests = 0
        self.last_step = 0.0

    @property
    def value(self) -> float:
        if self._value is None:
            raise NoSampleError("trim and respond has not been started")
        return self._value

    @property
    def started(self) -> bool:
        return self._value is not None

    def reset(self, now: float, value: float | None = None) -> None:
        """(Re)start from `value` (the output's present value, clamped to the limits), else from
        `initial`, else from max for a downward trim and min for an upward one (the safe end)."""
        cfg = self.config
        if value is None:
            value = cfg.initial
        if value is None:
            value = cfg.max if cfg.trim < 0 else cfg.min
        require_finite("trim and respond start", value)
        self._value = min(cfg.max, max(cfg.min, value))
        self._hold_until = now + cfg.delay
        self._period_start = now
        self._requests = 0
        self.last_step = 0.0

    def move_to(self, now: float, value: float) -> None:
        """Put the setpoint at `value` (within the limits) at once, outside the periods: a new
        period starts now, without the start's hold."""
        if self._value is None:
            self.reset(now, value)
            return
        cfg = self.config
        require_finite("trim and respond setpoint", value)
        moved = min(cfg.max, max(cfg.min, value))
        self.last_step = moved - self._value
        self._value = moved
        self._period_start = now
        self._requests = 0

    def update(self, now: float, requests: int) -> float:
        """The setpoint now."""
        if self._value is None or self._period_start is None:
            self.reset(now)
        value = self.value
        start = now if self._period_start is None else self._period_start
        require_forward("trim and respond", now, start)
        cfg = self.config
        self._requests = max(self._requests, requests)
        if now < self._hold_until:
            self._period_start = now
            self._requests = max(0, requests)
            return value
        if now - start >= cfg.period:
            beyond = self._requests - cfg.ignored_requests
            if beyond <= 0:
                step = cfg.trim
            else:
                step = beyond * cfg.respond
                step = max(step, cfg.max_response) if step < 0 else min(step, cfg.max_response)
            value = self._value = min(cfg.max, max(cfg.min, value + step))
            self.last_step = step
            self.last_requests = self._requests
            self._period_start = now
            self._requests = max(0, requests)
        return value

"""A PID controller for closed loops on real machines: clamped output, anti-windup, derivative on
the measurement, bumpless transfer from manual, and sane behaviour when updates stall.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from controller.configtypes import Duration, PositiveDuration, StrictModel
from controller.rules.blocks import Action, require_finite, require_forward


class PIDConfig(StrictModel):
    """Tuning in the standard (ISA) form: output = kp * (e + 1/ti * integral(e) + td * de/dt)."""

    kp: float = Field(gt=0, description="output units per unit of error")
    ti: PositiveDuration | None = Field(default=None, description="integral time; none: P(D) only")
    td: Duration = Field(default=0.0, description="derivative time; 0s: no derivative")
    derivative_filter: Duration = Field(
        default=0.0, description="time constant of the first-order filter on the derivative"
    )
    action: Action = "reverse"
    out_min: float = 0.0
    out_max: float = 100.0
    bias: float = Field(default=0.0, description="output with zero error and empty integrator")
    setpoint_weight: float = Field(
        default=1.0, ge=0, le=1, description="share of the setpoint in the P term; 0: P on PV"
    )
    max_interval: PositiveDuration = Field(
        default=10.0, description="longer gaps between updates are a stall, not integrated"
    )

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> PIDConfig:
        if not self.out_min < self.out_max:
            raise ValueError(f"out_min ({self.out_min}) must be below out_max ({self.out_max})")
        return self


class PID:
    """One PID loop. Call `update` once per cycle in auto, `track` once per cycle in manual.

    Anti-windup is conditional integration: the integrator only moves while that does not push
    the output further past a limit, and a step that would carry it past the limit stops at the
    limit. It needs no extra tuning constant (back-calculation needs a tracking time) and stays
    well-behaved with irregular or long cycle times, where back-calculation over-corrects.

    Error sign: reverse action (the default, e.g. heating) uses e = SP - PV, so the output rises
    when the measurement is below the setpoint; direct action (e.g. cooling) uses e = PV - SP.
    """

    def __init__(self, config: PIDConfig) -> None:
        self.config = config
        self._sign = 1.0 if config.action == "reverse" else -1.0
        self.integral = 0.0
        self.derivative = 0.0
        self.output = config.bias
        self.stalls = 0
        self._time: float | None = None
        self._measurement: float | None = None

    def reset(self) -> None:
        """Forget all history: empty integrator, no derivative, next update starts afresh."""
        self.integral = 0.0
        self.derivative = 0.0
        self.output = self.config.bias
        self._time = None
        self._measurement = None

    def update(self, now: float, setpoint: float, measurement: float) -> float:
        """Auto: the new output, clamped to [out_min, out_max]."""
        proportional, dt = self._advance(now, setpoint, measurement)
        cfg = self.config
        if dt > 0 and cfg.ti is not None:
            error = self._sign * (setpoint - measurement)
            step = cfg.kp / cfg.ti * error * dt
            before = proportional + self.derivative + cfg.bias
            if step > 0:
                room = cfg.out_max - before
                self.integral = max(self.integral, min(self.integral + step, room))
            elif step < 0:
                room = cfg.out_min - before
                self.integral = min(self.integral, max(self.integral + step, room))
        unclamped = proportional + self.integral + self.derivative + cfg.bias
        self.output = min(cfg.out_max, max(cfg.out_min, unclamped))
        return self.output

    def track(self, now: float, output: float, setpoint: float, measurement: float) -> None:
        """Manual (or the applied output differs from ours): the integrator follows `output` so
        the first `update` in auto starts from it, without a bump."""
        require_finite("PID tracked output", output)
        proportional, _ = self._advance(now, setpoint, measurement)
        self.integral = output - proportional - self.derivative - self.config.bias
        self.output = output

    def _advance(self, now: float, setpoint: float, measurement: float) -> tuple[float, float]:
        """Move time and the derivative forward; return the P term and the dt to integrate over
        (0 on the first update, on repeated times and after a stall)."""
        require_finite("PID setpoint", setpoint)
        require_finite("PID measurement", measurement)
        require_forward("PID", now, self._time)
        cfg = self.config
        # With a weight below 1 a setpoint step kicks the output less; the integrator takes up
        # the P term's remaining offset at steady state.
        proportional = self._sign * cfg.kp * (cfg.setpoint_weight * setpoint - measurement)
        dt = 0.0 if self._time is None else now - self._time
        if self._time is None or self._measurement is None or dt > cfg.max_interval:
            # First update, or a stall: the derivative restarts and the gap is not integrated.
            if self._time is not None:
                self.stalls += 1
            self.derivative = 0.0
            self._measurement = measurement
            self._time = now
            return proportional, 0.0
        if dt == 0:
            # Same instant: P follows new inputs at once, integrator and derivative wait for time.
            return proportional, 0.0
        if cfg.td > 0:
            change = measurement - self._measurement
            kick = self._sign * cfg.kp * cfg.td * change
            tf = cfg.derivative_filter
            # Backward Euler of tf * dD/dt + D = -sign * kp * td * dPV/dt; stable for any dt.
            self.derivative = (tf * self.derivative - kick) / (tf + dt)
        self._measurement = measurement
        self._time = now
        return proportional, dt

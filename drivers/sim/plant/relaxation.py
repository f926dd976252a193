"""First-order quantities solved exactly, dx/dt = a - b x: where a receiver's pressure or a
tank's temperature is after h seconds, and when it reaches a switch point (so a thermostat or a
load/unload control switches inside a step, whatever the step size)."""

from __future__ import annotations

import math


def advance(x: float, a: float, b: float, h: float) -> float:
    """x after h seconds of dx/dt = a - b x."""
    if b == 0:
        return x + a * h
    x_inf = a / b
    return x_inf + (x - x_inf) * math.exp(-b * h)


def time_to_reach(x: float, a: float, b: float, target: float) -> float | None:
    """Seconds until dx/dt = a - b x takes x to target, or None if it never does."""
    if b == 0:
        if a == 0:
            return None
        t = (target - x) / a
        return t if t >= 0 else None
    x_inf = a / b
    if (target - x_inf) * (x - x_inf) <= 0 or abs(x - x_inf) < abs(target - x_inf):
        return None  # the target is beyond the asymptote or behind us
    return max(0.0, -math.log((target - x_inf) / (x - x_inf)) / b)

"""The outdoor air the cell lives in: a daily dry-bulb curve with slow weather noise, and the wet
bulb the cooling tower works against (Stull 2011)."""

from __future__ import annotations

import math
import random
from datetime import datetime

from drivers.sim.plant.noise import Disturbance
from drivers.sim.scenario import AmbientSpec, seconds_of_day


def wet_bulb_c(dry_bulb_c: float, relative_humidity: float) -> float:
    """Wet-bulb temperature at sea-level pressure, Stull (2011), J. Appl. Meteor. Climatol. 50,
    2267-2269; within 1 K for RH 5-99 % and -20..50 degC."""
    rh = relative_humidity * 100.0
    t = dry_bulb_c
    return float(
        t * math.atan(0.151977 * math.sqrt(rh + 8.313659))
        + math.atan(t + rh)
        - math.atan(rh - 1.676331)
        + 0.00391838 * rh**1.5 * math.atan(0.023101 * rh)
        - 4.686035
    )


class Ambient:
    def __init__(self, spec: AmbientSpec, rng: random.Random) -> None:
        self.spec = spec
        self._weather = Disturbance(rng, spec.noise_c, tau=3600.0)
        self.dry_bulb_c = spec.min_c
        self.wet_bulb_c = spec.min_c

    def curve_c(self, now: datetime) -> float:
        """The noiseless daily curve."""
        hour = seconds_of_day(now.time()) / 3600.0
        mid = (self.spec.min_c + self.spec.max_c) / 2
        amplitude = (self.spec.max_c - self.spec.min_c) / 2
        return mid + amplitude * math.cos(2 * math.pi * (hour - self.spec.peak_hour) / 24)

    def step(self, now: datetime, dt: float) -> None:
        self.dry_bulb_c = self.curve_c(now) + self._weather.step(dt)
        self.wet_bulb_c = wet_bulb_c(self.dry_bulb_c, self.spec.relative_humidity)

"""The site's main electricity meter: every load of the plant summed into phase voltages,
currents, powers, power factor, frequency, import and export kWh registers and a rolling demand.
PV and a discharging battery enter as negative loads; the net may flow out (export)."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from drivers.sim.plant.noise import Disturbance
from drivers.sim.scenario import SiteMeterSpec


@dataclass(frozen=True)
class Load:
    """One consumer's mean power over a step (negative for a source behind the meter)."""

    name: str
    kw: float
    power_factor: float

    @property
    def kvar(self) -> float:
        return self.kw * math.tan(math.acos(self.power_factor))


class RollingDemand:
    """Mean power over the last `window` seconds, as a sliding-window demand meter shows it.
    Before a full window has passed it averages over the time elapsed."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._steps: deque[tuple[float, float]] = deque()  # (dt, kWh)
        self._seconds = 0.0
        self._kwh = 0.0

    def add(self, dt: float, kwh: float) -> None:
        self._steps.append((dt, kwh))
        self._seconds += dt
        self._kwh += kwh
        while self._steps and self._seconds - self._steps[0][0] >= self.window:
            old_dt, old_kwh = self._steps.popleft()
            self._seconds -= old_dt
            self._kwh -= old_kwh

    @property
    def kw(self) -> float:
        if self._seconds <= 0:
            return 0.0
        # The oldest step may straddle the window's start: count only its share inside.
        seconds, kwh = self._seconds, self._kwh
        if seconds > self.window and self._steps:
            old_dt, old_kwh = self._steps[0]
            outside = seconds - self.window
            kwh -= old_kwh * outside / old_dt
            seconds = self.window
        return max(0.0, kwh / (seconds / 3600.0))


class BillingDemand:
    """The utility's billed demand: the highest average power over clock-aligned windows of
    `window` seconds (a 15-min window starts at :00, :15, :30, :45 of the site's clock), each
    window's energy over its full length. `offset_s`: where the plant's time 0 falls in the
    window grid (the scenario's start, seconds after local midnight). A step that straddles a
    window boundary is split between the two windows in proportion."""

    def __init__(self, window: float, offset_s: float) -> None:
        self.window = window
        self._elapsed = offset_s
        self._index = math.floor(offset_s / window)
        self._kwh = 0.0
        self.max_kw = 0.0

    @property
    def window_start_s(self) -> float:
        """The present window's start, seconds after local midnight of the first day."""
        return self._index * self.window

    @property
    def kw(self) -> float:
        """The present window's demand so far: its energy over the full window."""
        return self._kwh * 3600.0 / self.window

    def add(self, dt: float, kwh: float) -> None:
        end = self._elapsed + dt
        while dt > 0:
            boundary = (self._index + 1) * self.window
            if end < boundary:
                self._kwh += kwh
                break
            part = (boundary - self._elapsed) / dt
            self._kwh += kwh * part
            self.max_kw = max(self.max_kw, self.kw)
            kwh -= kwh * part
            dt -= boundary - self._elapsed
            self._elapsed = boundary
            self._index += 1
            self._kwh = 0.0
        self._elapsed = end
        self.max_kw = max(self.max_kw, self.kw)


class SlidingBillingDemand:
    """A tariff that bills the highest rolling average (`window` seconds) instead."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._rolling = RollingDemand(window)
        self.max_kw = 0.0

    @property
    def kw(self) -> float:
        return self._rolling.kw

    def add(self, dt: float, kwh: float) -> None:
        self._rolling.add(dt, kwh)
        self.max_kw = max(self.max_kw, self._rolling.kw)


def billing_demand(
    window: float, alignment: str, offset_s: float
) -> BillingDemand | SlidingBillingDemand:
    """The tariff's billed demand: clock-aligned (`fixed`) or rolling (`sliding`) windows."""
    if alignment == "sliding":
        return SlidingBillingDemand(window)
    return BillingDemand(window, offset_s)


class SiteMeter:
    def __init__(self, spec: SiteMeterSpec, rng: random.Random) -> None:
        self.spec = spec
        self.import_kwh = spec.initial_import_kwh
        self.export_kwh = 0.0
        self.demand = RollingDemand(spec.demand_window)
        self.max_demand_kw = 0.0
        self._voltage_noise = [Disturbance(rng, spec.voltage_noise, tau=300.0) for _ in range(3)]
        self._frequency_noise = Disturbance(rng, spec.frequency_noise_hz, tau=60.0)
        self.active_kw = 0.0
        self.reactive_kvar = 0.0
        self.apparent_kva = 0.0
        self.power_factor = 1.0
        self.frequency_hz = spec.frequency_hz
        self.last_export_kwh = 0.0
        self.phase_kw = [0.0, 0.0, 0.0]
        self.phase_kvar = [0.0, 0.0, 0.0]
        self.voltage_v = [spec.nominal_voltage_v] * 3
        self.current_a = [0.0, 0.0, 0.0]

    def step(self, dt: float, loads: list[Load]) -> float:
        """Integrate the loads over the step; returns the kWh imported (`last_export_kwh` holds
        what flowed out). Demand counts import only, as a utility's demand register does."""
        spec = self.spec
        active = sum(load.kw for load in loads)
        reactive = sum(load.kvar for load in loads)
        net_kwh = active * dt / 3600.0
        kwh = max(0.0, net_kwh)
        self.last_export_kwh = max(0.0, -net_kwh)
        self.import_kwh += kwh
        self.export_kwh += self.last_export_kwh
        self.demand.add(dt, kwh)
        self.max_demand_kw = max(self.max_demand_kw, self.demand.kw)
        self.active_kw = active
        self.reactive_kvar = reactive
        self.apparent_kva = math.hypot(active, reactive)
        self.power_factor = active / self.apparent_kva if self.apparent_kva > 0 else 1.0
        self.frequency_hz = spec.frequency_hz + self._frequency_noise.step(dt)
        for i, share in enumerate(spec.phase_shares):
            p, q = active * share, reactive * share
            source = spec.nominal_voltage_v * (1.0 + self._voltage_noise[i].step(dt))
            current = math.hypot(p, q) * 1000.0 / source
            # Drop across the source impedance, treated as resistive (worst case for voltage).
            self.voltage_v[i] = source - current * spec.source_impedance_ohm
            self.current_a[i] = math.hypot(p, q) * 1000.0 / self.voltage_v[i]
            self.phase_kw[i] = p
            self.phase_kvar[i] = q
        return kwh

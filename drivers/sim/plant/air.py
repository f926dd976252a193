"""Compressed air: one load/unload rotary screw compressor on a receiver, machine demand, leaks
that flow like orifices (so they grow with pressure) and the pressure at the far end of the
distribution. Integrated exactly between load/unload switch points, so steps of a few seconds
lose no cycles."""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.sim.plant.relaxation import advance, time_to_reach
from drivers.sim.scenario import CompressedAirSpec

P_ATM_BAR = 1.01325
_AIR_R = 287.05  # J/(kg K)
_KAPPA = 1.4
_INLET_K = 293.15
_FREE_AIR_DENSITY = 1.204  # kg/m3 at 20 degC, 1.01325 bar
# Choked-flow factor of an ideal orifice: sqrt(k/(R T)) * (2/(k+1))^((k+1)/(2(k-1)))
_CHOKED = math.sqrt(_KAPPA / (_AIR_R * _INLET_K)) * (2 / (_KAPPA + 1)) ** (
    (_KAPPA + 1) / (2 * (_KAPPA - 1))
)


def orifice_free_air_m3_min_per_bar_abs(diameter_mm: float, discharge_coefficient: float) -> float:
    """Free air through a choked orifice per bar of upstream absolute pressure (m3/min/bar).
    1/8 in (3.2 mm) at 100 psig with Cd 1 gives ~26 cfm, as in the CAC leak table."""
    area = math.pi / 4 * (diameter_mm / 1000) ** 2
    kg_s_per_pa = discharge_coefficient * area * _CHOKED
    return float(kg_s_per_pa * 1e5 / _FREE_AIR_DENSITY * 60)


@dataclass
class AirStep:
    energy_kwh: float
    loaded_s: float
    delivered_m3: float  # free air
    demand_m3: float
    leak_m3: float


class CompressedAir:
    def __init__(self, spec: CompressedAirSpec) -> None:
        self.spec = spec
        self.setpoint_bar = spec.setpoint_bar.default
        self.pressure_bar = spec.setpoint_bar.default - spec.pressure_band_bar / 2
        self.loaded = False
        # Base leaks: leak_fraction of rated flow at rated pressure, proportional to p_abs.
        self.base_leak_k = (
            spec.leak_fraction * spec.rated_flow_m3_min / (spec.rated_pressure_bar + P_ATM_BAR)
        )
        self.extra_leak_k = 0.0  # injected leaks, m3/min per bar abs
        self.demand_m3_min = 0.0
        self.power_kw = 0.0
        self.consumption_m3_min = 0.0
        self.far_end_bar = self.pressure_bar

    @property
    def leak_k(self) -> float:
        return self.base_leak_k + self.extra_leak_k

    def loaded_power_kw(self, pressure_bar: float) -> float:
        """Full-load input power at a discharge pressure (DOE: ~1 % per 2 psi)."""
        spec = self.spec
        return spec.full_load_kw * (
            1.0 + spec.power_increase_per_bar * (pressure_bar - spec.rated_pressure_bar)
        )

    @property
    def unloaded_power_kw(self) -> float:
        return self.spec.full_load_kw * self.spec.unloaded_fraction

    def leak_m3_min(self, pressure_bar: float) -> float:
        return self.leak_k * (pressure_bar + P_ATM_BAR)

    def step(self, dt: float, demand_m3_min: float) -> AirStep:
        spec = self.spec
        self.demand_m3_min = demand_m3_min
        unload_at = self.setpoint_bar
        load_at = self.setpoint_bar - spec.pressure_band_bar
        # dp/dt = g * (inflow - demand - k (p + p_atm)) with g in bar per m3 of free air per second
        g = P_ATM_BAR / (spec.receiver_m3 * 60.0)
        b = g * self.leak_k
        energy_kws = 0.0
        loaded_s = 0.0
        leak = 0.0
        remaining = dt
        p = self.pressure_bar
        for _ in range(10_000):  # switch points per step; a guard, never reached
            if remaining <= 0:
                break
            # Switch state at the thresholds before integrating (hysteresis of the PLC).
            if self.loaded and p >= unload_at:
                self.loaded = False
            elif not self.loaded and p <= load_at:
                self.loaded = True
            inflow = spec.rated_flow_m3_min if self.loaded else 0.0
            a = g * (inflow - demand_m3_min - self.leak_k * P_ATM_BAR)
            target = unload_at if self.loaded else load_at
            t_switch = time_to_reach(p, a, b, target)
            switches = t_switch is not None and t_switch <= remaining
            h = t_switch if switches and t_switch is not None else remaining
            p_end = target if switches else advance(p, a, b, h)
            leak += _leak_integral(p, a, b, h, self.leak_k)
            if self.loaded:
                energy_kws += self.loaded_power_kw((p + p_end) / 2) * h
                loaded_s += h
            else:
                energy_kws += self.unloaded_power_kw * h
            p = p_end
            remaining -= h
            if switches:
                self.loaded = not self.loaded
        self.pressure_bar = p
        self.power_kw = energy_kws / dt if dt > 0 else 0.0
        self.consumption_m3_min = demand_m3_min + self.leak_m3_min(p)
        drop = spec.distribution_drop_bar * (self.consumption_m3_min / spec.rated_flow_m3_min) ** 2
        self.far_end_bar = p - drop
        return AirStep(
            energy_kwh=energy_kws / 3600.0,
            loaded_s=loaded_s,
            delivered_m3=spec.rated_flow_m3_min * loaded_s / 60.0,
            demand_m3=demand_m3_min * dt / 60.0,
            leak_m3=leak,
        )


def _leak_integral(p: float, a: float, b: float, h: float, k: float) -> float:
    """Free air (m3) leaked over h seconds: integral of k (p(t) + p_atm) dt / 60."""
    if h <= 0:
        return 0.0
    if b == 0:
        mean_p = p + a * h / 2
    else:
        p_inf = a / b
        mean_p = p_inf + (p - p_inf) * (1 - math.exp(-b * h)) / (b * h)
    return k * (mean_p + P_ATM_BAR) * h / 60.0

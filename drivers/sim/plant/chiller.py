"""Chilled water: a water-cooled chiller holding its supply setpoint against the process heat
and ambient gains, with a COP that follows a fixed fraction of the Carnot COP between its
evaporating and condensing temperatures (so it rises with the supply setpoint)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.sim.scenario import ChilledWaterSpec

CP_WATER = 4.186  # kJ/(kg K)
RHO_WATER = 1000.0  # kg/m3
_KELVIN = 273.15
_MAX_SUBSTEP_S = 10.0


def chiller_cop(
    spec: ChilledWaterSpec, supply_c: float, condenser_water_in_c: float, load_fraction: float
) -> float:
    """COP = carnot_fraction * T_evap / (T_cond - T_evap), temperatures in kelvin.

    T_evap sits `evaporator_approach_k` below the chilled water leaving the chiller; T_cond sits
    `condenser_approach_k` above the condenser water leaving it, which is the tower water plus
    the condenser range at this load."""
    t_evap = supply_c - spec.evaporator_approach_k + _KELVIN
    condenser_out = condenser_water_in_c + spec.condenser_range_k * max(
        0.0, min(1.0, load_fraction)
    )
    t_cond = condenser_out + spec.condenser_approach_k + _KELVIN
    lift = t_cond - t_evap
    if lift <= 0:
        return spec.max_cop
    return min(spec.max_cop, spec.carnot_fraction * t_evap / lift)


@dataclass
class ChillerStep:
    cooling_kwh: float  # heat taken from the loop
    energy_kwh: float  # electricity of the chiller (compressor and controls)
    heat_rejected_kwh: float  # to the cooling tower


class ChilledWater:
    def __init__(self, spec: ChilledWaterSpec) -> None:
        self.spec = spec
        self.setpoint_c = spec.supply_setpoint_c.default
        self.return_c = spec.supply_setpoint_c.default
        self.supply_c = spec.supply_setpoint_c.default
        self.load_kw = 0.0  # heat arriving at the loop
        self.cooling_kw = 0.0
        self.power_kw = 0.0
        self.cop = 0.0
        self.running = True
        self._flow_kg_s = spec.loop_flow_m3_h * RHO_WATER / 3600.0
        self._mass_kg = spec.loop_volume_m3 * RHO_WATER

    def step(
        self,
        dt: float,
        heat_kw: float,
        ambient_c: float,
        condenser_water_in_c: float,
        running: bool,
    ) -> ChillerStep:
        spec = self.spec
        self.running = running
        substeps = max(1, math.ceil(dt / _MAX_SUBSTEP_S))
        h = dt / substeps
        cooling_kws = 0.0
        energy_kws = 0.0
        for _ in range(substeps):
            gain = spec.ambient_gain_kw_per_k * (ambient_c - self.return_c)
            load = heat_kw + gain
            if running:
                cooling = self._flow_kg_s * CP_WATER * (self.return_c - self.setpoint_c)
                cooling = max(0.0, min(spec.capacity_kw, cooling))
            else:
                cooling = 0.0
            self.return_c += (load - cooling) * h / (self._mass_kg * CP_WATER)
            cooling_kws += cooling * h
            if running:
                self.cop = chiller_cop(
                    spec,
                    self.return_c - cooling / (self._flow_kg_s * CP_WATER),
                    condenser_water_in_c,
                    cooling / spec.capacity_kw,
                )
                energy_kws += (cooling / self.cop + spec.standby_kw) * h
            self.load_kw = load
        self.cooling_kw = cooling_kws / dt if dt > 0 else 0.0
        self.power_kw = energy_kws / dt if dt > 0 else 0.0
        self.supply_c = self.return_c - self.cooling_kw / (self._flow_kg_s * CP_WATER)
        if not running:
            self.cop = 0.0
        return ChillerStep(
            cooling_kwh=cooling_kws / 3600.0,
            energy_kwh=energy_kws / 3600.0,
            heat_rejected_kwh=(cooling_kws + energy_kws) / 3600.0 if running else 0.0,
        )

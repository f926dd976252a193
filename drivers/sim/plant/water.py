"""Water: the cooling tower's mass and dissolved-solids balance (evaporation, drift, blowdown,
makeup, cycles of concentration) and a rinse line diluting drag-out with fresh water."""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.sim.plant.chiller import CP_WATER
from drivers.sim.plant.plc import Setpoint
from drivers.sim.scenario import CoolingTowerSpec, RinseSpec


def condenser_water_c(spec: CoolingTowerSpec, wet_bulb_c: float) -> float:
    """Water the tower sends to the chiller's condenser: wet bulb plus the approach, held at
    or above the minimum the chiller accepts (the fan slows down on cool days)."""
    return max(wet_bulb_c + spec.approach_k, spec.min_supply_c)


@dataclass
class TowerStep:
    evaporation_m3: float
    drift_m3: float
    blowdown_m3: float
    leak_m3: float
    makeup_m3: float
    fan_kwh: float
    pump_kwh: float


class CoolingTower:
    """Level control keeps the system volume: makeup = evaporation + drift + blowdown + leaks.
    Solids enter with the makeup and leave with everything but the evaporation."""

    def __init__(self, spec: CoolingTowerSpec, blowdown: Setpoint) -> None:
        self.spec = spec
        self.blowdown = blowdown  # percent open; None: the PLC's conductivity control
        self.conductivity = spec.initial_conductivity_us_cm
        self.valve_pct = 0.0
        self.leak_m3_h = 0.0
        self.supply_c = 20.0  # water to the chiller condenser
        self.heat_kw = 0.0
        self.evaporation_m3_h = 0.0
        self.blowdown_m3_h = 0.0
        self.makeup_m3_h = 0.0
        self.fan_kw = 0.0
        self.pump_kw = 0.0

    def _valve_opening(self) -> float:
        if self.blowdown.value is not None:
            return self.blowdown.value
        spec = self.spec
        if self.conductivity >= spec.local_conductivity_setpoint_us_cm:
            return 100.0
        if (
            self.conductivity
            <= spec.local_conductivity_setpoint_us_cm - spec.local_hysteresis_us_cm
        ):
            return 0.0
        return self.valve_pct  # inside the hysteresis band: keep

    def step(self, dt: float, heat_kw: float, wet_bulb_c: float, running: bool) -> TowerStep:
        spec = self.spec
        hours = dt / 3600.0
        self.heat_kw = heat_kw
        self.supply_c = condenser_water_c(spec, wet_bulb_c)
        # Evaporation carries the latent share of the heat away (CTI / FEMP rule: ~0.1 % of the
        # circulation per degF of range, i.e. 85 % of the heat as latent heat).
        evaporation = spec.latent_fraction * heat_kw / spec.latent_heat_kj_kg * 3.6  # m3/h
        circulation = (
            spec.design_heat_kw / (CP_WATER * spec.range_k) * 3.6 if running else 0.0
        )  # m3/h
        drift = spec.drift_fraction * circulation
        self.valve_pct = self._valve_opening()
        blowdown = self.valve_pct / 100.0 * spec.blowdown_max_m3_h
        leak = self.leak_m3_h
        makeup = evaporation + drift + blowdown + leak
        # V dC/dt = makeup * C_mu - (drift + blowdown + leak) * C
        out = drift + blowdown + leak
        volume = spec.system_volume_m3
        if out > 0:
            c_eq = makeup * spec.makeup_conductivity_us_cm / out
            self.conductivity = c_eq + (self.conductivity - c_eq) * math.exp(-out * hours / volume)
        else:
            self.conductivity += makeup * spec.makeup_conductivity_us_cm * hours / volume
        load = min(1.5, heat_kw / spec.design_heat_kw) if running else 0.0
        self.fan_kw = spec.fan_kw * load**3  # fan affinity law on a VFD
        self.pump_kw = spec.condenser_pump_kw if running else 0.0
        self.evaporation_m3_h = evaporation
        self.blowdown_m3_h = blowdown
        self.makeup_m3_h = makeup
        return TowerStep(
            evaporation_m3=evaporation * hours,
            drift_m3=drift * hours,
            blowdown_m3=blowdown * hours,
            leak_m3=leak * hours,
            makeup_m3=makeup * hours,
            fan_kwh=self.fan_kw * hours,
            pump_kwh=self.pump_kw * hours,
        )


# Conductivity to ion equivalents: a water's cation (or anion) sum in meq/L times 100 is about
# its conductivity in uS/cm (Standard Methods for the Examination of Water and Wastewater, 1030 E,
# the check of an analysis). So 1 uS/cm in 1 m3 is 0.01 meq/L * 1000 L = 10 meq = 0.01 eq.
EQ_PER_US_CM_M3 = 0.01


@dataclass
class RinseStep:
    fresh_m3: float  # through the fresh water valve
    regeneration_m3: float  # drawn by the ion exchanger's regeneration
    pump_kwh: float


class RinseLine:
    """A rinse tank after a process bath: parts drag bath solution in, fresh water dilutes it and
    overflows, a recirculation loop through ion exchange removes solids. Conductivity stands in
    for dissolved solids (proportional at these dilutions).

    The exchanger is not free: the ions it removes load its resin (`EQ_PER_US_CM_M3`), and at
    `ix_capacity_eq` it is exhausted and regenerates for `ix_regeneration_h`, drawing
    `ix_regeneration_m3` of mains water evenly over that time; while it regenerates the loop
    removes nothing. The rinse station's water meter (`supply_m3_h`) is upstream of the fresh
    valve and the regeneration line, so it counts both."""

    def __init__(self, spec: RinseSpec, fresh: Setpoint, recirc: Setpoint) -> None:
        self.spec = spec
        self.fresh = fresh
        self.recirc = recirc
        self.conductivity = spec.initial_conductivity_us_cm
        self.fresh_m3_h = 0.0
        self.recirc_m3_h = 0.0
        self.regeneration_m3_h = 0.0
        self.pump_kw = 0.0
        self.ix_load_eq = spec.ix_initial_load * spec.ix_capacity_eq
        self.ix_regenerating_s = 0.0  # time left of a regeneration under way
        self.ix_regenerations = 0

    @property
    def supply_m3_h(self) -> float:
        """What the rinse station's water meter reads: fresh valve plus regeneration."""
        return self.fresh_m3_h + self.regeneration_m3_h

    def step(self, dt: float, producing: bool) -> RinseStep:
        spec = self.spec
        hours = dt / 3600.0
        fresh_pct = self.fresh.value if self.fresh.value is not None else 0.0
        recirc_pct = self.recirc.value if self.recirc.value is not None else 0.0
        fresh = fresh_pct / 100.0 * spec.fresh_max_m3_h
        recirc = recirc_pct / 100.0 * spec.recirc_max_m3_h
        regenerating = self.ix_regenerating_s > 0
        treated = 0.0 if regenerating else recirc * spec.recirc_removal  # m3/h cleaned by IX
        source = spec.dragout_l_h / 1000.0 * spec.bath_conductivity_us_cm if producing else 0.0
        source += fresh * spec.fresh_conductivity_us_cm
        sink = fresh + treated  # m3/h of water cleaned
        start = self.conductivity
        if sink > 0:
            c_eq = source / sink
            x = sink * hours / spec.tank_m3
            self.conductivity = c_eq + (start - c_eq) * math.exp(-x)
            mean = c_eq + (start - c_eq) * -math.expm1(-x) / x if x > 0 else start
        else:
            self.conductivity += source * hours / spec.tank_m3
            mean = (start + self.conductivity) / 2.0
        regeneration_m3 = self._exchanger(dt, treated * mean * hours)
        self.fresh_m3_h = fresh
        self.recirc_m3_h = recirc
        self.regeneration_m3_h = regeneration_m3 / hours if hours > 0 else 0.0
        self.pump_kw = spec.recirc_pump_kw if recirc > 0 else 0.0
        return RinseStep(
            fresh_m3=fresh * hours, regeneration_m3=regeneration_m3, pump_kwh=self.pump_kw * hours
        )

    def _exchanger(self, dt: float, removed_us_cm_m3: float) -> float:
        """Load the resin with what it removed this step; regenerate when exhausted. Returns the
        regeneration water drawn in the step (m3)."""
        spec = self.spec
        if self.ix_regenerating_s > 0:
            run = min(dt, self.ix_regenerating_s)
            self.ix_regenerating_s -= run
            if self.ix_regenerating_s <= 0:
                self.ix_regenerating_s = 0.0
                self.ix_load_eq = 0.0
            return spec.ix_regeneration_m3 * run / (spec.ix_regeneration_h * 3600.0)
        self.ix_load_eq += removed_us_cm_m3 * EQ_PER_US_CM_M3
        if self.ix_load_eq >= spec.ix_capacity_eq:
            self.ix_load_eq = spec.ix_capacity_eq
            self.ix_regenerating_s = spec.ix_regeneration_h * 3600.0
            self.ix_regenerations += 1
        return 0.0

"""Production machines: electrical power, compressed air use and process heat by activity."""

from __future__ import annotations

import random

from drivers.sim.plant.noise import Disturbance
from drivers.sim.plant.schedule import Activity
from drivers.sim.scenario import MachineSpec


class Machine:
    def __init__(self, spec: MachineSpec, rng: random.Random) -> None:
        self.spec = spec
        self.name = spec.name
        self.activity = Activity.OFF
        self.power_kw = 0.0
        self.air_m3_min = 0.0
        self._variation = Disturbance(rng, spec.variability, tau=90.0)

    def step(self, scheduled: Activity, dt: float) -> None:
        """Follow the schedule; on days without shifts the machine is off or in standby."""
        if scheduled is Activity.OFF:
            self.activity = (
                Activity.STANDBY if self.spec.weekend_state == "standby" else Activity.OFF
            )
        else:
            self.activity = scheduled
        variation = self._variation.step(dt)
        power = self.spec.power_kw
        if self.activity is Activity.PRODUCING:
            self.power_kw = max(power.idle, power.producing * (1.0 + variation))
            self.air_m3_min = self.spec.air_m3_min.producing * max(0.0, 1.0 + variation)
        elif self.activity is Activity.IDLE:
            self.power_kw = power.idle
            self.air_m3_min = self.spec.air_m3_min.idle
        elif self.activity is Activity.STANDBY:
            self.power_kw = power.standby
            self.air_m3_min = 0.0
        else:
            self.power_kw = power.off
            self.air_m3_min = 0.0

    @property
    def heat_kw(self) -> float:
        """Heat this machine puts into the chilled water."""
        return self.power_kw * self.spec.heat_to_chilled_water

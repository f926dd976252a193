"""Production machines: electrical power, compressed air use and process heat by activity, and
the PROFIenergy-style standby a controller may request (with its wake-up time and restart
energy, and the production lost when a machine is not ready while it should produce)."""

from __future__ import annotations

import random

from drivers.sim.plant.noise import Disturbance
from drivers.sim.plant.plc import Setpoint
from drivers.sim.plant.schedule import Activity
from drivers.sim.scenario import MachineSpec


class Machine:
    """A machine follows the schedule unless its PLC holds a standby request (PROFIenergy
    Start_Pause): then it goes to standby at once, whatever the schedule says. Leaving standby
    (the request released, or the schedule's own standby over) it wakes up for `wake_up`
    seconds at idle power plus its restart energy, and cannot produce until it is awake."""

    def __init__(self, spec: MachineSpec, rng: random.Random, standby_request: Setpoint) -> None:
        self.spec = spec
        self.name = spec.name
        self.standby_request = standby_request
        self.activity = Activity.OFF
        self.power_kw = 0.0
        self.air_m3_min = 0.0
        self.waking_s = 0.0  # wake-up time left
        self.restarts = 0  # times it left standby
        self.restart_kwh = 0.0  # energy drawn on top of idle power while waking
        self.production_lost_s = 0.0  # scheduled to produce, but in standby or waking
        self._variation = Disturbance(rng, spec.variability, tau=90.0)

    @property
    def standby_requested(self) -> bool:
        value = self.standby_request.value
        return value is not None and value >= 0.5

    def _target(self, scheduled: Activity) -> Activity:
        if scheduled is Activity.OFF:
            # Days without shifts: off (breakers open) or standby; a request changes nothing.
            return Activity.STANDBY if self.spec.weekend_state == "standby" else Activity.OFF
        if self.standby_requested:
            return Activity.STANDBY
        return scheduled

    def _draw(self, activity: Activity, variation: float) -> tuple[float, float]:
        """Power (kW) and free air (m3/min) in an activity."""
        power = self.spec.power_kw
        air = self.spec.air_m3_min
        if activity is Activity.PRODUCING:
            return (
                max(power.idle, power.producing * (1.0 + variation)),
                air.producing * max(0.0, 1.0 + variation),
            )
        if activity is Activity.IDLE:
            return power.idle, air.idle
        if activity is Activity.STANDBY:
            return power.standby, 0.0
        return power.off, 0.0

    def step(self, scheduled: Activity, dt: float) -> None:
        """Follow the schedule and the standby request over `dt` seconds."""
        spec = self.spec
        target = self._target(scheduled)
        if target in (Activity.OFF, Activity.STANDBY):
            self.waking_s = 0.0  # a wake-up cut short: back to standby (or off)
        elif self.activity is Activity.STANDBY:
            self.waking_s = spec.wake_up
            self.restarts += 1
        waking = min(dt, self.waking_s)
        self.waking_s -= waking
        variation = self._variation.step(dt)
        power, air = self._draw(target, variation)
        if waking > 0:
            extra_kw = spec.restart_kwh * 3600.0 / spec.wake_up
            rest = dt - waking
            power = (waking * (spec.power_kw.idle + extra_kw) + rest * power) / dt
            air = (waking * spec.air_m3_min.idle + rest * air) / dt
            self.restart_kwh += extra_kw * waking / 3600.0
        self.power_kw = power
        self.air_m3_min = air
        self.activity = Activity.IDLE if self.waking_s > 0 else target
        if scheduled is Activity.PRODUCING:
            self.production_lost_s += dt if target is Activity.STANDBY else waking

    @property
    def heat_kw(self) -> float:
        """Heat this machine puts into the chilled water."""
        return self.power_kw * self.spec.heat_to_chilled_water

"""A heated process-water tank: an electric heater on a thermostat against the heat its process
draws and its standing losses. The water stores heat, so the heater can be disabled for a while
(energy deferred, not lost) until the water falls to the process's minimum."""

from __future__ import annotations

from drivers.sim.plant.chiller import CP_WATER, RHO_WATER
from drivers.sim.plant.plc import Setpoint
from drivers.sim.plant.relaxation import advance, time_to_reach
from drivers.sim.plant.schedule import Activity
from drivers.sim.scenario import HeatedTankSpec


class HeatedTank:
    """C dT/dt = heater - draw - UA (T - room), solved exactly between thermostat switches.

    The thermostat calls for heat from `setpoint - differential` up to `setpoint`; the heater
    runs while it calls, the heater is enabled and its machine is powered (not off: the tank
    is part of the machine and its breakers open with it). Disabled, the thermostat still
    calls (as its contact would), and the heater starts at once when enabled again."""

    def __init__(self, spec: HeatedTankSpec, enable: Setpoint) -> None:
        self.spec = spec
        self.name = spec.name
        self.enable = enable
        self.temperature_c = spec.initial_c
        self.calling = spec.initial_c <= spec.setpoint_c - spec.differential_k
        self.power_kw = 0.0
        self.draw_kw = 0.0
        self.powered = True
        self._capacity_kj_k = spec.volume_m3 * RHO_WATER * CP_WATER

    @property
    def enabled(self) -> bool:
        value = self.enable.value
        return value is None or value >= 0.5

    @property
    def heater_on(self) -> bool:
        return self.calling and self.enabled and self.powered

    def _draw_kw(self, activity: Activity) -> float:
        if activity is Activity.PRODUCING:
            return self.spec.draw_kw.producing
        if activity is Activity.IDLE:
            return self.spec.draw_kw.idle
        return 0.0

    def step(self, dt: float, activity: Activity) -> float:
        """Advance `dt` seconds with the served machine in `activity`; returns heater kWh."""
        spec = self.spec
        self.draw_kw = self._draw_kw(activity)
        self.powered = activity is not Activity.OFF
        heating = self.enabled and self.powered
        on_at = spec.setpoint_c - spec.differential_k
        b = spec.loss_kw_per_k / self._capacity_kj_k  # 1/s
        t = self.temperature_c
        remaining = dt
        heating_s = 0.0
        for _ in range(10_000):  # thermostat switches per step; a guard, never reached
            if remaining <= 0:
                break
            if self.calling and t >= spec.setpoint_c:
                self.calling = False
            elif not self.calling and t <= on_at:
                self.calling = True
            heat = spec.heater_kw if self.calling and heating else 0.0
            a = (heat - self.draw_kw + spec.loss_kw_per_k * spec.room_c) / self._capacity_kj_k
            target = spec.setpoint_c if self.calling else on_at
            t_switch = time_to_reach(t, a, b, target)
            switches = t_switch is not None and t_switch <= remaining
            h = t_switch if switches and t_switch is not None else remaining
            t = target if switches else advance(t, a, b, h)
            if heat > 0:
                heating_s += h
            remaining -= h
            if switches:
                self.calling = not self.calling
        self.temperature_c = t
        self.power_kw = spec.heater_kw * heating_s / dt
        return spec.heater_kw * heating_s / 3600.0

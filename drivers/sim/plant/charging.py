"""An electric-vehicle charging point: cars plugged in on a daily timetable, each wanting some
energy before it leaves. Charging may be paused (energy deferred, not lost) as long as the car
gets its energy before it departs; what it leaves without is counted."""

from __future__ import annotations

from datetime import datetime

from drivers.sim.plant.plc import Setpoint
from drivers.sim.scenario import WEEKDAYS, ChargingSession, EvChargerSpec, seconds_of_day


class EvCharger:
    """Charges at its rated power while a car wants energy and the charger is enabled (a
    disabled IEC 61851 charger signals 'no current available' on its control pilot)."""

    def __init__(self, spec: EvChargerSpec, enable: Setpoint) -> None:
        self.spec = spec
        self.name = spec.name
        self.enable = enable
        self.session: ChargingSession | None = None  # the car plugged in now
        self.wanted_kwh = 0.0  # what that car still wants
        self.power_kw = 0.0
        self.short_kwh = 0.0  # energy cars left without
        self.sessions = 0  # cars plugged in

    @property
    def enabled(self) -> bool:
        value = self.enable.value
        return value is None or value >= 0.5

    @property
    def connected(self) -> bool:
        return self.session is not None

    def _session_at(self, now: datetime) -> ChargingSession | None:
        day = WEEKDAYS[now.weekday()]
        second = seconds_of_day(now.time())
        for session in self.spec.sessions:
            if day in session.days and seconds_of_day(session.arrive) <= second < seconds_of_day(
                session.depart
            ):
                return session
        return None

    def step(self, now: datetime, dt: float) -> float:
        """Advance `dt` seconds from local time `now`; returns the kWh charged."""
        session = self._session_at(now)
        if session is not self.session:
            if self.session is not None:
                self.short_kwh += self.wanted_kwh  # the car left
            self.session = session
            self.wanted_kwh = session.kwh if session is not None else 0.0
            if session is not None:
                self.sessions += 1
        kwh = 0.0
        if self.session is not None and self.enabled and self.wanted_kwh > 0:
            kwh = min(self.spec.kw * dt / 3600.0, self.wanted_kwh)
            self.wanted_kwh -= kwh
        self.power_kw = kwh * 3600.0 / dt
        return kwh

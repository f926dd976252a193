"""When the cell works: shifts, breaks, idle periods and days off, turned into what each machine
is doing at a given local time."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

from drivers.sim.scenario import WEEKDAYS, Pause, ScheduleSpec, seconds_of_day


class Activity(IntEnum):
    """What a machine does; the value is what its PLC reports as its state code."""

    OFF = 0
    STANDBY = 1
    IDLE = 2
    PRODUCING = 3


class ProductionSchedule:
    def __init__(self, spec: ScheduleSpec) -> None:
        self.spec = spec

    def _in_pause(self, pauses: list[Pause], day: str, second: float) -> bool:
        for pause in pauses:
            start = seconds_of_day(pause.start)
            if day in pause.days and start <= second < start + pause.duration:
                return True
        return False

    def activity(self, now: datetime) -> Activity:
        """The schedule's activity for the machines at local time `now`."""
        day = WEEKDAYS[now.weekday()]
        second = seconds_of_day(now.time())
        shifts_today = [s for s in self.spec.shifts if day in s.days]
        if not shifts_today:
            return Activity.OFF
        for shift in shifts_today:
            start, end = seconds_of_day(shift.start), seconds_of_day(shift.end)
            if start <= second < end:
                if self._in_pause(self.spec.breaks, day, second) or self._in_pause(
                    self.spec.idle, day, second
                ):
                    return Activity.IDLE
                return Activity.PRODUCING
            if start - self.spec.warmup <= second < start:
                return Activity.IDLE
        return Activity.STANDBY if self.spec.between_shifts == "standby" else Activity.IDLE

    def occupied(self, now: datetime) -> bool:
        """People on site (offices lit, washrooms used): from warm-up to the end of a shift."""
        day = WEEKDAYS[now.weekday()]
        second = seconds_of_day(now.time())
        return any(
            day in s.days
            and seconds_of_day(s.start) - self.spec.warmup <= second < seconds_of_day(s.end)
            for s in self.spec.shifts
        )

"""Time-of-use periods and shifts by weekday and time of day in a configured time zone: which
period is active at a wall time, and when the next one starts (to pre-wake machines).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from controller.configtypes import Name, StrictModel
from controller.rules.blocks import BlockError

_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
# How far ahead `next_change` looks before deciding the schedule never changes (a long run of
# holidays can keep one period active for weeks).
_HORIZON_DAYS = 400
_CHUNK_DAYS = 8

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def parse_time_of_day(value: Any) -> int:
    """'08:00', '22:30', '06:15:30' or '24:00' (end of day) -> seconds since local midnight."""
    # pydantic reports ValueError as a config problem; a TypeError would escape as a crash.
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(  # noqa: TRY004
            "write times of day in quotes ('22:00'): unquoted, YAML reads 22:00 as the number"
            f" {value} (base-60)"
        )
    if not isinstance(value, str):
        raise ValueError(f"a time of day is a string such as '08:00', not {value!r}")  # noqa: TRY004
    match = _TIME_OF_DAY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a time of day: write HH:MM or HH:MM:SS ('06:30')")
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if minutes > 59 or seconds > 59 or hours > 24 or (hours == 24 and minutes + seconds > 0):
        raise ValueError(f"{value!r} is not a time of day between 00:00 and 24:00")
    return hours * 3600 + minutes * 60 + seconds


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from exc
    return value


# Seconds since local midnight, written '08:00' in YAML; '24:00' is the end of the day.
TimeOfDay = Annotated[int, BeforeValidator(parse_time_of_day)]
# An IANA time zone name that this machine's tz database knows.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class PeriodRule(StrictModel):
    """One stretch of a period: on these weekdays from `start` to `end`, local time.

    An `end` earlier than `start` runs past midnight into the next day (a night shift 22:00 to
    06:00); the stretch belongs to the day it starts on.
    """

    name: Name
    days: list[Weekday] = Field(min_length=1)
    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _sane_times(self) -> PeriodRule:
        if self.start >= _DAY_S:
            raise ValueError("start must be before 24:00")
        if self.start == self.end:
            raise ValueError("start and end are equal: for a whole day write 00:00 to 24:00")
        if len(set(self.days)) != len(self.days):
            raise ValueError(f"days lists a weekday twice: {self.days}")
        return self

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


class ScheduleConfig(StrictModel):
    """Named periods by weekday and time of day; any time no rule covers is the default period.

    Public holidays run the rules of `holidays_as` (Sunday unless set).
    """

    timezone: TimeZoneName
    default: Name
    periods: list[PeriodRule] = Field(default_factory=list)
    holidays: list[date] = Field(default_factory=list)
    holidays_as: Weekday = "sun"

    @model_validator(mode="after")
    def _no_overlaps(self) -> ScheduleConfig:
        # Each stretch on the week's circle of seconds; a Sunday night shift wraps to Monday.
        spans: list[tuple[int, int, int, Weekday]] = []
        for index, rule in enumerate(self.periods):
            length = (rule.end - rule.start) % _DAY_S or _DAY_S
            for day in rule.days:
                begin = _WEEKDAYS.index(day) * _DAY_S + rule.start
                end = begin + length
                spans.append((begin, min(end, _WEEK_S), index, day))
                if end > _WEEK_S:
                    spans.append((0, end - _WEEK_S, index, day))
        spans.sort()
        for (_, end_a, index_a, day_a), (begin_b, _, index_b, day_b) in pairwise(spans):
            if begin_b < end_a:
                a, b = self.periods[index_a], self.periods[index_b]
                raise ValueError(
                    f"periods[{index_a}] ({a.name} on {day_a}) and periods[{index_b}]"
                    f" ({b.name} on {day_b}) overlap: every instant must have exactly one period"
                )
        return self

    @property
    def period_names(self) -> set[str]:
        return {self.default} | {rule.name for rule in self.periods}


class UnknownPeriodError(BlockError, KeyError):
    """A period was asked for by a name the schedule does not have."""


@dataclass(frozen=True, slots=True)
class PeriodChange:
    """The instant (epoch ms) the schedule switches to `period`."""

    at_ms: int
    period: str


class Schedule:
    """Answers which period is active at a wall time and when the next one starts.

    Rules are in local wall time, so daylight saving is handled the way people read clocks: a
    period from 08:00 starts at 08:00 local on both sides of a change. On the spring-forward day
    a boundary inside the skipped hour takes effect when the clock jumps over it; on the
    fall-back day the repeated hour belongs, both times, to the period that covers it.
    """

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._holidays = set(config.holidays)
        self._rules: dict[int, list[PeriodRule]] = {day: [] for day in range(7)}
        for rule in config.periods:
            for day in rule.days:
                self._rules[_WEEKDAYS.index(day)].append(rule)
        self._boundaries = sorted(
            {0}
            | {rule.start for rule in config.periods}
            | {rule.end % _DAY_S for rule in config.periods}
        )

    def period_at(self, t_ms: int) -> str:
        """The period active at wall time `t_ms` (epoch milliseconds)."""
        local = datetime.fromtimestamp(t_ms // 1000, self.zone)
        second_ms = (local.hour * 3600 + local.minute * 60 + local.second) * 1000 + t_ms % 1000
        today = local.date()
        # Stretches starting today come first, so that after a holiday the previous day's night
        # stretch (run with the holiday's rules) cannot make an instant belong to two periods.
        for rule in self._rules[self._weekday(today)]:
            if rule.start * 1000 <= second_ms and (
                rule.crosses_midnight or second_ms < rule.end * 1000
            ):
                return rule.name
        for rule in self._rules[self._weekday(today - timedelta(days=1))]:
            if rule.crosses_midnight and second_ms < rule.end * 1000:
                return rule.name
        return self.config.default

    def next_change(self, t_ms: int) -> PeriodChange | None:
        """The first instant after `t_ms` where the active period differs from the one at
        `t_ms`; None when it does not change within a year (one period all week)."""
        return next(self._changes(t_ms), None)

    def next_start(self, t_ms: int, period: str) -> int | None:
        """When `period` next becomes active after `t_ms` (epoch ms), to pre-wake machines ahead
        of it. If it is active at `t_ms` this is its next start after the present stretch ends.
        None when it does not start within a year."""
        if period not in self.config.period_names:
            raise UnknownPeriodError(
                f"schedule has no period {period!r}; it has {sorted(self.config.period_names)}"
            )
        return next((c.at_ms for c in self._changes(t_ms) if c.period == period), None)

    def _changes(self, t_ms: int) -> Iterator[PeriodChange]:
        """Every change of period after `t_ms`, in order, for up to a year."""
        current = self.period_at(t_ms)
        day = datetime.fromtimestamp(t_ms // 1000, self.zone).date() - timedelta(days=1)
        lower = t_ms
        for _ in range(0, _HORIZON_DAYS, _CHUNK_DAYS - 1):
            days = [day + timedelta(days=i) for i in range(_CHUNK_DAYS)]
            # Instants of the next date are all later than those of this chunk's last-but-one
            # date; the chunks overlap by a day because near midnight two dates interleave.
            upper = min(self._boundary_instants(day + timedelta(days=_CHUNK_DAYS)))
            candidates = {at for d in days for at in self._boundary_instants(d)}
            candidates.update(self._offset_changes(lower // 1000, upper // 1000))
            for at in sorted(c for c in candidates if lower < c < upper):
                period = self.period_at(at)
                if period != current:
                    yield PeriodChange(at_ms=at, period=period)
                    current = period
            lower = max(lower, upper - 1)
            day += timedelta(days=_CHUNK_DAYS - 1)

    def _weekday(self, day: date) -> int:
        if day in self._holidays:
            return _WEEKDAYS.index(self.config.holidays_as)
        return day.weekday()

    def _boundary_instants(self, day: date) -> list[int]:
        """Every instant (epoch ms) at which the local clock reads a rule boundary on `day`;
        a wall time read twice on the fall-back day gives two instants, one skipped on the
        spring-forward day gives instants on either side (the jump itself is an offset change)."""
        out: list[int] = []
        for boundary in self._boundaries:
            naive = datetime.combine(day, time()) + timedelta(seconds=boundary)
            for fold in (0, 1):
                out.append(int(naive.replace(tzinfo=self.zone, fold=fold).timestamp()) * 1000)
        return out

    def _offset_changes(self, low: int, high: int) -> list[int]:
        """Epoch ms of every UTC offset change (a daylight-saving jump) in epoch seconds
        (low, high]. The local clock jumps there, possibly into or out of a period."""
        # Zones change offset weeks or months apart, never twice within six hours.
        step = 6 * 3600
        out: list[int] = []
        previous = low
        offset = self._offset(low)
        for at in [*range(low + step, high, step), high]:
            if self._offset(at) != offset:
                out.append(self._first_offset_change(previous, at) * 1000)
                offset = self._offset(at)
            previous = at
        return out

    def _first_offset_change(self, low: int, high: int) -> int:
        """The first epoch second in (low, high] whose UTC offset differs from that of `low`."""
        offset = self._offset(low)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == offset:
                low = middle
            else:
                high = middle
        return high

    def _offset(self, epoch_s: int) -> timedelta | None:
        return datetime.fromtimestamp(epoch_s, self.zone).utcoffset()

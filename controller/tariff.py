"""The site's energy tariff: time-of-use periods, the export price and the demand charge on the
billing window's highest average. One schema for the controller's `tariff:` (the scheduler's
prices) and the simulated cell's scenario (drivers/sim/scenario.py bills with it), so
`edgecell cellcheck` can say when the two disagree."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from controller.configtypes import Name, PositiveDuration, StrictModel

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORKDAYS: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]

_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def _parse_clock(value: Any) -> time | Any:
    """'06:00' -> 06:00; '24:00' is the end of the day (stored as 23:59:59.999999)."""
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a time of day: write HH:MM such as '06:00'")
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour == 24:
            if minute:
                raise ValueError(f"{value!r} is past the end of the day")
            return time.max
        return time(hour, minute)
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 10:30 as the sexagesimal integer 630.
        raise ValueError(  # noqa: TRY004  (pydantic reports ValueError, not TypeError)
            f"write times of day in quotes ('10:30'), YAML read {value!r} as a number"
        )
    return value


ClockTime = Annotated[time, BeforeValidator(_parse_clock)]


def seconds_of_day(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


class TariffPeriod(StrictModel):
    """A time-of-use period on `days` from `start` to `end`, local time. An `end` earlier than
    `start` runs past midnight into the next day (a night from 22:00 to 06:00); the stretch
    belongs to the day it starts on, as a schedule's (controller/rules/schedule.py)."""

    name: Name
    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))
    start: ClockTime
    end: ClockTime
    price_per_kwh: float = Field(ge=0)

    @model_validator(mode="after")
    def _not_empty(self) -> TariffPeriod:
        if self.start == self.end:
            raise ValueError("start and end are equal: for a whole day write 00:00 to 24:00")
        return self

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def started_today_covers(self, day: Weekday, second: float) -> bool:
        """Whether the stretch that starts on `day` covers `second` of that day."""
        return (
            day in self.days
            and seconds_of_day(self.start) <= second
            and (self.crosses_midnight or second < seconds_of_day(self.end))
        )

    def from_yesterday_covers(self, yesterday: Weekday, second: float) -> bool:
        """Whether the stretch that started on `yesterday` runs on to `second` of today."""
        return (
            self.crosses_midnight and yesterday in self.days and second < seconds_of_day(self.end)
        )


class TariffSpec(StrictModel):
    currency: str = "EUR"
    default_price_per_kwh: float = Field(ge=0)
    periods: list[TariffPeriod] = Field(default_factory=list)
    # Charged on the month's highest billing-window average demand (`demand_window` long,
    # `demand_alignment`), prorated per day in ground truth.
    demand_charge_per_kw_month: float = Field(0.0, ge=0)
    # The utility's billing interval: `fixed` windows aligned to the site's clock (a 15-min
    # window starts at :00, :15, :30, :45), as utilities bill; `sliding`: the highest rolling
    # average, as some tariffs do.
    demand_window: PositiveDuration = 900.0
    demand_alignment: Literal["fixed", "sliding"] = "fixed"
    water_price_per_m3: float = Field(0.0, ge=0)
    # Paid for energy exported to the grid (feed-in), per kWh.
    export_price_per_kwh: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _window_divides_the_hour(self) -> TariffSpec:
        window = self.demand_window
        if self.demand_alignment == "fixed" and (
            window < 1 or window != int(window) or 3600 % int(window)
        ):
            raise ValueError(
                f"tariff.demand_window {window:g} s does not divide the hour: clock-aligned"
                " billing windows are 5, 10, 15, 30 or 60 min"
            )
        return self

    @property
    def lowest_price_per_kwh(self) -> float:
        """The cheapest import price: the default's or the cheapest period's (the off-peak
        price a stored kWh costs to put back)."""
        return min([self.default_price_per_kwh, *(p.price_per_kwh for p in self.periods)])

    def price_at(self, local: datetime) -> tuple[float, str]:
        """The import price per kWh at a local time, and the name of its period: the first
        period whose stretch starting today covers it, else the first whose stretch from
        yesterday runs on to it (a night period), else the default."""
        day = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        second = seconds_of_day(local.time())
        for period in self.periods:
            if period.started_today_covers(day, second):
                return period.price_per_kwh, period.name
        for period in self.periods:
            if period.from_yesterday_covers(yesterday, second):
                return period.price_per_kwh, period.name
        return self.default_price_per_kwh, "default"

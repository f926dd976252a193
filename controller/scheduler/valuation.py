"""What lies beyond a plan's horizon, valued inside it: the billing period's demand charge and
the energy left in the battery at the horizon's end (docs/rules.md, "Scheduler: the model",
"What the horizon does not see").

The demand charge. The tariff bills it once per billing period (a calendar month in the
tariff's zone, as `BillingPeak` keeps it) on the period's highest window average. A 24-h plan
cannot price a kW of its peak at the whole month's charge: the month's peak is held (or not)
by every day left in the period, and lowering it by 1 kW saves the charge only if each of
those days holds the lower level too. Under "the days left are like this one" the month costs
N·E(P) + d·(P - P0) for a level P held on each of the N days left (E: a day's energy cost of
holding P, d: the charge per kW-month, P0: the peak already set), whose optimum has
E'(P) = -d/N: a day's plan that prices its peak above P0 at d/N per kW chooses the month's
level.

The stored energy. A kWh left at the horizon's end displaces at the least one bought at the
horizon's cheapest import price, delivered at the discharge efficiency and with the
discharge's wear: without a value the plan would empty the battery because the horizon ends.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from controller.scheduler.config import BatteryPlanConfig


def days_left_in_period(wall_ms: int, zone: ZoneInfo) -> int:
    """Days of the billing period (the calendar month in `zone`) from the day of `wall_ms` to
    the period's last day, both counted: 28 on 3 June, 1 on 30 June."""
    local = datetime.fromtimestamp(wall_ms / 1000, tz=UTC).astimezone(zone)
    days_in_month = calendar.monthrange(local.year, local.month)[1]
    return days_in_month - local.day + 1


def planned_demand_charge(month_charge_per_kw: float, wall_ms: int, zone: ZoneInfo) -> float:
    """The demand charge per kW a plan made at `wall_ms` puts on its peak above the peak
    already set: the month's charge shared by the days left in the period (today counted)."""
    return month_charge_per_kw / days_left_in_period(wall_ms, zone)


def end_value_per_kwh(battery: BatteryPlanConfig, import_price: Sequence[float]) -> float:
    """What a stored kWh left at the horizon's end is worth to the plan: the configured figure,
    or (`auto`) η_d·(p_min - c) with p_min the horizon's cheapest import price and c the wear
    per AC kWh, never below 0 (0.91·(0.16 - 0.0125) = 0.1342 on the solar-day cell)."""
    if battery.end_value_per_kwh != "auto":
        return battery.end_value_per_kwh
    cheapest = min(import_price, default=0.0)
    return max(0.0, battery.discharge_efficiency * (cheapest - battery.degradation_per_kwh))

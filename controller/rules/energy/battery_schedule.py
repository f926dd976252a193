"""The battery follows the scheduler's plan (docs/rules.md, "battery_schedule"): the present
step's kW, corrected in real time for the forecast's error (more discharge when the site would
go above the plan's peak, no discharge into an export the plan did not expect), within the
battery's limits and SoC window. Without a valid plan it proposes nothing, raises its alarm, and
the reactive battery rules below it decide."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from controller.alarms import DeclaredAlarm, Indicates, declare
from controller.configtypes import PositiveDuration
from controller.model import Sample
from controller.rules.demand import DemandWindow, DemandWindowConfig, metered_power_window
from controller.rules.energy.battery import (
    BatteryControlConfig,
    BatteryRule,
    read_battery,
    within_limits,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.schedule import TimeZoneName
from controller.scheduler.board import PlanBoard

# A number in a message: an age, a pid, a time, a kW figure (with its decimals or its clock's
# colons).
_FIGURES = re.compile(r"\d+(?:[.,:]\d+)*")


def same_cause(message: str) -> str:
    """A message with its figures blanked: two failures that differ only in a figure ("issued
    1800 s ago", "issued 3600 s ago") have one cause."""
    return _FIGURES.sub("#", message)


class BatteryScheduleConfig(BatteryControlConfig):
    """Follow the plan's battery kW; keep the import at the plan's peak."""

    kind: Literal["battery_schedule"]
    # The import is held this far under the plan's peak when the load runs above its forecast.
    peak_margin_kw: float = Field(2.0, ge=0)
    # The plan's peak is a billing window's average: held on the window's average (the import
    # metered so far, the present import for the rest) rather than on every instant, so a
    # machine's minute above it does not spend what the rest of the window did not need.
    # None: every instant (fixed windows on the clock of `timezone`).
    window: PositiveDuration | None = None
    timezone: TimeZoneName = "UTC"

    @model_validator(mode="after")
    def _window_divides_the_hour(self) -> BatteryScheduleConfig:
        if self.window is not None:
            self.demand_config()  # a window that does not divide the hour is refused here
        return self

    def demand_config(self) -> DemandWindowConfig:
        """The billing window held, fed with the meter's power."""
        return metered_power_window(self.window, self.timezone)


class BatterySchedule(BatteryRule):
    """The plan's step of now, with the real-time corrections; nothing without a plan."""

    ALARMS: ClassVar[Mapping[str, DeclaredAlarm]] = declare(
        no_plan=DeclaredAlarm(Indicates.CONTROL, "scheduler")
    )
    config: BatteryScheduleConfig

    def __init__(self, config: BatteryScheduleConfig, plans: PlanBoard | None = None) -> None:
        super().__init__(config, "battery_schedule")
        self.config = config
        self.plans = plans if plans is not None else PlanBoard()
        self.plan_kw: float | None = None
        self.no_plan_message = ""
        self.demand = None if config.window is None else DemandWindow(config.demand_config())

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        reading = self.reading = read_battery(cfg, snapshot)
        if self.demand is not None:
            self.demand.add_power(now.wall_ms, number(snapshot, cfg.power))
        target = self.plans.target(now.wall_ms)
        if target is None:
            why = self.plans.why_none(now.wall_ms)
            self.wanted_kw, self.plan_kw, self.cut = None, None, ""
            if not self.plans.attempted:
                # Started a moment ago: the first plan is on its way, not missing.
                self.state = "waiting_for_plan"
                self.set_alarm("no_plan", False)
                return []
            self.state = "no_plan"
            message = f"no valid plan: {why}; the reactive rules decide"
            if not self.alarm_active("no_plan") or same_cause(message) != same_cause(
                self.no_plan_message
            ):
                self.no_plan_message = message
            # While the cause stays, the message of its raise: a retry whose error differs only
            # in a figure (the forecast's age, a pid) is no news to an operator (events/plan
            # and {base}/plan carry each failure's own words).
            self.set_alarm("no_plan", True, self.no_plan_message)
            return []
        self.set_alarm("no_plan", False)
        self.plan_kw = kw = target.battery_kw
        load = reading.load_kw
        self.state = "following"
        reason = f"plan {kw:.1f} kW"
        ceiling = target.peak_kw - cfg.peak_margin_kw
        over = self._above(load - kw, ceiling, now)
        if over > 0:
            kw += over
            self.state = "holding_peak"
            reason += f"; load {load:.1f} kW would pass the plan's peak {target.peak_kw:.1f} kW"
        elif kw > 0 and load - kw < -target.export_kw:
            kw = max(load + target.export_kw, 0.0)
            self.state = "no_export"
            reason += f"; load {load:.1f} kW: no discharge into an unplanned export"
        kw, self.cut = within_limits(cfg, kw, reading.soc_pct)
        if self.cut:
            reason += f"; limited by {self.cut}"
        self.wanted_kw = kw
        return [self.propose_kw(kw, now, reason)]

    def _above(self, import_kw: float, ceiling: float, now: Now) -> float:
        """The discharge more than planned that keeps the ceiling: the import now above it, or
        with a window the constant discharge over the rest of the window that brings its
        average to it (the import so far, the present import for the rest). <= 0: none."""
        if self.demand is None:
            return import_kw - ceiling
        window = self.demand.reading(now.wall_ms, power_kw=import_kw)
        if window.remaining_s <= 0:
            return import_kw - ceiling
        length = window.elapsed_s + window.remaining_s
        return (window.predicted_kw - ceiling) * length / window.remaining_s

    def detail(self) -> dict[str, object]:
        return {**super().detail(), "plan_kw": self.plan_kw}

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
from controller.scheduler.board import PlanBoard, PlanTarget

# A number in a message: an age, a pid, a time, a kW figure (with its decimals or its clock's
# colons).
_FIGURES = re.compile(r"\d+(?:[.,:]\d+)*")
# The rule's cycle until two evaluations have measured it (the actuation cycle's default).
DEFAULT_CYCLE_S = 5.0


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
    # The inverter's efficient floor: a kW below it is given as pulses at this power whose
    # billing window's average is that kW, so the inverter runs where its efficiency is the one
    # the plan counted (an inverter's no-load losses make 10 % of its rating cost 28 % of the
    # energy, half its rating 6 %). None: every kW as it comes. Needs `window`.
    min_run_kw: float | None = Field(None, gt=0)
    # With min_run_kw: a window is never let head above this import (the import so far, the
    # present for the rest): the battery gives at once what keeps it under, the rest of the way
    # to the plan's peak last. At or under a load-shedding rule's trigger on the same meter
    # (peak_shaving's limit_kw - margin_kw), the battery gives before a load is shed. None: the
    # plan's peak only, last.
    hold_at_once_above_kw: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _window_divides_the_hour(self) -> BatteryScheduleConfig:
        if self.window is not None:
            self.demand_config()  # a window that does not divide the hour is refused here
        if self.min_run_kw is not None:
            if self.window is None:
                raise ValueError(
                    "min_run_kw needs window: a pulse is averaged over the billing window"
                )
            if self.min_run_kw > min(self.max_charge_kw, self.max_discharge_kw):
                raise ValueError(
                    f"min_run_kw {self.min_run_kw:g} is above the battery's power limits "
                    f"(max_charge_kw {self.max_charge_kw:g}, max_discharge_kw "
                    f"{self.max_discharge_kw:g})"
                )
        elif self.hold_at_once_above_kw is not None:
            raise ValueError(
                "hold_at_once_above_kw is for min_run_kw: without it the plan's peak is held at"
                " once already"
            )
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
        # The battery's own power (+ discharge) over the billing window, with min_run_kw: the
        # pulses are sized on what it gave since the plan's step began in the window.
        self.given = None if config.min_run_kw is None else DemandWindow(config.demand_config())
        self._last_ms: int | None = None
        self.cycle_s = DEFAULT_CYCLE_S

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        reading = self.reading = read_battery(cfg, snapshot)
        if self.demand is not None:
            self.demand.add_power(now.wall_ms, number(snapshot, cfg.power))
        if self.given is not None:
            self.given.add_power(now.wall_ms, number(snapshot, cfg.battery_power))
        if self._last_ms is not None and now.wall_ms > self._last_ms:
            self.cycle_s = (now.wall_ms - self._last_ms) / 1000
        self._last_ms = now.wall_ms
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
        self.plan_kw = target.battery_kw
        self.state = "following"
        floor = cfg.min_run_kw
        if self.given is None or self.demand is None or floor is None:
            kw, reason = self._follow(target, reading.load_kw, now)
        else:
            kw, reason = self._follow_in_pulses(
                target, reading.load_kw, now, (self.given, self.demand), floor
            )
        kw, self.cut = within_limits(cfg, kw, reading.soc_pct)
        if self.cut:
            reason += f"; limited by {self.cut}"
        self.wanted_kw = kw
        return [self.propose_kw(kw, now, reason)]

    def _follow(self, target: PlanTarget, load: float, now: Now) -> tuple[float, str]:
        """The plan's kW of now, more when the import would pass the plan's peak, less when it
        would export what the plan did not."""
        kw = target.battery_kw
        reason = f"plan {kw:.1f} kW"
        over = self._above(load - kw, target.peak_kw - self.config.peak_margin_kw, now)
        if over > 0:
            kw += over
            self.state = "holding_peak"
            reason += f"; load {load:.1f} kW would pass the plan's peak {target.peak_kw:.1f} kW"
        elif kw > 0 and load - kw < -target.export_kw:
            kw = max(load + target.export_kw, 0.0)
            self.state = "no_export"
            reason += f"; load {load:.1f} kW: no discharge into an unplanned export"
        return kw, reason

    def _follow_in_pulses(
        self,
        target: PlanTarget,
        load: float,
        now: Now,
        windows: tuple[DemandWindow, DemandWindow],
        floor: float,
    ) -> tuple[float, str]:
        """The plan's kW as the average over its step in the billing window (the two
        intersected: over 15-min steps a 30-min window has each step's kW over its step), given
        first in pulses at min_run_kw; the peak held last: only once the rest of the window
        needs min_run_kw or more to keep the import's average under the plan's peak, or at once
        when the window heads above hold_at_once_above_kw. A load's minute above its average
        early in a window then spends nothing the end of the window does not show it needed."""
        plan_kw = target.battery_kw
        reason = f"plan {plan_kw:.1f} kW"
        given, demand = windows
        window_start, window_end = demand.window_at(now.wall_ms)
        start_ms = max(target.start_ms, window_start)
        end_ms = min(target.end_ms, window_end)
        rest = _rest_kw(plan_kw, given.energy_since(start_ms, now.wall_ms), start_ms, end_ms, now)
        # The battery's constant kW over the rest of the window that alone holds the ceiling
        # (< 0: the room left under it, which a charge may take).
        hold = self._above(load, target.peak_kw - self.config.peak_margin_kw, now)
        if hold >= max(rest, floor):
            self.state = "holding_peak"
            reason += f"; load {load:.1f} kW would pass the plan's peak {target.peak_kw:.1f} kW"
            return hold, reason
        at_once = self.config.hold_at_once_above_kw
        urgent = 0.0 if at_once is None else self._above(load - max(rest, 0.0), at_once, now)
        if urgent > 0:
            # What keeps the window at the shed's side of at_once now, at min_run_kw or more;
            # the rest of the way to the plan's peak, last.
            self.state = "holding_peak"
            reason += f"; load {load:.1f} kW: the window held under {at_once:g} kW at once"
            return max(max(rest, 0.0) + urgent, floor), reason
        if rest < 0 and hold > rest:
            rest = min(hold, 0.0)  # a charge that would pass the peak: what fits under it
            reason += f"; the charge cut to {-rest:.1f} kW under the plan's peak"
        kw = self._pulse(rest, load, (end_ms - now.wall_ms) / 1000, floor)
        if kw > 0 and load - kw < -target.export_kw:
            kw = max(load + target.export_kw, 0.0)
            self.state = "no_export"
            reason += f"; load {load:.1f} kW: no discharge into an unplanned export"
        if kw != rest:
            reason += (
                f"; in pulses of {floor:g} kW (the inverter's efficient floor)"
                if kw != 0
                else "; the step's share given"
            )
        return kw, reason

    def _pulse(self, kw: float, load: float, remaining_s: float, floor: float) -> float:
        """`kw` (an average over the `remaining_s` left of its step) as a pulse at `floor`
        (min_run_kw) while the step still owes at least half a cycle of it; a charge with PV to
        spare takes no more than the surplus beyond its own need (a pulse must not buy from the
        grid what the sun would give)."""
        if kw == 0 or abs(kw) >= floor:
            return kw
        if abs(kw) * remaining_s < floor * self.cycle_s / 2:
            return 0.0
        if kw > 0:
            return floor
        if load >= 0:
            return -floor
        return -max(-kw, min(floor, -load))

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


def _rest_kw(plan_kw: float, given_kwh: float, start_ms: int, end_ms: int, now: Now) -> float:
    """The constant kW from now to `end_ms` that makes the battery's average since `start_ms`
    the plan's kW (the `given_kwh` so far counted). An overshoot is not given back: never the
    other way from the plan."""
    if end_ms <= now.wall_ms or plan_kw == 0:
        return plan_kw
    owed_kws = plan_kw * (end_ms - start_ms) / 1000 - given_kwh * 3600
    rest = owed_kws / ((end_ms - now.wall_ms) / 1000)
    return rest if rest * plan_kw > 0 else 0.0

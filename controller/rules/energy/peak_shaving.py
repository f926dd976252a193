"""Peak shaving: keep the billing window's average demand under a limit by shedding loads in
order and restoring them last-shed-first, one at a time. A shed is released before a process
variable it endangers reaches its limit (a demand target is never bought with a process limit),
and when shedding every load could not bring the window under the limit the rule says so and
sheds nothing that cannot help. docs/rules.md, "peak_shaving", gives the method and its
parameters; the config is in peak_shaving_config.py."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from controller.model import Sample
from controller.rules.blocks import NoSampleError
from controller.rules.demand import DemandReading, DemandWindow
from controller.rules.domain import (
    DomainRule,
    rounded,
)
from controller.rules.energy.peak_shaving_config import (
    PeakShavingConfig,
    ProcessLimit,
    ShedLoad,
)
from controller.rules.energy.recent_load import RecentMean
from controller.rules.energy.requirement import Trend
from controller.rules.rule import Now, Proposal, number

__all__ = ["PeakShaving", "PeakShavingConfig", "ProcessLimit", "ShedLoad"]

log = structlog.get_logger(__name__)

_HOUR = 3600.0
_MINUTE_S = 60.0
# A load with a power tag drawing under this share of its kw is not shed: it would save nothing.
_MIN_DRAW_SHARE = 0.05


@dataclass
class _Shed:
    load: ShedLoad
    since: float | None = None  # monotonic time it was shed; None: not shed
    restored_at: float = -math.inf
    sheds: int = 0
    endangered: str | None = None  # why a process limit forbids the shed now
    drawing_kw: float = 0.0  # what shedding it would save now: its draw, or its kw
    saved_kw: float = 0.0  # while shed: what it drew when it was shed
    lasted_s: float | None = None  # how long its last shed held before a process limit ended it


class PeakShaving(DomainRule):
    """Each cycle: the window's average predicted from the energy used so far plus the
    uncontrolled load (measured + what is shed now) for the rest of the window; loads shed in
    list order until what is shed covers the excess, restored last-shed-first, `restore_gap`
    apart, when the rest still covers it with `hysteresis_kw` to spare. A load whose process
    variable nears its limit is released at once and not shed; when all loads together could
    not cover the excess, the limit is unreachable: nothing more is shed, a shed with process
    limits goes back at once and the others, one at a time, when the site's present load
    leaves room for them under the target."""

    config: PeakShavingConfig

    def __init__(self, config: PeakShavingConfig) -> None:
        super().__init__(config, "peak_shaving")
        self.config = config
        # The highest window average of this billing month (kept over a restart: the bill
        # keeps it too) and the month it is of.
        self._peak_set_kw = 0.0
        self._peak_month: str | None = None
        self._restart()

    def _restart(self) -> None:
        self.window = DemandWindow(self.config.demand_config())
        self._loads = [_Shed(load) for load in self.config.loads]
        self._order: list[_Shed] = []  # shed loads, in the order they were shed
        self._trends: dict[str, Trend] = {}
        self._last_ts: int | None = None
        self._last_restore = -math.inf
        self._reading: DemandReading | None = None
        self._measured_kw: float | None = None
        self._needed_kw: float | None = None
        self._uncontrolled_kw: float | None = None
        self._unreachable = False
        self._unreachable_since = -math.inf
        # The uncontrolled load's mean over the last window length (across windows): what the
        # verdict and the restores go by, not the present load, which swings with each machine
        # stroke.
        self._recent = RecentMean(self.config.window)
        # ... and over the last minute: after a ramp-up the window length's mean lags behind,
        # and a restore on it and a dip would come back into the ramp (cell-1-027, 09:36).
        self._minute = RecentMean(_MINUTE_S)
        self._mean_needed_kw: float | None = None
        self._window_start: int | None = None
        self._window_kw: float | None = None  # this window's average, as billed, if it ends now
        self._now = -math.inf  # the present cycle's monotonic time

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # After a stop every load went back to its fallback: nothing is shed any more.
        self._restart()

    @property
    def shed_loads(self) -> list[str]:
        return [shed.load.name for shed in self._order]

    @property
    def shed_kw(self) -> float:
        return sum(shed.saved_kw for shed in self._order)

    @property
    def sheddable_kw(self) -> float:
        """What all loads together can save now: the shed ones what they drew, the others
        what they draw (their kw without a power tag); with `sheddable: now` but
        for those that cannot be shed now (`held`): a load waiting out its `min_between` or
        held by a process limit cannot help now, and counting it puts off the unreachable
        verdict."""
        now_only = self.config.sheddable == "now"
        return sum(
            shed.saved_kw if shed.since is not None else shed.drawing_kw
            for shed in self._loads
            if shed.since is not None or not now_only or self._held(shed) is None
        )

    def _held(self, shed: _Shed) -> str | None:
        """Why a load not shed cannot be shed now, or None."""
        if shed.endangered is not None:
            return f"process limit: {shed.endangered}"
        wait = shed.load.min_between - (self._now - shed.restored_at)
        if shed.restored_at > -math.inf and wait > 0:
            return f"min_between: {wait:.0f} s before it may be shed again"
        return None

    def _feed(self, snapshot: Mapping[str, Sample], power_kw: float) -> None:
        cfg = self.config
        if cfg.energy is not None:
            ts = snapshot[cfg.energy].source_ts
            if self._last_ts is None or ts > self._last_ts:
                self.window.add_energy(ts, number(snapshot, cfg.energy))
                self._last_ts = ts
            return
        ts = snapshot[cfg.power].source_ts
        if self._last_ts is None or ts > self._last_ts:
            self.window.add_power(ts, power_kw)
            self._last_ts = ts

    def _read_draws(self, snapshot: Mapping[str, Sample]) -> None:
        """Each load's draw now (its `power` tag, at most its kw; its kw without one)."""
        for shed in self._loads:
            load = shed.load
            if load.power is None:
                shed.drawing_kw = load.kw
            else:
                drawn = min(max(number(snapshot, load.power), 0.0), load.kw)
                # A load drawing under this share of its kw saves nothing worth a shed.
                shed.drawing_kw = drawn if drawn >= _MIN_DRAW_SHARE * load.kw else 0.0

    def _check_limits(self, snapshot: Mapping[str, Sample]) -> None:
        """Each load's process variables: `endangered` says why a shed must not hold."""
        values: dict[str, float] = {}
        for shed in self._loads:
            for limit in shed.load.limits:
                if limit.tag not in values:
                    values[limit.tag] = number(snapshot, limit.tag)
                    trend = self._trends.setdefault(limit.tag, Trend())
                    trend.add(snapshot[limit.tag].source_ts / 1000, values[limit.tag])
        for shed in self._loads:
            shed.endangered = next(
                (
                    why
                    for limit in shed.load.limits
                    if (why := limit.endangered(values[limit.tag], self._trends[limit.tag].rate))
                ),
                None,
            )

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        measured = number(snapshot, cfg.power)
        self._measured_kw = measured
        self._feed(snapshot, measured)
        self._read_draws(snapshot)
        self._check_limits(snapshot)
        t = self._now = now.monotonic
        # The measurement saw the loads shed until now. In shadow mode nothing is really shed:
        # the measurement is the uncontrolled load.
        counted = self.shed_kw if self.mode == "auto" else 0.0
        uncontrolled = measured + counted
        # A process limit first: released now, whatever the demand, min_shed or restore_gap.
        for shed in list(self._order):
            if shed.endangered is not None:
                log.info(
                    "shed_released_for_process_limit",
                    rule=self.name,
                    load=shed.load.name,
                    why=shed.endangered,
                )
                shed.lasted_s = t - (shed.since if shed.since is not None else t)
                self._restore(shed, t)
        self._restore_at_max_shed(t)
        self._uncontrolled_kw = uncontrolled
        try:
            reading = self.window.reading(now.wall_ms, power_kw=uncontrolled)
        except NoSampleError:
            return self._proposals("waiting for a second energy reading")
        self._reading = reading
        self._follow_window(reading, measured, t, uncontrolled)
        target = self.target_kw
        # The window ends at the target when E + (P_u - S) * R + target * U = target * W, with E
        # the energy over the covered time C, R the time left and U = W - C - R the past the
        # data does not cover (a controller started mid-window), taken at the target itself:
        # filled with the measured (controlled) average, it would feed the sheds back into the
        # prediction and make them chatter. So the shed S needed is:
        remaining = max(reading.remaining_s, 1.0)
        needed = (
            uncontrolled
            - target
            + (reading.energy_kwh * _HOUR - target * reading.covered_s) / remaining
        )
        self._needed_kw = needed
        # The need if the rest of the window runs at the last window length's mean uncontrolled
        # load: a press stroke (+10 kW for a cycle) or a dip between strokes moves the present
        # need, not this one. A verdict needs both needs past the loads, a restore room under
        # both; a shed goes by the present need (a shed on a stroke costs little; a verdict or a
        # restore on one can cost the window: generated cell-1-027).
        mean_needed = needed + self._recent.mean - uncontrolled
        self._mean_needed_kw = mean_needed
        self._judge_reachable(needed, mean_needed, reading, t)
        if self._unreachable and cfg.when_unreachable == "release":
            # Shedding cannot bring this window under the limit: nothing more is shed. What is
            # shed goes back one at a time, but only into headroom (the site's present load and
            # the load under the target): released into the peak itself, it would raise the
            # peak it could not lower (a spike above the limit is when the rule notices). Its
            # max_shed and its process limits still bring it back in any case.
            # A shed with process limits is not held for headroom: its process would end it
            # during the spike anyway, later and with a larger debt (a heater off lets its tank
            # fall below the thermostat's on-point, and the run that follows lasts longer, into
            # the spike). It goes back now, whatever its min_shed, restore_gap apart.
            limited = [shed for shed in self._order if shed.load.limits]
            last = self._order[-1] if self._order else None
            if limited and t - self._last_restore >= cfg.restore_gap:
                log.info(
                    "shed_released_limit_unreachable", rule=self.name, load=limited[-1].load.name
                )
                self._restore(limited[-1], t)
            elif (
                last is not None
                and self._may_restore(last, t)
                and measured + last.load.kw <= target
                and self._recent.mean - (self.shed_kw - last.saved_kw) <= target
            ):
                self._restore(last, t)
            return self._proposals(
                f"limit unreachable: predicted {reading.predicted_kw:.1f} kW uncontrolled against"
                f" {target:g} kW, {needed:.1f} kW to shed and all loads together"
                f" {self.sheddable_kw:.1f} kW; nothing more is shed, sheds come back into headroom"
            )
        if needed > self.shed_kw:
            for shed in self._loads:
                if self.shed_kw >= needed:
                    break
                if (
                    shed.since is None
                    and self._held(shed) is None
                    and shed.drawing_kw > 0
                    and self._holds_through(shed, reading.remaining_s)
                ):
                    shed.since = t
                    shed.saved_kw = shed.drawing_kw
                    shed.sheds += 1
                    self._order.append(shed)
        elif self._order:
            last = self._order[-1]
            if (
                self._may_restore(last, t)
                and self.shed_kw - last.saved_kw
                >= max(
                    needed,
                    mean_needed,
                    needed + self._minute.mean - uncontrolled,
                    self._next_window_need(last, reading),
                )
                + cfg.hysteresis_kw
            ):
                self._restore(last, t)
        unreachable = "limit unreachable, shedding anyway: " if self._unreachable else ""
        return self._proposals(
            f"{unreachable}predicted {reading.predicted_kw:.1f} kW uncontrolled against"
            f" {target:g} kW: {needed:.1f} kW to shed, {self.shed_kw:g} kW shed"
        )

    @property
    def target_kw(self) -> float:
        """What the window is kept under: the limit less the margin, or the peak already set
        this month less the margin when that is higher (a lower window would not lower the
        bill; `peak_already_set`)."""
        cfg = self.config
        return max(cfg.target_kw, self._peak_set_kw - cfg.margin_kw)

    def _follow_window(
        self, reading: DemandReading, measured: float, t: float, uncontrolled: float
    ) -> None:
        """A window that ended sets the month's peak if it was higher; the window's recent
        uncontrolled load is kept for the unreachable verdict."""
        cfg = self.config
        start = reading.window_start_ms
        if (
            self._window_start is not None
            and start != self._window_start
            and self._window_kw is not None
        ):
            self._close_window(self._window_start, self._window_kw)
            # A new window is judged afresh: a verdict said late in the last window (its energy
            # already past the target) does not give up this one (cell-1-027: said at 09:46,
            # held over the 10:00 window, billed 164.5 kW).
            self._unreachable_since = -math.inf
        if cfg.counts_peak_set:
            month = datetime.fromtimestamp(start / 1000, self.window.zone).strftime("%Y-%m")
            if month != self._peak_month:
                self._peak_month, self._peak_set_kw = month, 0.0
        self._window_start = start
        # What the window averages if the present (measured) load runs to its end; at its last
        # cycle, the billed average within a cycle's energy.
        self._window_kw = (reading.energy_kwh * _HOUR + measured * reading.remaining_s) / (
            cfg.window
        )
        self._recent.add(t, uncontrolled)
        self._minute.add(t, uncontrolled)

    def _close_window(self, start_ms: int, average_kw: float) -> None:
        cfg = self.config
        if not cfg.counts_peak_set:
            return
        month = datetime.fromtimestamp(start_ms / 1000, self.window.zone).strftime("%Y-%m")
        if month == self._peak_month and average_kw > self._peak_set_kw:
            self._peak_set_kw = average_kw
            if average_kw > cfg.limit_kw:
                log.info(
                    "peak_set_above_limit",
                    rule=self.name,
                    peak_kw=round(average_kw, 1),
                    limit_kw=cfg.limit_kw,
                    window_start=start_ms,
                )

    def _judge_reachable(
        self, needed: float, mean_needed: float, reading: DemandReading, t: float
    ) -> None:
        """Unreachable when all loads together cover neither the present need nor
        `mean_needed` (the need if the rest of the window runs at the last window length's mean
        uncontrolled load): a press stroke lifts the present need for a cycle, not the mean, and
        a verdict on it would give up a whole window. Nothing more is shed then. Reachable again
        only after `unreachable_dwell`, and when either need is `hysteresis_kw` under what the
        loads can shed (the present one: a load that has really fallen; the mean: a swing whose
        tops alone are out of reach)."""
        cfg = self.config
        sheddable = self.sheddable_kw
        lower = min(needed, mean_needed)
        if not self._unreachable and lower > sheddable:
            self._unreachable = True
            self._unreachable_since = t
            log.warning(
                "peak_limit_unreachable",
                rule=self.name,
                needed_kw=round(needed, 1),
                mean_needed_kw=round(mean_needed, 1),
                loads_kw=round(sheddable, 1),
                target_kw=self.target_kw,
                window_end=reading.window_end_ms,
            )
        elif (
            self._unreachable
            and t - self._unreachable_since >= cfg.dwell_s
            and lower <= sheddable - cfg.hysteresis_kw
        ):
            self._unreachable = False
            log.info("peak_limit_reachable", rule=self.name, needed_kw=round(needed, 1))

    def _holds_through(self, shed: _Shed, remaining_s: float) -> bool:
        """With `hold_through_window`, a load with limits only when it can stay shed to the
        window's end (its max_shed, and how long its last shed held before its process ended
        it) and no other load with limits is shed; every other load always. A heater released
        within its window reheats in it (generated cell-1-004: both tank heaters shed at 15:30,
        released by their tanks at 15:40, reheating together at 69 kW to 15:58), and two
        released at the same window's end reheat together in the next."""
        load = shed.load
        if not self.config.hold_through_window or not load.limits:
            return True
        if any(other.load.limits for other in self._order):
            return False
        if load.max_shed is not None and load.max_shed < remaining_s:
            return False
        return shed.lasted_s is None or shed.lasted_s >= remaining_s

    def _next_window_need(self, shed: _Shed, reading: DemandReading) -> float:
        """What must stay shed for the next billing window to end at the target, at the last
        window length's mean uncontrolled load, with `shed` back and drawing unopposed into it
        for as long as its `min_between` forbids shedding it again (at most the window; after
        that the rule may shed it again). A load restored on the room this window's banked
        energy leaves draws in the next one too (heatwave, 08:26: a heater restored in a
        window's last minutes reheated into the next with the car, where neither could be
        shed again). -inf when its `min_between` ends within this window, with sliding windows
        (no next window: the one judged already reaches `horizon` ahead), or without
        `judge_next_window`."""
        cfg = self.config
        overlap = min(shed.load.min_between - reading.remaining_s, cfg.window)
        if not cfg.judge_next_window or cfg.alignment != "fixed" or overlap <= 0:
            return -math.inf
        # The next window's average with the rest shed all window and `shed` shed again after
        # `overlap`: mean - rest - saved * (window - overlap) / window <= target.
        return self._recent.mean - self.target_kw - shed.saved_kw * (1 - overlap / cfg.window)

    def _may_restore(self, shed: _Shed, t: float) -> bool:
        held = t - (shed.since if shed.since is not None else t) < shed.load.min_shed
        return not held and t - self._last_restore >= self.config.restore_gap

    def _restore_at_max_shed(self, t: float) -> None:
        """Each load is back by its `max_shed` at the latest; loads due within `restore_gap` of
        each other come back `restore_gap` apart, the earlier ones brought forward (not before
        their `min_shed`)."""
        gap = self.config.restore_gap
        due = sorted(
            (
                (shed.since + shed.load.max_shed, shed)
                for shed in self._order
                if shed.since is not None and shed.load.max_shed is not None
            ),
            key=lambda item: item[0],
        )
        if not due:
            return
        planned = [deadline for deadline, _ in due]
        for k in range(len(planned) - 2, -1, -1):
            earliest = (due[k][1].since or 0.0) + due[k][1].load.min_shed
            planned[k] = max(min(planned[k], planned[k + 1] - gap), earliest)
        for at, (_, shed) in zip(planned, due, strict=True):
            if t >= at:
                self._restore(shed, t)

    def _restore(self, shed: _Shed, t: float) -> None:
        shed.since = None
        shed.saved_kw = 0.0
        shed.restored_at = t
        self._last_restore = t
        self._order.remove(shed)

    def _proposals(self, reason: str) -> list[Proposal]:
        out: list[Proposal] = []
        for shed in self._loads:
            load = shed.load
            if shed.since is not None:
                out.append(self.propose(load.tag, load.shed_value, f"shed {load.name}: {reason}"))
            elif load.restore_value is not None:
                why = f"{load.name} not shed: {shed.endangered}; " if shed.endangered else ""
                out.append(self.propose(load.tag, load.restore_value, why + reason))
        return out

    def detail(self) -> dict[str, Any]:
        reading = self._reading
        remaining_share = 0.0 if reading is None else reading.remaining_s / self.config.window
        predicted_u = None if reading is None else reading.predicted_kw
        counted = self.shed_kw if self.mode == "auto" else 0.0
        return {
            "window_start": None if reading is None else reading.window_start_ms,
            "window_end": None if reading is None else reading.window_end_ms,
            "energy_kwh": rounded(None if reading is None else reading.energy_kwh),
            "average_kw": rounded(None if reading is None else reading.average_kw),
            "measured_kw": rounded(self._measured_kw),
            "uncontrolled_kw": rounded(self._uncontrolled_kw),
            "predicted_uncontrolled_kw": rounded(predicted_u),
            "predicted_kw": rounded(
                None if predicted_u is None else predicted_u - counted * remaining_share
            ),
            "target_kw": self.target_kw,
            "peak_set_kw": rounded(self._peak_set_kw if self.config.counts_peak_set else None),
            "needed_kw": rounded(self._needed_kw),
            "mean_needed_kw": rounded(self._mean_needed_kw),
            "shed_kw": rounded(self.shed_kw),
            "sheddable_kw": rounded(self.sheddable_kw),
            "shed": self.shed_loads,
            "unreachable": self._unreachable,
            "blocked": {
                shed.load.name: shed.endangered
                for shed in self._loads
                if shed.endangered is not None
            },
            # the loads not shed that cannot be shed now, and why (`sheddable: now` leaves
            # them out of sheddable_kw)
            "held": {
                shed.load.name: why
                for shed in self._loads
                if shed.since is None and (why := self._held(shed)) is not None
            },
        }

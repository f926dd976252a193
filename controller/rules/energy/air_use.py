"""A new compressed-air leak as a rise of the air used over earlier windows of the same
production mode, compared at the same header pressure and never closer than the measurement
can tell.

Its own module because it is a detector with its own state (windows per mode, the moving window,
the rise's timer and latch) that the compressed_air rule feeds once a cycle. docs/rules.md,
"compressed_air", "Air use rise", gives the method.

- **What is measured.** With a header flow meter (`flow`), the mean flow of the window as a
  share of the rated flow: it does not depend on the compressor's cycles. Without one, the duty
  (loaded share of whole load/unload cycles): a loaded contact read every poll places each
  load and unload to within one poll, so a window's duty is known to one poll per cycle (a
  0.2 s error is nothing on a 60 s cycle, 5 s on a 210 s cycle is 2.4 % of capacity: the whole
  of a small leak). That resolution is added to the threshold.
- **At the same pressure.** Leaks flow like orifices, in proportion to the absolute header
  pressure; a window learned at 6.5 bar and one judged at 7.5 bar differ by the leakage's
  growth (a sixth of it on 20 % leakage: 2.7 % of capacity) with nothing new. Each earlier
  window is moved to the present pressure along the leakage line measured with no production
  (use / absolute pressure), before any such window along `alarm_above` (the typical plant's
  leakage): a pressure the rule itself raised (a load-step hold, the fast path) is not a leak.
- **What the machines' work explains.** In production the machines' air use wanders with their
  work by more than a small leak. With `explained_by` (each machine's power, a part rate) the
  flow is fitted per mode on those signals, poll by poll over the mode's learned windows
  (linear_fit.py), and the rise is judged on what they do not explain: the windows' flow less
  the fitted slopes times their mean work. A leak draws air with no work behind it.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.rules.domain import ProductionMode
from controller.rules.energy.linear_fit import Moments, combined
from controller.rules.energy.load_cycles import LoadCycle, LoadUnloadCycles, leak_fraction
from controller.rules.energy.plausible_work import PlausibleWork

P_ATM_BAR = 1.01325
_MAD_TO_SIGMA = 1.4826  # the median absolute deviation of normal data, in standard deviations


def robust_spread(values: Iterable[float], median: float) -> float:
    """The spread of `values` as a standard deviation, from their median absolute deviation
    (robust: a window with a burst of air use does not widen it much)."""
    return _MAD_TO_SIGMA * statistics.median(abs(v - median) for v in values)


@dataclass(frozen=True, slots=True)
class UseWindow:
    """One window's air use (share of rated flow), its mean header pressure (bar abs, None
    when no pressure is known) and, with `explained_by`, its mean work and the sums its polls
    add to the mode's fit."""

    use: float
    pressure_abs: float | None
    work: tuple[float, ...] = ()
    moments: Moments | None = None


@dataclass(frozen=True, slots=True)
class RiseSettings:
    """The detector's settings (the leak test's `rise_*` keys, in seconds and shares)."""

    rise_above: float | None  # floor in production; None: production not watched
    test_rise_above: float | None  # floor with no production; None: not watched
    sigmas: float
    window_s: float  # in production
    test_window_s: float  # with no production
    hold_s: float
    history: int
    min_history: int
    prior_leakage: float  # leakage share assumed before one is measured (alarm_above)
    by_flow: bool = False  # a header flow meter: judge its mean flow, not the duty
    explained: int = 0  # signals the machines' air follows (`explained_by`); needs by_flow
    explained_rise_above: float | None = None  # the lowest production floor when explained
    explained_names: tuple[str, ...] = ()  # the signals' tags, for the log


@dataclass(frozen=True, slots=True)
class Measured:
    """A span's air use (share of rated flow), its mean header pressure (bar abs) and what the
    measurement cannot resolve (share of rated flow)."""

    use: float
    pressure_abs: float | None
    resolution: float
    work: tuple[float, ...] = ()
    moments: Moments | None = None


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float
    flow: float | None  # share of rated flow
    pressure_abs: float | None
    work: tuple[float, ...] | None = None  # the `explained_by` signals; None: one unread


class AirUseRise:
    """Fed once a cycle; `alarm` latches a rise held `hold_s`, `estimate` is the last judgement."""

    def __init__(self, settings: RiseSettings) -> None:
        self.settings = settings
        self.history: dict[ProductionMode, deque[UseWindow]] = {}
        self.alarm = False
        self.raised_in: ProductionMode | None = None  # the mode whose rise raised the alarm
        self.estimate: dict[str, Any] | None = None
        # The last quiet window with no production: the leakage line's point.
        self.leakage: UseWindow | None = None
        self._samples: deque[_Sample] = deque()
        self._window_start: float | None = None
        self._rise_since: float | None = None
        self.plausible = PlausibleWork(settings.explained_names, settings.window_s)

    def new_state(self) -> None:
        """Another mode (or a gap in the inputs): windows and the timer start again."""
        self._window_start = None
        self._rise_since = None
        self._samples.clear()

    def leakage_per_bar(self, pressure_abs: float) -> float:
        """Leakage (share of rated flow) per bar of absolute header pressure."""
        if self.leakage is not None and self.leakage.pressure_abs:
            return self.leakage.use / self.leakage.pressure_abs
        return self.settings.prior_leakage / pressure_abs

    def update(
        self,
        t: float,
        *,
        mode: ProductionMode,
        producing: bool,
        begin: float,
        flow: float | None,
        pressure_abs: float | None,
        cycles: LoadUnloadCycles,
        loaded_kw: float,
        rated_flow_m3_min: float | None,
        work: tuple[float, ...] | None = None,
    ) -> None:
        """One cycle: `flow` the header flow as a share of rated (None: no good reading;
        without a flow meter the duty of `cycles` is judged), `pressure_abs` the header
        pressure, `begin` when this mode's windows may start (its start plus the settle),
        `work` the `explained_by` signals (None: one of them unread)."""
        cfg = self.settings
        if work is not None:
            work = self.plausible.check(t, work, self._tops(self.history.get(mode, ())))
        self._samples.append(_Sample(t, flow, pressure_abs, work))
        window = cfg.window_s if producing else cfg.test_window_s
        while self._samples and self._samples[0].t < t - max(cfg.window_s, cfg.test_window_s):
            self._samples.popleft()
        if t < begin:
            return
        if self._window_start is None:
            self._window_start = t
        history = self.history.setdefault(mode, deque())
        floor = cfg.rise_above if producing else cfg.test_rise_above
        start = max(t - window, begin)
        # Judged on a full window only: just after a mode starts a few samples are no mean.
        full = t - start >= 0.8 * window
        recent = self._measure(start, t, begin, cfg.by_flow, cycles, fit=False) if full else None
        if floor is not None and recent is not None and len(history) >= cfg.min_history:
            self._judge(t, history, floor, recent, producing=producing, mode=mode)
            if self.estimate is not None:
                rise = max(0.0, self.estimate["rise"])
                self.estimate["loaded_kw"] = round(loaded_kw, 2)
                self.estimate["kw_lost"] = round(rise * loaded_kw, 2)
                if rated_flow_m3_min is not None:
                    self.estimate["leak_m3_min"] = round(rise * rated_flow_m3_min, 3)
        if t - self._window_start >= window:
            whole = self._measure(self._window_start, t, begin, cfg.by_flow, cycles)
            # Standing leakage (`leakage_high`) is the normal the windows learn; a rise is not,
            # nor a window half-way to one (a leak filling the moving window).
            if (
                whole is not None
                and not self.alarm
                and self._rise_since is None
                and not self._suspect(history, whole)
            ):
                learned = UseWindow(whole.use, whole.pressure_abs, whole.work, whole.moments)
                history.append(learned)
                while len(history) > cfg.history:
                    history.popleft()
                if not producing:
                    self.leakage = learned
            self._window_start = t

    def _measure(
        self,
        start: float,
        t: float,
        begin: float,
        by_flow: bool,
        cycles: LoadUnloadCycles,
        *,
        fit: bool = True,
    ) -> Measured | None:
        """The use, mean pressure and resolution over [start, t] when the span is at least 80 %
        covered (by samples with a flow, or by the whole cycles that ended in it and began
        after `begin`), else None. With `explained_by` also the mean work, and with `fit` the
        sums a learned window adds to its mode's fit."""
        span = t - start
        if span <= 0:
            return None
        samples = [s for s in self._samples if s.t > start]
        pressures = [s.pressure_abs for s in samples if s.pressure_abs is not None]
        pressure = statistics.fmean(pressures) if pressures else None
        if by_flow:
            explained = self.settings.explained
            good = [
                s for s in samples if s.flow is not None and (not explained or s.work is not None)
            ]
            covered = samples[-1].t - samples[0].t + _poll(samples) if samples else 0.0
            if not good or len(good) < 0.8 * len(samples) or covered < 0.8 * span:
                return None
            use = statistics.fmean(s.flow for s in good if s.flow is not None)
            if not explained:
                return Measured(use, pressure, 0.0)
            works = [s.work for s in good if s.work is not None]
            mean_work = tuple(statistics.fmean(column) for column in zip(*works, strict=True))
            if not fit:
                return Measured(use, pressure, 0.0, mean_work)
            moments = Moments(explained)
            for s in good:
                if s.work is not None and s.flow is not None:
                    moments.add(s.work, s.flow)
            return Measured(use, pressure, 0.0, mean_work, moments)
        whole: list[LoadCycle] = [
            c for c in cycles.ended_after(start) if c.end - c.total_s >= begin
        ]
        total = sum(c.total_s for c in whole)
        # The cycles that ended in the span: they cover it but for the one running at its end.
        if not whole or total < 0.8 * span - max(c.total_s for c in whole):
            return None
        # Each load and unload is placed to within one poll: one poll per cycle.
        resolution = _poll(samples) * len(whole) / total
        return Measured(leak_fraction(whole), pressure, resolution)

    def _judge(
        self,
        t: float,
        history: deque[UseWindow],
        floor: float,
        measured: Measured,
        *,
        producing: bool,
        mode: ProductionMode,
    ) -> None:
        cfg = self.settings
        use, pressure, resolution = measured.use, measured.pressure_abs, measured.resolution
        slopes = self._slopes(history)
        # What the machines' work explains is taken off each window (nothing without a fit).
        expected = [self._at(w, pressure) - _dot(slopes, w.work) for w in history]
        explained = _dot(slopes, measured.work)
        residual = statistics.median(expected)
        spread = robust_spread(expected, residual)
        if producing and slopes and cfg.explained_rise_above is not None:
            floor = self._explained_floor(history, pressure, floor, spread)
        rise_above = max(floor, cfg.sigmas * spread) + resolution
        baseline = residual + explained  # the use expected now, at this work
        rise = use - baseline
        self.estimate = {
            "method": "air_use_rise",
            "state": "production" if producing else "no-production",
            "mode": list(mode),
            "use": round(use, 4),
            "baseline_use": round(baseline, 4),
            "rise": round(rise, 4),
            "rise_above": round(rise_above, 4),
            "spread": round(spread, 4),
            "resolution": round(resolution, 4),
            "pressure_bar_abs": None if pressure is None else round(pressure, 3),
        }
        if cfg.explained:
            self.estimate["explained_use"] = round(explained, 4)
        if rise >= rise_above:
            if self._rise_since is None:
                self._rise_since = t
            if t - self._rise_since >= cfg.hold_s and not self.alarm:
                self.alarm = True
                self.raised_in = mode
        else:
            self._rise_since = None
            # Cleared only where it was raised: a mode first learned after the leak opened
            # holds the leak in its normal and shows no rise (a leak is gone when the mode
            # that saw it come sees it go).
            if rise < rise_above / 2 and mode == self.raised_in:
                self.alarm = False
                self.raised_in = None

    def _suspect(self, history: deque[UseWindow], whole: Measured) -> bool:
        """A whole window risen half the last threshold over the learned ones."""
        if len(history) < self.settings.min_history or self.estimate is None:
            return False
        slopes = self._slopes(history)
        expected = statistics.median(
            self._at(w, whole.pressure_abs) - _dot(slopes, w.work) for w in history
        )
        rise = whole.use - _dot(slopes, whole.work) - expected
        return bool(rise >= self.estimate["rise_above"] / 2)

    def _explained_floor(
        self, history: deque[UseWindow], pressure: float | None, floor: float, spread: float
    ) -> float:
        """The production floor lowered by the share of the flow's wander the fit explains,
        to `explained_rise_above` at least: where the work explains nothing, the flow
        alone's floor stands."""
        lowest = self.settings.explained_rise_above or floor
        uses = [self._at(w, pressure) for w in history]
        wander = robust_spread(uses, statistics.median(uses))
        if wander <= 0.0:
            return floor
        return max(lowest, floor * min(1.0, spread / wander))

    def _slopes(self, history: deque[UseWindow]) -> tuple[float, ...]:
        """The mode's fit of the flow on the work, poll by poll over its learned windows."""
        size = self.settings.explained
        if not size:
            return ()
        return combined((w.moments for w in history if w.moments is not None), size).slopes()

    def _tops(self, history: Iterable[UseWindow]) -> list[float] | None:
        """The highest value each work signal reached in the mode's learned windows."""
        tops = [w.moments.top for w in history if w.moments is not None]
        return [max(column) for column in zip(*tops, strict=True)] if tops else None

    def _at(self, window: UseWindow, pressure: float | None) -> float:
        """An earlier window's use moved to `pressure` along the leakage line."""
        if pressure is None or window.pressure_abs is None:
            return window.use
        return window.use + self.leakage_per_bar(pressure) * (pressure - window.pressure_abs)


def _dot(slopes: tuple[float, ...], work: tuple[float, ...]) -> float:
    """The air the work explains (nothing without a fit or without the window's work)."""
    if not slopes or len(work) != len(slopes):
        return 0.0
    return sum(b * x for b, x in zip(slopes, work, strict=True))


def _poll(samples: list[_Sample]) -> float:
    """The longest interval between samples (the poll, or a late one)."""
    return max((b.t - a.t for a, b in itertools.pairwise(samples)), default=0.0)

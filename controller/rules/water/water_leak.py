"""Water leaks by minimum night flow: the idle flow against a baseline learned from earlier
idle windows of the same production mode. docs/rules.md, "water_leak", gives the method,
source and parameters."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, PositiveDuration, StrictModel, format_duration
from controller.model import Sample
from controller.rules.average import MovingAverage, MovingAverageConfig
from controller.rules.blocks import NoSampleError
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionMode,
    ProductionSignal,
    rounded,
    signal_inputs,
)
from controller.rules.rule import Now, Proposal, number


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between ranks (the "linear"
    method of NumPy and of Excel's PERCENTILE.INC)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class IsolationValve(StrictModel):
    """A valve the rule closes on a leak alarm; only when `enabled` (a closed main valve stops
    the whole site's water)."""

    tag: TagKey
    enabled: bool = False
    close_value: OutputValue = False
    open_value: OutputValue = True
    # Close also while producing; by default only in the idle windows the leak was seen in.
    in_production: bool = False


class WaterLeakConfig(RuleCommon):
    """Alarm when the idle flow stays above the baseline learned from earlier idle windows."""

    kind: Literal["water_leak"]
    flow: TagKey  # main water flow, m3/h
    # Metered flows behind the main meter (tower makeup, process feeds): watched flow is the
    # main flow less these, the flow nobody accounts for.
    submeters: list[TagKey] = Field(default_factory=list)
    production: ProductionSignal  # idle while it is off
    watch: Literal["idle", "always"] = "idle"
    learn_window: PositiveDuration = 3600.0  # the "rolling hour" whose minimum is learned
    percentile: float = Field(default=20.0, ge=0, le=100)
    history: int = Field(default=7, ge=1)  # windows kept per production mode (UKWIR: 7 days)
    watch_window: PositiveDuration = 900.0
    threshold_m3_h: float = Field(gt=0)
    duration: Duration = 900.0
    initial_baseline_m3_h: float | None = Field(default=None, ge=0)
    isolation: IsolationValve | None = None

    @model_validator(mode="after")
    def _consistent(self) -> WaterLeakConfig:
        if self.watch_window > self.learn_window:
            raise ValueError("watch_window must not be longer than learn_window")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("flow", self.flow)]
        tags += [(f"submeters[{i}]", tag) for i, tag in enumerate(self.submeters)]
        return tags + signal_inputs("production", self.production)

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        valve = self.isolation
        if valve is None or not valve.enabled:
            return []
        return [
            ("isolation.close_value", valve.tag, valve.close_value),
            ("isolation.open_value", valve.tag, valve.open_value),
        ]


class _Resampled:
    """A moving average fed with one-minute-scale means instead of every cycle's reading: the
    block's cost grows with its samples, and a one-hour window at a 1 s cycle would hold 3600.
    Readings are averaged over `window / 60` (time-weighted) and each mean is added once."""

    def __init__(self, window: float) -> None:
        self.average = MovingAverage(MovingAverageConfig(window=format_duration(window)))
        self.step = window / 60
        self._start: float | None = None
        self._last: tuple[float, float] | None = None
        self._sum = 0.0

    def update(self, t: float, value: float) -> float | None:
        """Add a reading; the average over the window, None until a first mean is in."""
        if self._start is None or self._last is None:
            self._start, self._last, self._sum = t, (t, value), 0.0
        else:
            last_t, last_value = self._last
            self._sum += last_value * (t - last_t)
            self._last = (t, value)
            if t - self._start >= self.step:
                self.average.add(t, self._sum / (t - self._start))
                self._start, self._sum = t, 0.0
        try:
            return self.average.value(t)
        except NoSampleError:
            return None


class _Episode:
    """One stretch of one production mode and what it has shown."""

    def __init__(
        self, mode: ProductionMode, producing: bool, start: float, config: WaterLeakConfig
    ) -> None:
        self.mode = mode
        self.producing = producing
        self.start = start
        self.learn = _Resampled(config.learn_window)
        self.watch = _Resampled(config.watch_window)
        self.minimum: float | None = None
        self.suspect = False  # a leak was suspected during it: not learned


class WaterLeak(DomainRule):
    """Minimum night flow: the baseline is the `percentile` of the minimum rolling-hour flow of
    earlier windows of the same production mode (the machines in the same states); flow
    staying `threshold_m3_h` above it for `duration` is a leak."""

    config: WaterLeakConfig

    def __init__(self, config: WaterLeakConfig) -> None:
        super().__init__(config, "water_leak")
        self.config = config
        self.minima: dict[ProductionMode, deque[float]] = {}
        self._episode: _Episode | None = None
        self._above_since: float | None = None
        self._alarm = False
        self._flow: float | None = None
        self._watched: float | None = None
        self._excess: float | None = None
        self._baseline: float | None = None

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # A gap in the flow breaks the window: it is not learned; the alarm stays latched.
        self._episode = None
        self._above_since = None

    def baseline(self, mode: ProductionMode, producing: bool) -> float | None:
        minima = self.minima.get(mode)
        if minima:
            return percentile(list(minima), self.config.percentile)
        return None if producing else self.config.initial_baseline_m3_h

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        flow = number(snapshot, cfg.flow) - sum(number(snapshot, tag) for tag in cfg.submeters)
        self._flow = flow
        producing = cfg.production.on(snapshot)
        mode = tuple(round(number(snapshot, tag), 3) for tag in cfg.production.tags)
        episode = self._episode
        if episode is None or episode.mode != mode:
            if episode is not None:
                self._learn(episode)
            episode = self._episode = _Episode(mode, producing, t, cfg)
            self._above_since = None
            self._excess = None
        learned = episode.learn.update(t, flow)
        watched = self._watched = episode.watch.update(t, flow)
        if learned is not None and t - episode.start >= cfg.learn_window:
            episode.minimum = learned if episode.minimum is None else min(episode.minimum, learned)
        baseline = self._baseline = self.baseline(mode, producing)
        watching = cfg.watch == "always" or not producing
        if (
            watching
            and baseline is not None
            and watched is not None
            and t - episode.start >= cfg.watch_window
        ):
            self._excess = excess = watched - baseline
            if excess >= cfg.threshold_m3_h:
                episode.suspect = True
                if self._above_since is None:
                    self._above_since = t
                if t - self._above_since >= cfg.duration:
                    self._alarm = True
            else:
                self._above_since = None
                if excess < cfg.threshold_m3_h / 2:
                    self._alarm = False
        if self._alarm:
            episode.suspect = True
            estimate = {
                "leak_m3_h": rounded(self._excess),
                "flow_m3_h": rounded(watched),
                "baseline_m3_h": rounded(baseline),
                "mode": list(mode),
                "basis": f"{cfg.percentile:g}th percentile of the minimum rolling"
                f" {format_duration(cfg.learn_window)} of earlier windows in this mode",
            }
            self.set_alarm(
                "leak",
                True,
                f"water flow {watched or 0.0:.2f} m3/h, {self._excess or 0.0:.2f} m3/h above the"
                f" learned baseline {baseline or 0.0:.2f} m3/h: probable leak",
                estimate,
            )
        else:
            self.set_alarm("leak", False)
        return self._valve(producing)

    def _learn(self, episode: _Episode) -> None:
        if episode.minimum is None or episode.suspect:
            return
        minima = self.minima.setdefault(episode.mode, deque())
        minima.append(episode.minimum)
        while len(minima) > self.config.history:
            minima.popleft()

    def _valve(self, producing: bool) -> list[Proposal]:
        valve = self.config.isolation
        if valve is None or not valve.enabled:
            return []
        if self._alarm and (valve.in_production or not producing):
            return [self.propose(valve.tag, valve.close_value, "leak alarm: isolating")]
        return [self.propose(valve.tag, valve.open_value, "no leak alarm")]

    def detail(self) -> dict[str, Any]:
        episode = self._episode
        return {
            "flow_m3_h": rounded(self._flow),
            "watched_m3_h": rounded(self._watched),
            "mode": None if episode is None else list(episode.mode),
            "producing": None if episode is None else episode.producing,
            "baseline_m3_h": rounded(self._baseline),
            "excess_m3_h": rounded(self._excess),
            "episode_minimum_m3_h": rounded(None if episode is None else episode.minimum),
            "learned_minima": [
                {"mode": list(mode), "minima": [round(m, 4) for m in minima]}
                for mode, minima in self.minima.items()
            ],
            "leak": self._alarm,
        }

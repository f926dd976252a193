"""The water rules: leak detection by minimum night flow, cooling-tower blowdown held just under
the chemistry limit, and rinse water reused while it is clean enough. docs/rules.md, "Energy
and water rules", gives each one's method, source and parameters."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, PositiveDuration, StrictModel, format_duration
from controller.model import Sample
from controller.rules.average import MovingAverage, MovingAverageConfig
from controller.rules.blocks import Hysteresis, HysteresisConfig, NoSampleError
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    present_number,
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


# --- leaks: minimum night flow --------------------------------------------------------------


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


# The values of the production tags: which machines are in which state.
Mode = tuple[float, ...]


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

    def __init__(self, mode: Mode, producing: bool, start: float, config: WaterLeakConfig) -> None:
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
        self.minima: dict[Mode, deque[float]] = {}
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

    def baseline(self, mode: Mode, producing: bool) -> float | None:
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


# --- cooling tower blowdown -----------------------------------------------------------------


def cycles_of_concentration(tower_us_cm: float, makeup_us_cm: float) -> float:
    """Cycles of concentration: dissolved solids (conductivity) in the tower over the makeup's."""
    return tower_us_cm / makeup_us_cm


def blowdown_for_cycles(evaporation_m3_h: float, cycles: float) -> float:
    """Blowdown (with drift) that holds `cycles`: B = E / (C - 1), from makeup = E + B and
    makeup * C_makeup = B * C_tower (the solids balance)."""
    if cycles <= 1:
        raise ValueError("cycles of concentration must be above 1")
    return evaporation_m3_h / (cycles - 1)


def makeup_for_cycles(evaporation_m3_h: float, cycles: float) -> float:
    """Makeup at `cycles`: M = E * C / (C - 1)."""
    return evaporation_m3_h + blowdown_for_cycles(evaporation_m3_h, cycles)


class BlowdownConfig(RuleCommon):
    """Bleed when conductivity reaches `limit - margin`, stop `deadband` lower."""

    kind: Literal["cooling_tower_blowdown"]
    conductivity: TagKey  # tower water, uS/cm
    valve: TagKey
    open_value: OutputValue = 100.0
    closed_value: OutputValue = 0.0
    limit_us_cm: float = Field(gt=0)  # the water chemistry's maximum
    margin_us_cm: float = Field(default=0.0, ge=0)
    deadband_us_cm: float = Field(gt=0)
    min_open: Duration = 0.0
    min_closed: Duration = 0.0
    max_open: PositiveDuration  # bleed time limit: open longer than this is a fault
    makeup_us_cm: float | None = Field(default=None, gt=0)  # for the cycles estimate
    makeup_flow: TagKey | None = None  # m3/h, for the evaporation and blowdown estimates
    blowdown_flow: TagKey | None = None  # m3/h: evaporation = makeup - blowdown when given

    @model_validator(mode="after")
    def _band(self) -> BlowdownConfig:
        if self.margin_us_cm + self.deadband_us_cm >= self.limit_us_cm:
            raise ValueError("margin_us_cm + deadband_us_cm must be below limit_us_cm")
        return self

    @property
    def open_at(self) -> float:
        return self.limit_us_cm - self.margin_us_cm

    @property
    def close_at(self) -> float:
        return self.open_at - self.deadband_us_cm

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("conductivity", self.conductivity)]
        if self.makeup_flow is not None:
            tags.append(("makeup_flow", self.makeup_flow))
        if self.blowdown_flow is not None:
            tags.append(("blowdown_flow", self.blowdown_flow))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [
            ("open_value", self.valve, self.open_value),
            ("closed_value", self.valve, self.closed_value),
        ]


class CoolingTowerBlowdown(DomainRule):
    """Conductivity held in a band just under the chemistry limit by an on/off bleed valve
    with minimum open and closed times; a valve open longer than `max_open` raises
    `bleed_time_limit`, conductivity over the limit raises `conductivity_high`."""

    config: BlowdownConfig

    def __init__(self, config: BlowdownConfig) -> None:
        super().__init__(config, "cooling_tower_blowdown")
        self.config = config
        self._band = Hysteresis(HysteresisConfig(high=config.open_at, low=config.close_at))
        self._over = Hysteresis(
            HysteresisConfig(high=config.limit_us_cm, low=config.close_at, initial=False)
        )
        self.valve = MinOnOffTimes(self._cycling(), state=False, since=0.0)
        self._conductivity: float | None = None
        self._makeup: float | None = None
        self._blowdown: float | None = None
        self._t = 0.0

    def _cycling(self) -> MinOnOffConfig:
        return MinOnOffConfig(
            min_on=format_duration(self.config.min_open),
            min_off=format_duration(self.config.min_closed),
        )

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        present = present_number(snapshot, self.config.valve)
        closed = self.config.closed_value
        is_open = present is not None and present != float(closed)
        self.valve = MinOnOffTimes(self._cycling(), state=is_open, since=now.monotonic)
        self._band.output = is_open

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = self._t = now.monotonic
        conductivity = self._conductivity = number(snapshot, cfg.conductivity)
        if cfg.makeup_flow is not None:
            self._makeup = number(snapshot, cfg.makeup_flow)
        if cfg.blowdown_flow is not None:
            self._blowdown = number(snapshot, cfg.blowdown_flow)
        want = self._band.update(conductivity)
        decision = self.valve.request(t, want)
        reason = f"conductivity {conductivity:.0f} uS/cm, band {cfg.close_at:g}-{cfg.open_at:g}" + (
            f", {decision.reason}" if decision.deferred else ""
        )
        open_s = t - self.valve.since if self.valve.state else 0.0
        if self.valve.state and open_s >= cfg.max_open:
            self.set_alarm(
                "bleed_time_limit",
                True,
                f"bleed valve open for {format_duration(round(open_s))}, over its limit of"
                f" {format_duration(cfg.max_open)}: a stuck valve or sensor, or a fault",
                {"open_s": round(open_s), "conductivity_us_cm": round(conductivity, 1)},
            )
        else:
            self.set_alarm("bleed_time_limit", False)
        if self._over.update(conductivity):
            self.set_alarm(
                "conductivity_high",
                True,
                f"tower conductivity {conductivity:.0f} uS/cm over its limit {cfg.limit_us_cm:g}",
                {"conductivity_us_cm": round(conductivity, 1), "limit_us_cm": cfg.limit_us_cm},
            )
        else:
            self.set_alarm("conductivity_high", False)
        value = cfg.open_value if self.valve.state else cfg.closed_value
        return [self.propose(cfg.valve, value, reason)]

    def estimates(self) -> dict[str, float | None]:
        """Cycles of concentration and, with a makeup flow, the mass balance at them."""
        cfg = self.config
        if self._conductivity is None or cfg.makeup_us_cm is None:
            return {"cycles": None}
        cycles = cycles_of_concentration(self._conductivity, cfg.makeup_us_cm)
        out: dict[str, float | None] = {"cycles": round(cycles, 3)}
        if self._makeup is not None and cycles > 1:
            # Makeup = evaporation + blowdown (+ drift, leaks); without a blowdown meter, at
            # steady state blowdown + drift = makeup / C and the rest evaporates.
            if self._blowdown is not None:
                evaporation = max(0.0, self._makeup - self._blowdown)
            else:
                evaporation = self._makeup * (1 - 1 / cycles)
            out["evaporation_m3_h"] = round(evaporation, 4)
            out["blowdown_m3_h"] = round(blowdown_for_cycles(evaporation, cycles), 4)
            limit_cycles = cycles_of_concentration(cfg.open_at, cfg.makeup_us_cm)
            if limit_cycles > 1:
                out["makeup_at_band_m3_h"] = round(makeup_for_cycles(evaporation, limit_cycles), 4)
        return out

    def detail(self) -> dict[str, Any]:
        return {
            "conductivity_us_cm": rounded(self._conductivity, 1),
            "open_at_us_cm": self.config.open_at,
            "close_at_us_cm": self.config.close_at,
            "valve_open": self.valve.state,
            "open_s": round(self._t - self.valve.since) if self.valve.state else 0,
            **self.estimates(),
        }


# --- rinse water reuse ----------------------------------------------------------------------


class RinseReuseConfig(RuleCommon):
    """Recirculate while the rinse is clean enough; fresh water between two conductivities."""

    kind: Literal["rinse_reuse"]
    conductivity: TagKey  # rinse tank, uS/cm
    limit_us_cm: float = Field(gt=0)  # the quality spec: never above
    fresh_valve: TagKey
    fresh_open: OutputValue = 100.0
    fresh_closed: OutputValue = 0.0
    fresh_on_us_cm: float = Field(gt=0)  # open fresh water at ...
    fresh_off_us_cm: float = Field(gt=0)  # ... and close it at
    recirc_valve: TagKey | None = None
    recirc_on: OutputValue = 100.0
    recirc_off: OutputValue = 0.0
    # Recirculate only while the rinse is under this (null: the limit).
    reuse_below_us_cm: float | None = Field(default=None, gt=0)
    production: ProductionSignal | None = None  # recirculate only while the line runs

    @model_validator(mode="after")
    def _levels(self) -> RinseReuseConfig:
        if not self.fresh_off_us_cm < self.fresh_on_us_cm < self.limit_us_cm:
            raise ValueError("need fresh_off_us_cm < fresh_on_us_cm < limit_us_cm")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        return [("conductivity", self.conductivity), *signal_inputs("production", self.production)]

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = [
            ("fresh_open", self.fresh_valve, self.fresh_open),
            ("fresh_closed", self.fresh_valve, self.fresh_closed),
        ]
        if self.recirc_valve is not None:
            values.append(("recirc_on", self.recirc_valve, self.recirc_on))
            values.append(("recirc_off", self.recirc_valve, self.recirc_off))
        return values


class RinseReuse(DomainRule):
    """Fresh water only between `fresh_on` and `fresh_off` (hysteresis), recirculation while
    the rinse is under `reuse_below` and the line runs; `quality` alarm over the limit."""

    config: RinseReuseConfig

    def __init__(self, config: RinseReuseConfig) -> None:
        super().__init__(config, "rinse_reuse")
        self.config = config
        self._fresh = Hysteresis(
            HysteresisConfig(high=config.fresh_on_us_cm, low=config.fresh_off_us_cm)
        )
        self._conductivity: float | None = None
        self._recirculating = False

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        present = present_number(snapshot, self.config.fresh_valve)
        closed = self.config.fresh_closed
        self._fresh.output = present is not None and present != float(closed)

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        conductivity = self._conductivity = number(snapshot, cfg.conductivity)
        fresh = self._fresh.update(conductivity)
        reason = f"rinse {conductivity:.0f} uS/cm (limit {cfg.limit_us_cm:g})"
        out = [self.propose(cfg.fresh_valve, cfg.fresh_open if fresh else cfg.fresh_closed, reason)]
        if cfg.recirc_valve is not None:
            running = cfg.production is None or cfg.production.on(snapshot)
            reuse_below = cfg.reuse_below_us_cm or cfg.limit_us_cm
            self._recirculating = running and conductivity < reuse_below
            value = cfg.recirc_on if self._recirculating else cfg.recirc_off
            out.append(self.propose(cfg.recirc_valve, value, reason))
        if conductivity > cfg.limit_us_cm:
            self.set_alarm(
                "quality",
                True,
                f"rinse conductivity {conductivity:.0f} uS/cm over its limit {cfg.limit_us_cm:g}",
                {"conductivity_us_cm": round(conductivity, 1), "limit_us_cm": cfg.limit_us_cm},
            )
        else:
            self.set_alarm("quality", False)
        return out

    def detail(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "conductivity_us_cm": rounded(self._conductivity, 1),
            "headroom_us_cm": rounded(
                None if self._conductivity is None else cfg.limit_us_cm - self._conductivity, 1
            ),
            "fresh_open": self._fresh.output,
            "recirculating": self._recirculating,
        }

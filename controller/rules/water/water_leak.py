"""Water leaks by minimum night flow: the idle flow against a baseline learned from earlier
idle windows of the same production mode (and site state), and from the first night on
(nothing learned needed) the floor of the flow against what the quiet or occupied site draws by
the config's priors. Learned baselines outlive a restart (`remembered` / `recall`, kept by
controller/rules/memory.py).
docs/rules.md, "water_leak", gives the method, source and parameters."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from controller.alarms import DeclaredAlarm, Indicates, declare
from controller.configtypes import Duration, Name, PositiveDuration, StrictModel, format_duration
from controller.model import Sample
from controller.rules.average import MovingAverage, MovingAverageConfig
from controller.rules.blocks import NoSampleError
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionMode,
    ProductionSignal,
    rounded,
    signal_inputs,
)
from controller.rules.memory import RuleMemoryError
from controller.rules.rule import Now, Proposal, number
from controller.rules.schedule import Schedule, ScheduleConfig
from controller.rules.steps import EstimateSteps

_DAY_S = 86_400.0
_SiteState = Literal["quiet", "occupied"]
# Where a baseline was learned: with `quiet_hours`, in them or not (an idle site draws less
# with nobody there); without, "" (the mode alone).
Site = Literal["", "quiet", "occupied"]
_Key = tuple[ProductionMode, Site]


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


class QuietHours(StrictModel):
    """When water should not be used: the `periods` of `schedule` (the shift plan's
    off-shift, a site's night) during which an idle site is quiet."""

    schedule: ScheduleConfig
    periods: list[Name] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_periods(self) -> QuietHours:
        unknown = sorted(set(self.periods) - self.schedule.period_names)
        if unknown:
            raise ValueError(
                f"periods {unknown} are not in the schedule, which has"
                f" {sorted(self.schedule.period_names)}"
            )
        return self


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
    # In `quiet_hours`, from the first night on and whatever was learned, the floor (lowest
    # one-minute mean) of the flow over `floor_window` is compared with this prior (what the
    # quiet site draws by design). Without quiet hours there is no floor check (no cold
    # start): idle machines are not an empty site (people arrive before the shift).
    quiet_hours: QuietHours | None = None
    night_flow_m3_h: float = Field(default=0.0, ge=0)
    # Outside quiet hours: what the occupied site draws above the night flow
    # (washrooms, canteen: the domestic design flow), unmetered. With it, the floor of an
    # occupied window (no production; production too with `watch: always`, whose submeters
    # account for the process water) is compared with the night's floor (carried into the
    # day) plus this; without it (null) a leak starting while people are on site waits for
    # the night or a learned baseline.
    occupied_flow_m3_h: float | None = Field(default=None, ge=0)
    floor_window: PositiveDuration = 900.0
    baseline_max_age: PositiveDuration = 14 * _DAY_S  # older learned minima are not trusted
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


class _Floor:
    """The lowest one-minute (time-weighted) mean of the flow over the last `window`: a leak is
    a floor that never goes back to zero, while a tank filling or a flush comes and goes."""

    STEP = 60.0

    def __init__(self, window: float) -> None:
        self.window = window
        self._means: deque[tuple[float, float]] = deque()  # (end of the minute, mean)
        self._start: float | None = None
        self._first = 0.0
        self._last: tuple[float, float] | None = None
        self._sum = 0.0

    def update(self, t: float, value: float) -> float | None:
        """Add a reading; the floor once the minutes cover `window`, else None."""
        if self._start is None or self._last is None:
            self._start, self._last, self._sum = t, (t, value), 0.0
            self._first = t
            return None
        last_t, last_value = self._last
        self._sum += last_value * (t - last_t)
        self._last = (t, value)
        if t - self._start >= self.STEP:
            self._means.append((t, self._sum / (t - self._start)))
            self._start, self._sum = t, 0.0
        while self._means and self._means[0][0] <= t - self.window:
            self._means.popleft()
        if not self._means or t - self._first < self.window:
            return None
        return min(mean for _, mean in self._means)


class _Episode:
    """One stretch of one production mode (in one site state) and what it has shown."""

    def __init__(
        self,
        mode: ProductionMode,
        site: Site,
        producing: bool,
        start: float,
        config: WaterLeakConfig,
    ) -> None:
        self.mode = mode
        self.site = site
        self.producing = producing
        self.start = start
        self.learn = _Resampled(config.learn_window)
        self.watch = _Resampled(config.watch_window)
        self.minimum: float | None = None
        self.suspect = False  # a leak was suspected during it: not learned


class _Learned(StrictModel):
    """One mode's learned minima as remembered: (wall time learned, epoch ms; minimum m3/h),
    and where they were learned (`site`; "" from a memory written before it existed)."""

    mode: list[float]
    site: Site = ""
    minima: list[tuple[int, float]]


class _Remembered(StrictModel):
    """What the rule keeps across restarts: its learned minima with the time each was learned."""

    learned: list[_Learned]


class WaterLeak(DomainRule):
    """Minimum night flow: the baseline is the `percentile` of the minimum rolling-hour flow of
    earlier windows of the same production mode (the machines in the same states); flow
    staying `threshold_m3_h` above it for `duration` is a leak. With `quiet_hours`, whatever
    was learned, the floor of the flow over `floor_window` standing `threshold_m3_h` above
    `night_flow_m3_h` (quiet) or the night's floor + `occupied_flow_m3_h` (occupied) is a
    leak."""

    config: WaterLeakConfig
    # Water behind the main meter that no submeter accounts for.
    ALARMS = declare(leak=DeclaredAlarm(Indicates.WATER_LEAK, "main"))

    def __init__(self, config: WaterLeakConfig) -> None:
        super().__init__(config, "water_leak")
        self.config = config
        # Per mode and site: (epoch ms learned, minimum m3/h), oldest first.
        self.minima: dict[_Key, deque[tuple[int, float]]] = {}
        self.memory_revision = 0  # bumped when something worth remembering was learned
        self._quiet = None if config.quiet_hours is None else Schedule(config.quiet_hours.schedule)
        self._episode: _Episode | None = None
        self._above_since: float | None = None
        self._alarm = False  # raised against a learned (or initial) baseline
        self._floor_alarm = False  # raised at cold start, by the floor of the quiet flow
        self._flow: float | None = None
        self._watched: float | None = None
        self._excess: float | None = None
        self._baseline: float | None = None
        self._floor: float | None = None
        self._expected: float | None = None  # what the floor is compared with (cold start)
        self._expected_basis = ""
        self._floor_leak: tuple[float, float, str] = (0.0, 0.0, "")  # as last judged
        # The floor of the site's present state (quiet, occupied): a new one when it changes,
        # so that a floor never mixes minutes of an empty and an occupied site.
        self._site_floor: _Floor | None = None
        self._site_state: _SiteState | None = None
        self._night_floor: float | None = None  # lowest leak-free floor of the last quiet stretch
        self._was_quiet = False
        self._wall_ms: int | None = None
        self._steps = EstimateSteps(
            config.threshold_m3_h, config.duration, max(config.watch_window, config.floor_window)
        )
        self._t = 0.0

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # A gap in the flow breaks the window: it is not learned; the alarm stays latched.
        self._episode = None
        self._above_since = None
        self._site_floor = None
        self._site_state = None

    def learned(
        self, mode: ProductionMode, at_ms: int | None = None, site: Site = ""
    ) -> list[float]:
        """The minima learned for `mode` at `site` that are still trusted at `at_ms` (all
        without it)."""
        minima = self.minima.get((mode, site), ())
        if at_ms is None:
            return [value for _, value in minima]
        oldest = at_ms - self.config.baseline_max_age * 1000
        return [value for learned_ms, value in minima if learned_ms >= oldest]

    def baseline(
        self, mode: ProductionMode, producing: bool, at_ms: int | None = None, site: Site = ""
    ) -> float | None:
        minima = self.learned(mode, at_ms, site)
        if minima:
            return percentile(minima, self.config.percentile)
        return None if producing else self.config.initial_baseline_m3_h

    def quiet(self, producing: bool, wall_ms: int) -> bool:
        """Water should not be used now: no production, in the configured quiet hours."""
        quiet_hours = self.config.quiet_hours
        if producing or quiet_hours is None or self._quiet is None:
            return False
        return self._quiet.period_at(wall_ms) in quiet_hours.periods

    def site(self, producing: bool, wall_ms: int) -> Site:
        """Where a baseline is learned and used now (`Site`)."""
        if self.config.quiet_hours is None:
            return ""
        return "quiet" if self.quiet(producing, wall_ms) else "occupied"

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = self._t = now.monotonic
        self._wall_ms = now.wall_ms
        flow = number(snapshot, cfg.flow) - sum(number(snapshot, tag) for tag in cfg.submeters)
        self._flow = flow
        producing = cfg.production.on(snapshot)
        mode = tuple(round(number(snapshot, tag), 3) for tag in cfg.production.tags)
        episode = self._episode
        site = self.site(producing, now.wall_ms)
        if episode is None or episode.mode != mode or episode.site != site:
            if episode is not None:
                self._learn(episode, now.wall_ms)
            episode = self._episode = _Episode(mode, site, producing, t, cfg)
            self._above_since = None
            self._excess = None
        learned = episode.learn.update(t, flow)
        watched = self._watched = episode.watch.update(t, flow)
        floor = self._floor_of(self._state_of(producing, now.wall_ms), t, flow)
        if learned is not None and t - episode.start >= cfg.learn_window:
            episode.minimum = learned if episode.minimum is None else min(episode.minimum, learned)
        baseline = self._baseline = self.baseline(mode, producing, now.wall_ms, site)
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
        self._by_floor(episode, producing, floor, now.wall_ms)
        self._raise(episode, mode)
        return self._valve(producing)

    def _state_of(self, producing: bool, wall_ms: int) -> _SiteState | None:
        """What the site should draw now, for the cold start: `quiet` (no production in quiet
        hours), `occupied` (people on site; production too with `watch: always`, whose
        submeters account for the process water), None when the floor is not judged."""
        if self.quiet(producing, wall_ms):
            return "quiet"
        if not producing or self.config.watch == "always":
            return "occupied"
        return None

    def _floor_of(self, state: _SiteState | None, t: float, flow: float) -> float | None:
        """The floor of the flow since the site entered `state` (None until it covers
        `floor_window`, and when the state is not judged)."""
        if state != self._site_state or self._site_floor is None:
            self._site_state = state
            self._site_floor = _Floor(self.config.floor_window)
        floor = self._site_floor.update(t, flow)
        return None if state is None else floor

    def _by_floor(
        self, episode: _Episode, producing: bool, floor: float | None, wall_ms: int
    ) -> None:
        """With `quiet_hours`, from the first night on and whatever was learned: the floor of
        the flow against what the site should draw now. In quiet hours: the prior
        `night_flow_m3_h`. Occupied (not quiet; with no production, or in production with
        `watch: always`), with `occupied_flow_m3_h`: the last quiet stretch's leak-free floor
        (the prior before any was seen) plus that."""
        cfg = self.config
        quiet = self.quiet(producing, wall_ms)
        if quiet and not self._was_quiet:
            self._night_floor = None  # a new quiet stretch
        if (
            quiet
            and floor is not None
            and floor - cfg.night_flow_m3_h < cfg.threshold_m3_h / 2
            and (self._night_floor is None or floor < self._night_floor)
        ):
            # A floor judged a leak is not what the empty site draws: carried into the day it
            # would hide the leak there (and clear its alarm while it flows).
            self._night_floor = floor
        self._was_quiet = quiet
        self._floor = None
        if cfg.quiet_hours is None or floor is None:
            return
        if quiet:
            expected, basis = cfg.night_flow_m3_h, "quiet hours against night_flow_m3_h"
        elif cfg.occupied_flow_m3_h is not None:
            night = self._night_floor
            carried = night if night is not None else cfg.night_flow_m3_h
            expected = carried + cfg.occupied_flow_m3_h
            basis = (
                "an occupied window against the last quiet floor"
                if night is not None
                else "an occupied window against night_flow_m3_h"
            ) + f" + occupied_flow_m3_h {cfg.occupied_flow_m3_h:g}"
        else:
            return
        self._floor, self._expected, self._expected_basis = floor, expected, basis
        over = floor - expected
        if over >= cfg.threshold_m3_h:
            self._floor_alarm = True
        elif over < cfg.threshold_m3_h / 2:
            self._floor_alarm = False
        if over >= cfg.threshold_m3_h / 2:
            episode.suspect = True  # a window with a floor is not learned as normal

    def _raise(self, episode: _Episode, mode: ProductionMode) -> None:
        cfg = self.config
        # The floor first: it holds across the machines' modes, the learned windows restart
        # with each (its estimate steps through a shift).
        if self._floor_alarm:
            episode.suspect = True
            if self._floor is not None and self._expected is not None:
                self._floor_leak = (self._floor, self._expected, self._expected_basis)
            floor, expected, basis = self._floor_leak
            # Only a floor judged this cycle is a measurement (none in production).
            measured = None if self._floor is None else floor - expected
            # The floor holds for `floor_window` by itself (it is the raise's duration too):
            # a step of it is a step at once, found as fast as a first leak.
            steps = self._steps.update(self._t, True, measured, basis, hold=0.0)
            self.set_alarm(
                "leak",
                True,
                f"water flow never fell below {floor:.2f} m3/h in"
                f" {format_duration(cfg.floor_window)}, {floor - expected:.2f} m3/h"
                f" above the expected {expected:.2f} m3/h: probable leak",
                {
                    "leak_m3_h": rounded(floor - expected),
                    "flow_m3_h": rounded(floor),
                    "baseline_m3_h": rounded(expected),
                    "mode": list(mode),
                    "basis": f"lowest one-minute flow over {format_duration(cfg.floor_window)}"
                    f" of {basis}",
                },
                steps=steps,
            )
        elif self._alarm:
            episode.suspect = True
            steps = self._steps.update(self._t, True, self._excess, "baseline")
            self.set_alarm(
                "leak",
                True,
                f"water flow {self._watched or 0.0:.2f} m3/h, {self._excess or 0.0:.2f} m3/h"
                f" above the learned baseline {self._baseline or 0.0:.2f} m3/h: probable leak",
                {
                    "leak_m3_h": rounded(self._excess),
                    "flow_m3_h": rounded(self._watched),
                    "baseline_m3_h": rounded(self._baseline),
                    "mode": list(mode),
                    "basis": f"{cfg.percentile:g}th percentile of the minimum rolling"
                    f" {format_duration(cfg.learn_window)} of earlier windows in this mode",
                },
                steps=steps,
            )
        else:
            self._steps.update(self._t, False, None)
            self.set_alarm("leak", False)

    def _learn(self, episode: _Episode, wall_ms: int) -> None:
        if episode.minimum is None or episode.suspect:
            return
        minima = self.minima.setdefault((episode.mode, episode.site), deque())
        minima.append((wall_ms, episode.minimum))
        while len(minima) > self.config.history:
            minima.popleft()
        self.memory_revision += 1

    # --- memory across restarts --------------------------------------------------------------

    def remembered(self) -> dict[str, Any]:
        """The learned minima (JSON-ready), for the state directory."""
        return _Remembered(
            learned=[
                _Learned(mode=list(mode), site=site, minima=list(minima))
                for (mode, site), minima in self.minima.items()
            ]
        ).model_dump(mode="json")

    def recall(self, state: Mapping[str, Any]) -> None:
        """Take learned minima remembered by an earlier run; `RuleMemoryError` when `state` is
        not what `remembered` writes. Minima older than `baseline_max_age` are kept but not
        trusted (`learned`), and `history` still bounds each mode."""
        try:
            remembered = _Remembered.model_validate(state)
        except ValidationError as exc:
            raise RuleMemoryError(f"not a water_leak memory: {exc.error_count()} problems") from exc
        self.minima = {}
        for entry in remembered.learned:
            ordered = sorted(entry.minima)[-self.config.history :]
            self.minima[(tuple(entry.mode), entry.site)] = deque(ordered)

    def _valve(self, producing: bool) -> list[Proposal]:
        valve = self.config.isolation
        if valve is None or not valve.enabled:
            return []
        if self.leak_alarm and (valve.in_production or not producing):
            return [self.propose(valve.tag, valve.close_value, "leak alarm: isolating")]
        return [self.propose(valve.tag, valve.open_value, "no leak alarm")]

    @property
    def leak_alarm(self) -> bool:
        return self._alarm or self._floor_alarm

    def detail(self) -> dict[str, Any]:
        episode = self._episode
        at_ms = self._wall_ms
        return {
            "flow_m3_h": rounded(self._flow),
            "watched_m3_h": rounded(self._watched),
            "mode": None if episode is None else list(episode.mode),
            "producing": None if episode is None else episode.producing,
            "baseline_m3_h": rounded(self._baseline),
            "excess_m3_h": rounded(self._excess),
            "floor_m3_h": rounded(self._floor),
            "episode_minimum_m3_h": rounded(None if episode is None else episode.minimum),
            "learned_minima": [
                {
                    "mode": list(mode),
                    "site": site,
                    "minima": [round(m, 4) for _, m in minima],
                    "age_h": [
                        None if at_ms is None else round((at_ms - ms) / 3_600_000, 1)
                        for ms, _ in minima
                    ],
                }
                for (mode, site), minima in self.minima.items()
            ],
            "leak": self.leak_alarm,
        }

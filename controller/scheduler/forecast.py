"""What the scheduler expects, from what a site can know: the inflexible load per period of the
production schedule, learned from the site's own metering (kept in the state directory with its
age); the cloud cover a weather service feeds (validated, the last good one kept); prices from
the configured tariff; and the peak already set this billing period. PV power itself is
computed in the solver's process (controller/scheduler/pvmodel.py: pvlib never loads in the
daemon)."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import structlog
from pydantic import ConfigDict, Field, ValidationError, model_validator

from controller.configtypes import StrictModel
from controller.rules.schedule import Schedule
from controller.scheduler.config import LoadForecastConfig, TariffConfig

log = structlog.get_logger(__name__)

SCHEDULER_STATE_DIR = "scheduler"  # under gateway.state_dir
LOAD_FILE = "load.json"
PEAK_FILE = "peak.json"
FORMAT = "edgecell-scheduler-state"
VERSION = 1

# A cloud forecast is a few hundred points; anything near this is not one.
MAX_FORECAST_BYTES = 256 * 1024
MAX_FORECAST_POINTS = 5000
# A forecast issued later than now by more than this: a clock that is wrong, refused.
MAX_CLOCK_SKEW_MS = 5 * 60_000
# Points further ahead than this are not a weather forecast.
MAX_FORECAST_AHEAD_MS = 10 * 86_400_000
# Problems of one payload named in its refusal.
SHOWN_PROBLEMS = 3


class ForecastError(ValueError):
    """A forecast payload refused: the message names what is wrong and where."""


# --- the cloud forecast -------------------------------------------------------------------------


class CloudPoint(StrictModel):
    """The share of clear-sky PV output expected at an instant (1: clear, 0: none)."""

    # From outside: a string where a number belongs is refused, not read as one.
    model_config = ConfigDict(strict=True)

    at_ms: int = Field(ge=0)
    factor: float = Field(ge=0, le=1)


class CloudForecast(StrictModel):
    """What `{base}/forecast/pv` (or the forecast file) carries."""

    model_config = ConfigDict(strict=True)

    issued_ms: int = Field(ge=0)
    source: str = Field("", max_length=100)
    points: list[CloudPoint] = Field(min_length=1, max_length=MAX_FORECAST_POINTS)

    @model_validator(mode="after")
    def _ascending(self) -> CloudForecast:
        for i in range(1, len(self.points)):
            if self.points[i].at_ms <= self.points[i - 1].at_ms:
                raise ValueError(f"points[{i}].at_ms: times must ascend, one point per time")
        return self

    def factors(self, at_ms: Sequence[int]) -> list[float]:
        """Linear between the points, the first or last value held outside them."""
        points = self.points
        out: list[float] = []
        j = 0
        for t in at_ms:
            while j + 1 < len(points) and points[j + 1].at_ms <= t:
                j += 1
            here = points[j]
            if t <= here.at_ms or j + 1 == len(points):
                out.append(here.factor)
                continue
            after = points[j + 1]
            share = (t - here.at_ms) / (after.at_ms - here.at_ms)
            out.append(here.factor + (after.factor - here.factor) * share)
        return out


def parse_cloud_forecast(payload: bytes, now_ms: int, max_age_s: float) -> CloudForecast:
    """A cloud forecast from a payload, or `ForecastError` naming what is wrong and where."""
    if len(payload) > MAX_FORECAST_BYTES:
        raise ForecastError(
            f"(payload): {len(payload)} bytes, more than a forecast may be ({MAX_FORECAST_BYTES})"
        )
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ForecastError(f"(payload): not JSON: {str(exc)[:120]}") from None
    try:
        forecast = CloudForecast.model_validate(data)
    except ValidationError as exc:
        raise ForecastError(_problems(exc)) from None
    if forecast.issued_ms > now_ms + MAX_CLOCK_SKEW_MS:
        raise ForecastError(
            f"issued_ms: {forecast.issued_ms} is {(forecast.issued_ms - now_ms) / 1000:.0f} s"
            " in the future: a clock is wrong"
        )
    age_s = (now_ms - forecast.issued_ms) / 1000
    if age_s > max_age_s:
        raise ForecastError(f"issued_ms: issued {age_s:.0f} s ago, older than {max_age_s:g} s")
    last = forecast.points[-1].at_ms
    if last <= now_ms:
        raise ForecastError(f"points[{len(forecast.points) - 1}].at_ms: every point is in the past")
    if last > now_ms + MAX_FORECAST_AHEAD_MS:
        raise ForecastError(
            f"points[{len(forecast.points) - 1}].at_ms: more than"
            f" {MAX_FORECAST_AHEAD_MS // 86_400_000} days ahead"
        )
    return forecast


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_context=False)[:SHOWN_PROBLEMS]:
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{path or '(payload)'}: {message}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# --- prices ---------------------------------------------------------------------------------------


def import_prices(tariff: TariffConfig, starts_ms: Sequence[int]) -> list[float]:
    """The import price of each step, at the step's start in the tariff's zone."""
    zone = ZoneInfo(tariff.timezone)
    return [
        tariff.price_at(datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone))[0]
        for ms in starts_ms
    ]


# --- state kept across restarts -------------------------------------------------------------------


def _load_state(path: Path, kind: str) -> dict[str, Any] | None:
    """The state of `kind` kept in `path`, or None (one log line when it is there but unusable)."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("scheduler_state_ignored", path=str(path), reason=str(exc)[:200])
        return None
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != VERSION
        or document.get("kind") != kind
        or not isinstance(document.get("saved_at_ms"), int)
        or not isinstance(document.get("state"), dict)
    ):
        log.warning("scheduler_state_ignored", path=str(path), reason=f"not {FORMAT} {kind}")
        return None
    return document


def _save_state(path: Path, kind: str, state: dict[str, Any], now_ms: int) -> None:
    document = {"format": FORMAT, "version": VERSION, "kind": kind, "saved_at_ms": now_ms}
    document["state"] = state
    partial = path.with_suffix(".json.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        log.warning("scheduler_state_not_saved", path=str(path), error=str(exc))
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


# --- the load ------------------------------------------------------------------------------------


@dataclass
class LearnedPower:
    kw: float
    steps: int  # step averages that went into it
    updated_ms: int


@dataclass
class RecentError:
    """The load's recent error against its forecast in one period: measured minus forecast, an
    average over the last steps (weight `ERROR_WEIGHT`), and when it was last measured."""

    kw: float
    at_ms: int


# How far one step's error moves the recent error of its period: half, so one odd step does not
# swing the next hours' forecast and two steps alike do.
ERROR_WEIGHT = 0.5


class LoadForecaster:
    """The inflexible load per step of the horizon (docs/rules.md, "Scheduler: forecasts"):

    - *by time of day*: each step's average is learned for its time of day within its period
      (`production 20:00`: the late shift is not the morning's), and for its period as a whole;
      a step whose time of day has been seen takes that, else its period's power, else the
      configured prior. Both kept in `{state_dir}/scheduler/load.json` with their age.
    - *corrected by the recent error*: the last steps' error against that forecast, per period
      (a pause's error says nothing of production), added to the coming steps of the same
      period, blended back to none over `error_blend` from when it was measured: today's
      shift drawing more than the usual one is seen within two steps, and forgotten by the
      next day."""

    def __init__(self, config: LoadForecastConfig, step_s: float, state_dir: Path | None) -> None:
        self.config = config
        self.schedule = Schedule(config.schedule)
        self.zone = ZoneInfo(config.schedule.timezone)
        self.step_ms = int(step_s * 1000)
        self.blend_ms = int(config.error_blend * 1000)
        self.path = None if state_dir is None else state_dir / SCHEDULER_STATE_DIR / LOAD_FILE
        self.learned: dict[str, LearnedPower] = {}
        self.slots: dict[str, LearnedPower] = {}  # by "<period> HH:MM" (the step's start)
        self.errors: dict[str, RecentError] = {}
        self._step_start: int | None = None
        self._sum = 0.0
        self._count = 0
        self.last_step_kw: float | None = None

    def restore(self, now_ms: int) -> None:
        if self.path is None:
            return
        document = _load_state(self.path, "load")
        if document is None:
            return
        forget_ms = self.config.forget_after * 1000
        periods = set(self.config.prior_kw)
        state = document["state"]
        for kind, target in (("periods", self.learned), ("slots", self.slots)):
            items = state.get(kind, {})
            if not isinstance(items, dict):
                continue
            for name, item in items.items():
                try:
                    kw, steps, at_ms = float(item["kw"]), int(item["steps"]), int(item["at_ms"])
                    learned = LearnedPower(kw=kw, steps=steps, updated_ms=at_ms)
                except (KeyError, TypeError, ValueError):
                    continue
                known = name in periods if kind == "periods" else self._known_slot(name, periods)
                if (
                    known
                    and math.isfinite(learned.kw)
                    and learned.kw >= 0
                    and now_ms - learned.updated_ms <= forget_ms
                ):
                    target[name] = learned
        log.info(
            "scheduler_load_restored",
            periods=sorted(self.learned),
            slots=len(self.slots),
            path=str(self.path),
        )

    @staticmethod
    def _known_slot(name: object, periods: set[str]) -> bool:
        if not isinstance(name, str):
            return False
        period, _, clock = name.rpartition(" ")
        hours, _, minutes = clock.partition(":")
        return (
            period in periods
            and hours.isdigit()
            and minutes.isdigit()
            and int(hours) < 24
            and int(minutes) < 60
        )

    def slot_of(self, start_ms: int) -> str:
        """The key a step is learned under: its period and its local time of day."""
        period = self.schedule.period_at(start_ms + self.step_ms // 2)
        local = datetime.fromtimestamp(start_ms / 1000, tz=UTC).astimezone(self.zone)
        return f"{period} {local:%H:%M}"

    def observe(self, wall_ms: int, load_kw: float) -> None:
        """One reading of the inflexible load; a step's average is learned when it ends."""
        start = wall_ms - wall_ms % self.step_ms
        if self._step_start is not None and start != self._step_start:
            self._close_step(self._step_start, wall_ms)
        if self._step_start != start:
            self._step_start, self._sum, self._count = start, 0.0, 0
        # Readings of one instant from several devices can disagree (a PV inverter read a
        # second before the meter): a negative load is none.
        self._sum += max(load_kw, 0.0)
        self._count += 1

    def step_average(self) -> float | None:
        """The load's average in the step so far."""
        return self._sum / self._count if self._count else None

    def _close_step(self, start: int, now_ms: int) -> None:
        if not self._count:
            return
        average = self._sum / self._count
        self.last_step_kw = average
        period = self.schedule.period_at(start + self.step_ms // 2)
        slot = self.slot_of(start)
        # The error against what was forecast for this step (before it is learned): the recent
        # error of its period moves towards it.
        error = average - self._usual(start)
        before_error = self.errors.get(period)
        end = start + self.step_ms
        carried = 0.0 if before_error is None else self._error_share(before_error, end)
        self.errors[period] = RecentError(carried + ERROR_WEIGHT * (error - carried), end)
        weight = self.config.learn_weight
        for table, key in ((self.learned, period), (self.slots, slot)):
            before = table.get(key)
            kw = average if before is None else before.kw + weight * (average - before.kw)
            table[key] = LearnedPower(kw, (before.steps if before else 0) + 1, now_ms)
        if self.path is not None:
            state = {
                kind: {
                    name: {"kw": round(p.kw, 4), "steps": p.steps, "at_ms": p.updated_ms}
                    for name, p in table.items()
                }
                for kind, table in (("periods", self.learned), ("slots", self.slots))
            }
            _save_state(self.path, "load", state, now_ms)

    def _error_share(self, error: RecentError, at_ms: int) -> float:
        """The part of a recent error still counted at `at_ms`: all of it when measured, none
        `error_blend` later (linear)."""
        left = 1.0 - max(at_ms - error.at_ms, 0) / self.blend_ms
        return error.kw * max(left, 0.0)

    def power_of(self, period: str) -> float:
        learned = self.learned.get(period)
        return learned.kw if learned is not None else self.config.prior_kw[period]

    def _usual(self, start_ms: int) -> float:
        """A step's load as the days before had it: its time of day, else its period's."""
        slot = self.slots.get(self.slot_of(start_ms))
        if slot is not None:
            return slot.kw
        return self.power_of(self.schedule.period_at(start_ms + self.step_ms // 2))

    def forecast(self, starts_ms: Sequence[int]) -> list[float]:
        """The load of each step: as usual at its time of day, plus its period's recent error
        as far as it is still counted at the step's middle."""
        half = self.step_ms // 2
        out = []
        for ms in starts_ms:
            kw = self._usual(ms)
            error = self.errors.get(self.schedule.period_at(ms + half))
            if error is not None:
                kw += self._error_share(error, ms + half)
            out.append(max(kw, 0.0))
        return out

    def period_at(self, wall_ms: int) -> str:
        return self.schedule.period_at(wall_ms)

    def as_json(self, now_ms: int) -> dict[str, Any]:
        return {
            name: {
                "kw": round(self.power_of(name), 2),
                "learned_steps": p.steps if (p := self.learned.get(name)) else 0,
                "age_s": round((now_ms - p.updated_ms) / 1000) if p else None,
                "recent_error_kw": (
                    round(self._error_share(e, now_ms), 2) if (e := self.errors.get(name)) else None
                ),
            }
            for name in self.config.prior_kw
        }


# --- the PV metered -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredPv:
    """The PV's average AC kW over the minutes from `from_ms` to `to_ms`."""

    kw: float
    from_ms: int
    to_ms: int


class PvMeter:
    """The PV inverter's readings over the last `window`: what the plan's PV forecast starts
    from (its clear-sky index, computed in the solver's process) and what the disturbance check
    compares with the plan's PV."""

    def __init__(self, window_s: float) -> None:
        self.window_ms = int(window_s * 1000)
        self._readings: deque[tuple[int, float]] = deque()

    def observe(self, wall_ms: int, kw: float) -> None:
        if self._readings and wall_ms <= self._readings[-1][0]:
            return  # a clock stepped back: the window starts again from what follows
        self._readings.append((wall_ms, max(kw, 0.0)))
        while self._readings and self._readings[0][0] <= wall_ms - self.window_ms:
            self._readings.popleft()

    def measured(self, now_ms: int, least_s: float) -> MeasuredPv | None:
        """The average over the readings of the window, when they span at least `least_s` and
        the last is recent (within a tenth of the window); else None."""
        readings = self._readings
        if not readings or now_ms - readings[-1][0] > self.window_ms // 10:
            return None
        first, last = readings[0][0], readings[-1][0]
        if last - first < least_s * 1000:
            return None
        average = sum(kw for _, kw in readings) / len(readings)
        return MeasuredPv(average, first, last)


# --- the billing period's peak -------------------------------------------------------------------


class BillingPeak:
    """The highest billing-window average import of this month (the tariff's zone), and the
    import metered so far in the window of now: shaving below the peak already set earns
    nothing. Kept in `{state_dir}/scheduler/peak.json`."""

    def __init__(self, tariff: TariffConfig, state_dir: Path | None) -> None:
        self.window_ms = int(tariff.demand_window * 1000)
        self.zone = ZoneInfo(tariff.timezone)
        self.path = None if state_dir is None else state_dir / SCHEDULER_STATE_DIR / PEAK_FILE
        self.month = ""
        self.peak_kw = 0.0
        self._window_start: int | None = None
        self._kwh = 0.0
        self._last_ms: int | None = None
        self._last_kw = 0.0

    def _month_of(self, wall_ms: int) -> str:
        return (
            datetime.fromtimestamp(wall_ms / 1000, tz=UTC).astimezone(self.zone).strftime("%Y-%m")
        )

    def restore(self, now_ms: int) -> None:
        if self.path is None:
            return
        document = _load_state(self.path, "peak")
        if document is None:
            return
        state = document["state"]
        peak = state.get("peak_kw")
        if (
            state.get("month") == self._month_of(now_ms)
            and isinstance(peak, int | float)
            and math.isfinite(peak)
            and peak >= 0
        ):
            self.month, self.peak_kw = state["month"], float(peak)

    def observe(self, wall_ms: int, import_kw: float) -> None:
        """The meter's power now (+ import): each reading holds until the next (as the meter's
        own demand register integrates), the window's average taken when it ends."""
        month = self._month_of(wall_ms)
        if month != self.month:
            self.month, self.peak_kw = month, 0.0
        start = wall_ms - wall_ms % self.window_ms
        last, window = self._last_ms, self._window_start
        if last is None or window is None:
            self._kwh = 0.0  # the first window after a start is partial: an underestimate
        elif start == window:
            self._kwh += self._last_kw * (wall_ms - last) / 3_600_000
        else:
            # The old window to its end, closed; the new one from its start.
            self._kwh += self._last_kw * max(window + self.window_ms - last, 0) / 3_600_000
            self._close_window(wall_ms)
            self._kwh = self._last_kw * (wall_ms - max(start, last)) / 3_600_000
        self._window_start = start
        self._last_ms, self._last_kw = wall_ms, max(import_kw, 0.0)

    def _close_window(self, now_ms: int) -> None:
        average = self._kwh * 3_600_000 / self.window_ms
        if average > self.peak_kw:
            self.peak_kw = average
            if self.path is not None:
                _save_state(self.path, "peak", {"month": self.month, "peak_kw": average}, now_ms)

    def window_kwh(self, wall_ms: int) -> float:
        """Import metered in the window `wall_ms` is in (0 when it is another window)."""
        start = wall_ms - wall_ms % self.window_ms
        return self._kwh if start == self._window_start else 0.0

"""The electricity demand window peak shaving works from: energy used so far in the billing
window, the average demand so far, and the window's predicted average if the present load goes on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from controller.configtypes import Duration, PositiveDuration, StrictModel, format_duration
from controller.rules.blocks import BlockError, NoSampleError, require_finite
from controller.rules.schedule import TimeZoneName

_MS_PER_HOUR = 3_600_000


class DemandWindowConfig(StrictModel):
    """Where the demand comes from and how the windows are laid on the clock.

    Energy is in kWh and power in kW: scale the meter's tags to those units.
    """

    source: Literal["energy", "power"]
    window: PositiveDuration = 900.0
    alignment: Literal["fixed", "sliding"] = "fixed"
    timezone: TimeZoneName = "UTC"
    horizon: Duration = 0.0
    max_gap: PositiveDuration = 60.0
    counter_rollover_kwh: float | None = Field(default=None, gt=0)
    max_power_kw: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> DemandWindowConfig:
        if self.alignment == "fixed" and (
            self.window < 1 or self.window != int(self.window) or 3600 % int(self.window)
        ):
            raise ValueError(
                f"a fixed window of {format_duration(self.window)} does not divide the hour:"
                " use 1min, 5min, 10min, 15min, 30min or 1h (billing intervals)"
            )
        if "horizon" in self.model_fields_set and self.alignment != "sliding":
            raise ValueError("horizon is for sliding windows; a fixed window ends on the clock")
        if self.horizon > self.window:
            raise ValueError("horizon must not be longer than the window")
        energy_only = {"counter_rollover_kwh", "max_power_kw"} & self.model_fields_set
        if self.source == "power" and energy_only:
            raise ValueError(f"{', '.join(sorted(energy_only))} only apply to source: energy")
        if self.source == "energy" and "max_gap" in self.model_fields_set:
            raise ValueError(
                "max_gap only applies to source: power; an energy counter covers any gap"
            )
        return self


def metered_power_window(window: float | None, timezone: str) -> DemandWindowConfig:
    """The fixed billing window a battery rule holds (15 min when `window` is None), fed with
    the meter's power: battery_peak_shaving's and battery_schedule's `window`/`timezone`.
    Refuses a window that does not divide the hour."""
    return DemandWindowConfig.model_validate(
        {"source": "power", "window": format_duration(window or 900.0), "timezone": timezone}
    )


@dataclass(frozen=True, slots=True)
class DemandReading:
    """The present window: what was used, what it averages to, and where it is heading.

    `average_kw` is over the time covered by data; `predicted_kw` is the window's average if the
    present load `power_kw` goes on until its end: (energy so far + power * time left) / window,
    with any stretch of the past the data does not cover (start-up, a counter reset) counted at
    the average so far.
    """

    window_start_ms: int
    window_end_ms: int
    energy_kwh: float
    covered_s: float
    elapsed_s: float
    remaining_s: float
    average_kw: float
    power_kw: float
    predicted_kw: float


class DemandWindow:
    """Follows one meter through fixed (billing) or sliding windows.

    Feed it with `add_energy` (a kWh counter) or `add_power` (kW samples), as configured, with the
    samples' epoch-ms timestamps. Samples older than the latest one are dropped, unless the step
    back is longer than a window: then the wall clock was set back and the block starts afresh.
    """

    def __init__(self, config: DemandWindowConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._window_ms = round(config.window * 1000)
        # Stretches of constant power: (start ms, end ms, kWh used in it).
        self._segments: deque[tuple[int, int, float]] = deque()
        self._last_ts: int | None = None
        self._last_value = 0.0
        self._power_kw: float | None = None
        self.dropped_samples = 0
        self.counter_resets = 0

    def add_energy(self, ts_ms: int, counter_kwh: float) -> bool:
        """Add an energy counter reading; False when it was dropped (older than the latest)."""
        self._require_source("energy")
        require_finite("energy counter", counter_kwh)
        if self._out_of_order(ts_ms):
            return False
        if self._last_ts is None:
            self._last_ts, self._last_value = ts_ms, counter_kwh
            return True
        increment = counter_kwh - self._last_value
        rollover = self.config.counter_rollover_kwh
        if increment < 0 and rollover is not None:
            increment += rollover
        hours = (ts_ms - self._last_ts) / _MS_PER_HOUR
        limit = self.config.max_power_kw
        if increment < 0 or (limit is not None and increment > limit * hours):
            # Reset to zero, meter swapped, register glitch: the energy of this stretch is
            # unknown; it stays uncovered and the prediction fills it with the window average.
            self.counter_resets += 1
        else:
            self._segments.append((self._last_ts, ts_ms, increment))
            self._power_kw = increment / hours
        self._last_ts, self._last_value = ts_ms, counter_kwh
        self._forget(ts_ms)
        return True

    def add_power(self, ts_ms: int, power_kw: float) -> bool:
        """Add a power sample; False when it was dropped (older than the latest).

        Between two samples the power is taken to change linearly (trapezoid); samples further
        apart than `max_gap` leave the stretch between them uncovered.
        """
        self._require_source("power")
        require_finite("power", power_kw)
        if self._out_of_order(ts_ms):
            return False
        if self._last_ts is not None and ts_ms - self._last_ts <= self.config.max_gap * 1000:
            hours = (ts_ms - self._last_ts) / _MS_PER_HOUR
            self._segments.append((self._last_ts, ts_ms, (self._last_value + power_kw) / 2 * hours))
        self._last_ts, self._last_value = ts_ms, power_kw
        self._power_kw = power_kw
        self._forget(ts_ms)
        return True

    def window_at(self, t_ms: int) -> tuple[int, int]:
        """Start and end (epoch ms) of the window that holds `t_ms`: for a fixed window the one
        aligned to the local clock, for a sliding one the window ending `horizon` after `t_ms`."""
        if self.config.alignment == "sliding":
            end = t_ms + round(self.config.horizon * 1000)
            return end - self._window_ms, end
        offset = datetime.fromtimestamp(t_ms // 1000, self.zone).utcoffset()
        offset_ms = 0 if offset is None else round(offset.total_seconds() * 1000)
        start = t_ms - (t_ms + offset_ms) % self._window_ms
        return start, start + self._window_ms

    def reading(self, now_ms: int, power_kw: float | None = None) -> DemandReading:
        """The window at `now_ms`. `power_kw` is the present load for the prediction when a power
        tag gives it; without it the latest sample (or the latest counter interval) is used."""
        if self._last_ts is None:
            raise NoSampleError("demand window has had no sample yet")
        if power_kw is None:
            if self._power_kw is None:
                raise NoSampleError("demand window needs two counter readings for a power")
            power_kw = self._power_kw
        require_finite("present power", power_kw)
        ref = max(now_ms, self._last_ts)
        self._forget(ref)
        start, end = self.window_at(ref)
        known_until = min(max(self._last_ts, start), end)
        energy, covered_ms = self._used(start, known_until)
        average = energy * _MS_PER_HOUR / covered_ms if covered_ms > 0 else power_kw
        uncovered_ms = known_until - start - covered_ms
        predicted = (
            energy * _MS_PER_HOUR + average * uncovered_ms + power_kw * (end - known_until)
        ) / self._window_ms
        return DemandReading(
            window_start_ms=start,
            window_end_ms=end,
            energy_kwh=energy,
            covered_s=covered_ms / 1000,
            elapsed_s=(ref - start) / 1000,
            remaining_s=(end - ref) / 1000,
            average_kw=average,
            power_kw=power_kw,
            predicted_kw=predicted,
        )

    def energy_since(self, since_ms: int, now_ms: int) -> float:
        """The kWh used in the window at `now_ms` from `since_ms` (its start at the earliest) to
        the latest sample, a stretch the data does not cover counted at the average of what it
        does (none: 0 kW): what a part of the window has used so far."""
        if self._last_ts is None:
            return 0.0
        ref = max(now_ms, self._last_ts)
        self._forget(ref)
        start, end = self.window_at(ref)
        start = max(start, since_ms)
        known_until = min(max(self._last_ts, start), end)
        energy, covered_ms = self._used(start, known_until)
        if covered_ms == 0:
            return 0.0
        return energy * (known_until - start) / covered_ms

    def _used(self, start_ms: int, until_ms: int) -> tuple[float, int]:
        """The kWh of the segments between two instants, and the ms the segments cover."""
        energy = 0.0
        covered_ms = 0
        for begin, finish, kwh in self._segments:
            overlap = min(finish, until_ms) - max(begin, start_ms)
            if overlap > 0:
                energy += kwh * overlap / (finish - begin)
                covered_ms += overlap
        return energy, covered_ms

    def _require_source(self, source: str) -> None:
        if self.config.source != source:
            raise BlockError(
                f"demand window is configured for source: {self.config.source}, not {source}"
            )

    def _out_of_order(self, ts_ms: int) -> bool:
        """True for a sample not newer than the latest (dropped). A step back longer than a
        window means the wall clock was set back: forget everything and take it as the first."""
        if self._last_ts is None or ts_ms > self._last_ts:
            return False
        if self._last_ts - ts_ms <= self._window_ms:
            self.dropped_samples += 1
            return True
        self._segments.clear()
        self._last_ts = None
        self._power_kw = None
        return False

    def _forget(self, ref_ms: int) -> None:
        start, _ = self.window_at(ref_ms)
        while self._segments and self._segments[0][1] <= start:
            self._segments.popleft()

"""The energy rules: demand limiting (peak shaving), compressed-air pressure reset and leak
estimate, chilled-water setpoint reset, and PROFIenergy-style standby of idle machines.
docs/rules.md, "Energy and water rules", gives each one's method, source and parameters."""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, Name, PositiveDuration, StrictModel, format_duration
from controller.model import Sample
from controller.rules.blocks import NoSampleError
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes
from controller.rules.demand import DemandReading, DemandWindow, DemandWindowConfig
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    present_number,
    rounded,
    signal_inputs,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.schedule import Schedule, ScheduleConfig, TimeZoneName
from controller.rules.trimrespond import TrimRespond, TrimRespondConfig

_HOUR = 3600.0

# The values of a rule's production tags: which machines are in which state.
Mode = tuple[float, ...]

# --- peak shaving ---------------------------------------------------------------------------


class ShedLoad(StrictModel):
    """One load the rule may shed: a tag it writes `shed_value` to (false: switch off; a
    number: a setpoint that draws less, e.g. a chiller setpoint raised), and the kW that
    saves."""

    name: Name
    tag: TagKey
    kw: float = Field(gt=0)
    shed_value: OutputValue
    # Proposed while the load is not shed; null: nothing is proposed (the tag goes back to
    # the rule or PLC that normally drives it).
    restore_value: OutputValue | None = None
    min_shed: Duration = 0.0
    max_shed: PositiveDuration | None = None
    min_between: Duration = 0.0


class PeakShavingConfig(RuleCommon):
    """Keep the billing window's average demand under `limit_kw` - `margin_kw`."""

    kind: Literal["peak_shaving"]
    power: TagKey  # present site load, kW
    energy: TagKey | None = None  # import counter, kWh (else the window integrates `power`)
    limit_kw: float = Field(gt=0)
    margin_kw: float = Field(default=0.0, ge=0)
    hysteresis_kw: float = Field(default=0.0, ge=0)
    window: PositiveDuration = 900.0
    alignment: Literal["fixed", "sliding"] = "fixed"
    horizon: Duration = 0.0  # sliding: how far ahead the window's end is predicted
    timezone: TimeZoneName = "UTC"
    loads: list[ShedLoad] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PeakShavingConfig:
        if self.margin_kw >= self.limit_kw:
            raise ValueError("margin_kw must be smaller than limit_kw")
        if self.alignment == "sliding" and self.horizon <= 0:
            raise ValueError(
                "a sliding window needs a horizon (e.g. 5min): the rule predicts the average"
                " of the window ending that far ahead"
            )
        names = [load.name for load in self.loads]
        if len(set(names)) != len(names):
            raise ValueError(f"loads: names repeat: {names}")
        tags = [load.tag for load in self.loads]
        if len(set(tags)) != len(tags):
            raise ValueError(f"loads: two loads write the same tag: {tags}")
        for load in self.loads:
            if load.max_shed is not None and load.max_shed < load.min_shed:
                raise ValueError(f"loads.{load.name}: max_shed is shorter than min_shed")
        self.demand_config()
        return self

    @property
    def target_kw(self) -> float:
        return self.limit_kw - self.margin_kw

    def demand_config(self) -> DemandWindowConfig:
        settings: dict[str, Any] = {
            "source": "energy" if self.energy is not None else "power",
            "window": format_duration(self.window),
            "alignment": self.alignment,
            "timezone": self.timezone,
        }
        if self.alignment == "sliding":
            settings["horizon"] = format_duration(self.horizon)
        return DemandWindowConfig.model_validate(settings)

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("power", self.power)]
        if self.energy is not None:
            tags.append(("energy", self.energy))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = []
        for i, load in enumerate(self.loads):
            values.append((f"loads[{i}].shed_value", load.tag, load.shed_value))
            if load.restore_value is not None:
                values.append((f"loads[{i}].restore_value", load.tag, load.restore_value))
        return values


@dataclass
class _Shed:
    load: ShedLoad
    since: float | None = None  # monotonic time it was shed; None: not shed
    restored_at: float = -math.inf
    sheds: int = 0


class PeakShaving(DomainRule):
    """Each cycle: the window's average predicted from the energy used so far plus the
    uncontrolled load (measured + what is shed now) for the rest of the window; loads shed in
    list order until what is shed covers the excess, restored last-shed-first when the rest
    still covers it with `hysteresis_kw` to spare."""

    config: PeakShavingConfig

    def __init__(self, config: PeakShavingConfig) -> None:
        super().__init__(config, "peak_shaving")
        self.config = config
        self._restart()

    def _restart(self) -> None:
        self.window = DemandWindow(self.config.demand_config())
        self._loads = [_Shed(load) for load in self.config.loads]
        self._order: list[_Shed] = []  # shed loads, in the order they were shed
        self._last_ts: int | None = None
        self._reading: DemandReading | None = None
        self._measured_kw: float | None = None
        self._needed_kw: float | None = None
        self._uncontrolled_kw: float | None = None

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # After a stop every load went back to its fallback: nothing is shed any more.
        self._restart()

    @property
    def shed_loads(self) -> list[str]:
        return [shed.load.name for shed in self._order]

    @property
    def shed_kw(self) -> float:
        return sum(shed.load.kw for shed in self._order)

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

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        measured = number(snapshot, cfg.power)
        self._measured_kw = measured
        self._feed(snapshot, measured)
        t = now.monotonic
        # The measurement saw the loads shed until now. In shadow mode nothing is really shed:
        # the measurement is the uncontrolled load.
        counted = self.shed_kw if self.mode == "auto" else 0.0
        uncontrolled = measured + counted
        for shed in list(reversed(self._order)):
            limit = shed.load.max_shed
            if limit is not None and shed.since is not None and t - shed.since >= limit:
                self._restore(shed, t)
        self._uncontrolled_kw = uncontrolled
        try:
            reading = self.window.reading(now.wall_ms, power_kw=uncontrolled)
        except NoSampleError:
            return self._proposals("waiting for a second energy reading")
        self._reading = reading
        # The window ends at the target when E + (P_u - S) * R + target * U = target * W, with E
        # the energy over the covered time C, R the time left and U = W - C - R the past the
        # data does not cover (a controller started mid-window), taken at the target itself:
        # filled with the measured (controlled) average, it would feed the sheds back into the
        # prediction and make them chatter. So the shed S needed is:
        remaining = max(reading.remaining_s, 1.0)
        needed = (
            uncontrolled
            - cfg.target_kw
            + (reading.energy_kwh * _HOUR - cfg.target_kw * reading.covered_s) / remaining
        )
        self._needed_kw = needed
        if needed > self.shed_kw:
            for shed in self._loads:
                if self.shed_kw >= needed:
                    break
                if shed.since is None and t - shed.restored_at >= shed.load.min_between:
                    shed.since = t
                    shed.sheds += 1
                    self._order.append(shed)
        elif self._order:
            last = self._order[-1]
            held = t - (last.since or t) < last.load.min_shed
            if not held and self.shed_kw - last.load.kw >= needed + cfg.hysteresis_kw:
                self._restore(last, t)
        return self._proposals(
            f"predicted {reading.predicted_kw:.1f} kW uncontrolled against {cfg.target_kw:g} kW:"
            f" {needed:.1f} kW to shed, {self.shed_kw:g} kW shed"
        )

    def _restore(self, shed: _Shed, t: float) -> None:
        shed.since = None
        shed.restored_at = t
        self._order.remove(shed)

    def _proposals(self, reason: str) -> list[Proposal]:
        out: list[Proposal] = []
        for shed in self._loads:
            load = shed.load
            if shed.since is not None:
                out.append(self.propose(load.tag, load.shed_value, f"shed {load.name}: {reason}"))
            elif load.restore_value is not None:
                out.append(self.propose(load.tag, load.restore_value, reason))
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
            "target_kw": self.config.target_kw,
            "needed_kw": rounded(self._needed_kw),
            "shed_kw": self.shed_kw,
            "shed": self.shed_loads,
        }


# --- trim and respond on a requirement ------------------------------------------------------


class Requirement(StrictModel):
    """A load's need the reset must keep: `tag` at least `min` (a far-end pressure) or at
    most `max` (a process temperature, a valve position). Within `margin` of it the load makes
    one request; past it, two."""

    tag: TagKey
    min: float | None = None
    max: float | None = None
    margin: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_side(self) -> Requirement:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min: or max:")
        return self

    def requests(self, value: float) -> int:
        if self.min is not None:
            return 2 if value < self.min else 1 if value < self.min + self.margin else 0
        if self.max is not None:
            return 2 if value > self.max else 1 if value > self.max - self.margin else 0
        return 0

    def violated(self, value: float) -> bool:
        return self.requests(value) == 2


def _requests(requirements: list[Requirement], snapshot: Mapping[str, Sample]) -> int:
    return sum(req.requests(number(snapshot, req.tag)) for req in requirements)


# --- compressed air -------------------------------------------------------------------------


class LeakTestConfig(StrictModel):
    """The load/unload leak test of the DOE/Compressed Air Challenge, run whenever there is no
    production: with no air used, every loaded second makes up for leaks."""

    loaded: TagKey  # true (or 1) while the compressor is loaded
    power: TagKey | None = None  # compressor input power, kW: averaged while loaded
    full_load_kw: float | None = Field(default=None, gt=0)  # when there is no power tag
    rated_flow_m3_min: float | None = Field(default=None, gt=0)  # to give the leak in m3/min
    settle: Duration = 300.0  # after production stops, before cycles count
    min_cycles: int = Field(default=3, ge=1)
    alarm_above: float = Field(default=0.25, gt=0, lt=1)  # leak fraction
    # A rise of the air used in production (learned per state) above what earlier windows
    # used also counts as a leak; null: only the no-production test alarms.
    rise_above: float | None = Field(default=0.05, gt=0, lt=1)
    rise_window: PositiveDuration = 900.0
    rise_for: Duration = 600.0
    rise_history: int = Field(default=16, ge=2)
    rise_min_history: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _power_known(self) -> LeakTestConfig:
        if self.power is None and self.full_load_kw is None:
            raise ValueError("give power: (a tag) or full_load_kw: to estimate the kW lost")
        if self.rise_min_history > self.rise_history:
            raise ValueError("rise_min_history must not exceed rise_history")
        return self


class OutsideProduction(StrictModel):
    """What the compressor does while there is no production: a lower setpoint, or off."""

    setpoint_bar: float | None = None
    stop: TagKey | None = None  # a run command: `stop_value` outside production
    stop_value: OutputValue = False
    run_value: OutputValue = True

    @model_validator(mode="after")
    def _something(self) -> OutsideProduction:
        if self.setpoint_bar is None and self.stop is None:
            raise ValueError("give setpoint_bar:, stop: or both")
        return self


class CompressedAirConfig(RuleCommon):
    """Trim and respond on the pressure setpoint against the far-end requirement(s)."""

    kind: Literal["compressed_air"]
    setpoint: TagKey
    critical: list[Requirement] = Field(min_length=1)
    reset: TrimRespondConfig
    production: ProductionSignal | None = None
    outside_production: OutsideProduction | None = None
    leak_test: LeakTestConfig | None = None
    pressure_alarm_after: Duration = 300.0  # a requirement violated this long raises an alarm

    @model_validator(mode="after")
    def _consistent(self) -> CompressedAirConfig:
        if self.reset.trim >= 0:
            raise ValueError("reset.trim lowers the pressure: it must be negative")
        if self.critical[0].min is None or any(req.min is None for req in self.critical):
            raise ValueError("critical pressures are minimums: give min:, not max:")
        if (self.outside_production or self.leak_test) and self.production is None:
            raise ValueError("outside_production and leak_test need a production: signal")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [(f"critical[{i}].tag", req.tag) for i, req in enumerate(self.critical)]
        tags += signal_inputs("production", self.production)
        test = self.leak_test
        if test is not None:
            tags.append(("leak_test.loaded", test.loaded))
            if test.power is not None:
                tags.append(("leak_test.power", test.power))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = [("setpoint", self.setpoint, None)]
        outside = self.outside_production
        if outside is not None and outside.stop is not None:
            values.append(("outside_production.stop_value", outside.stop, outside.stop_value))
            values.append(("outside_production.run_value", outside.stop, outside.run_value))
        return values


@dataclass(frozen=True, slots=True)
class LoadCycle:
    """One load/unload cycle, from a load to the next: how long, how long loaded, and the kWh
    used while loaded (None when there is no power tag)."""

    end: float
    total_s: float
    loaded_s: float
    loaded_kwh: float | None


class LoadUnloadCycles:
    """Follows a compressor's loaded signal and cuts it into whole cycles (load to next load),
    so a duty is always measured over whole cycles: a window that ends mid-cycle would count a
    half cycle as all loaded or all unloaded."""

    def __init__(self) -> None:
        self.cycles: deque[LoadCycle] = deque()
        self._cycle_start: float | None = None
        self._loaded_s = 0.0
        self._kwh = 0.0
        self._kwh_known = True
        self._last: tuple[float, bool, float | None] | None = None

    def reset(self) -> None:
        self.cycles.clear()
        self._cycle_start = None
        self._last = None

    def add(self, t: float, loaded: bool, power_kw: float | None) -> LoadCycle | None:
        """A reading at time `t` (seconds); returns the cycle it completes, if any."""
        last = self._last
        self._last = (t, loaded, power_kw)
        if last is None or t <= last[0]:
            return None
        t0, was_loaded, p0 = last
        if self._cycle_start is not None and was_loaded:
            self._loaded_s += t - t0
            if p0 is None:
                self._kwh_known = False
            else:
                self._kwh += p0 * (t - t0) / _HOUR
        if loaded and not was_loaded:
            done = None
            if self._cycle_start is not None:
                done = LoadCycle(
                    end=t,
                    total_s=t - self._cycle_start,
                    loaded_s=self._loaded_s,
                    loaded_kwh=self._kwh if self._kwh_known else None,
                )
                self.cycles.append(done)
            self._cycle_start = t
            self._loaded_s = 0.0
            self._kwh = 0.0
            self._kwh_known = True
            return done
        return None

    def since(self, start: float) -> list[LoadCycle]:
        """The whole cycles that began at or after `start`."""
        return [c for c in self.cycles if c.end - c.total_s >= start]

    def forget_before(self, start: float) -> None:
        while self.cycles and self.cycles[0].end - self.cycles[0].total_s < start:
            self.cycles.popleft()


def leak_fraction(cycles: list[LoadCycle]) -> float:
    """DOE/CAC load/unload test: leakage = loaded time / (loaded + unloaded time)."""
    total = sum(c.total_s for c in cycles)
    if total <= 0:
        raise NoSampleError("no whole load/unload cycle yet")
    return sum(c.loaded_s for c in cycles) / total


class CompressedAir(DomainRule):
    """Lowest header pressure that keeps every far-end requirement (trim and respond), a lower
    setpoint or stop outside production, and the leak estimate from load/unload cycles."""

    config: CompressedAirConfig

    def __init__(self, config: CompressedAirConfig) -> None:
        super().__init__(config, "compressed_air")
        self.config = config
        self.reset = TrimRespond(config.reset)
        self.cycles = LoadUnloadCycles()
        # Per production mode (the values of the production tags: which machines are in which
        # state): the setpoint trim and respond reached in it, and the duty of whole windows.
        self._mode_setpoints: dict[Mode, float] = {}
        self._rise_history: dict[Mode, deque[float]] = {}
        self._leak: dict[str, Any] | None = None
        self._rise: dict[str, Any] | None = None
        self._test_alarm = False
        self._rise_alarm = False
        self._restart_state()

    def _restart_state(self) -> None:
        """Timers and the cycle record restart (a gap in the inputs breaks cycles); what was
        learned and the alarms' latches are kept."""
        self._mode: Mode | None = None
        self._producing: bool | None = None
        self._state_since = 0.0
        self._violated_since: float | None = None
        self._last_violation = 0.0
        self._low: tuple[str, float, float] = ("", 0.0, 0.0)
        self._rise_since: float | None = None
        self._rise_window_start: float | None = None
        self._worst: float | None = None
        self.cycles.reset()

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self._restart_state()
        self.reset.reset(now.monotonic, present_number(snapshot, self.config.setpoint))

    def _mode_of(self, snapshot: Mapping[str, Sample]) -> Mode:
        signal = self.config.production
        if signal is None:
            return ()
        return tuple(round(number(snapshot, tag), 3) for tag in signal.tags)

    def _change_mode(self, mode: Mode, producing: bool, t: float) -> None:
        """Another production mode: the setpoint goes to the one reached in that mode before
        (a mode never seen starts from `reset.initial`, else max: the safe end), and timers
        restart, held for `reset.delay` while the pressure settles."""
        reset = self.reset
        if self._mode is not None and self._producing and reset.started:
            self._mode_setpoints[self._mode] = reset.value
        if producing:
            known = self._mode_setpoints.get(mode)
            start = known if known is not None else self.config.reset.initial
            reset.reset(t, start if start is not None else self.config.reset.max)
        self._mode = mode
        self._producing = producing
        self._state_since = t
        self._rise_window_start = None
        self._rise_since = None

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        producing = True if cfg.production is None else cfg.production.on(snapshot)
        mode = self._mode_of(snapshot)
        if mode != self._mode:
            self._change_mode(mode, producing, t)
        requests = _requests(cfg.critical, snapshot)
        worst = min(number(snapshot, req.tag) for req in cfg.critical)
        self._worst = worst
        outside = cfg.outside_production
        out: list[Proposal] = []
        if producing or outside is None or outside.setpoint_bar is None:
            setpoint = self.reset.update(t, requests if producing else 0)
            reason = (
                f"trim and respond: far end {worst:.2f} bar, {requests} request(s),"
                f" last step {self.reset.last_step:+g} bar"
            )
        else:
            setpoint = outside.setpoint_bar
            reason = "no production: lower setpoint"
        out.append(self.propose(cfg.setpoint, round(setpoint, 4), reason))
        if outside is not None and outside.stop is not None:
            value = outside.run_value if producing else outside.stop_value
            out.append(self.propose(outside.stop, value, "production" if producing else reason))
        self._pressure_alarm(cfg, snapshot, producing, t, setpoint)
        if cfg.leak_test is not None:
            self._leaks(cfg.leak_test, snapshot, producing, t)
        return out

    def _pressure_alarm(
        self,
        cfg: CompressedAirConfig,
        snapshot: Mapping[str, Sample],
        producing: bool,
        t: float,
        setpoint: float,
    ) -> None:
        """`pressure_low` when a requirement keeps being violated: dips below it recur within
        every trim-and-respond period for `pressure_alarm_after`."""
        low = [req for req in cfg.critical if req.violated(number(snapshot, req.tag))]
        if producing and low:
            if self._violated_since is None:
                self._violated_since = t
            self._last_violation = t
            self._low = (low[0].tag, number(snapshot, low[0].tag), low[0].min or 0.0)
        elif not producing or (
            self._violated_since is not None and t - self._last_violation > cfg.reset.period
        ):
            self._violated_since = None
        if self._violated_since is None:
            self.set_alarm("pressure_low", False)
            return
        if t - self._violated_since < cfg.pressure_alarm_after:
            return
        tag, value, minimum = self._low
        self.set_alarm(
            "pressure_low",
            True,
            f"{tag} under its minimum {minimum:g} bar again and again for"
            f" {format_duration(cfg.pressure_alarm_after)} (last {value:.2f} bar) with the"
            f" setpoint at {setpoint:.2f} bar",
            {
                "far_end_bar": round(value, 3),
                "min_bar": minimum,
                "setpoint_bar": round(setpoint, 3),
            },
        )

    def _leaks(
        self, test: LeakTestConfig, snapshot: Mapping[str, Sample], producing: bool, t: float
    ) -> None:
        loaded = number(snapshot, test.loaded) >= 0.5
        power = number(snapshot, test.power) if test.power is not None else None
        done = self.cycles.add(t, loaded, power)
        self.cycles.forget_before(t - max(test.rise_window, 2 * _HOUR))
        if not producing and done is not None:
            counted = self.cycles.since(self._state_since + test.settle)
            if len(counted) >= test.min_cycles:
                self._leak = self._estimate(test, counted, "load_unload_test")
                # Latched by test results: raised by one over the threshold, cleared by one
                # under it, whatever happens in production in between.
                self._test_alarm = self._leak["leak_fraction"] >= test.alarm_above
        if test.rise_above is not None and done is not None:
            self._watch_rise(test, test.rise_above, t)
        if self._test_alarm and self._leak is not None:
            leak = self._leak
            self.set_alarm(
                "air_leak",
                True,
                f"leak test: compressor loaded {leak['leak_fraction']:.0%} of the time with no"
                f" air used, about {leak['kw_lost']:.1f} kW lost",
                leak,
            )
        elif self._rise_alarm and self._rise is not None:
            rise = self._rise
            self.set_alarm(
                "air_leak",
                True,
                f"air use {rise['rise']:.0%} of capacity above earlier windows in the same mode"
                f" for over {format_duration(test.rise_for)}: about {rise['kw_lost']:.1f} kW lost",
                rise,
            )
        else:
            self.set_alarm("air_leak", False)

    def _loaded_kw(self, test: LeakTestConfig, cycles: list[LoadCycle]) -> float:
        loaded_s = sum(c.loaded_s for c in cycles)
        kwh = [c.loaded_kwh for c in cycles]
        if test.power is not None and loaded_s > 0 and all(k is not None for k in kwh):
            return sum(k for k in kwh if k is not None) * _HOUR / loaded_s
        return test.full_load_kw or 0.0

    def _estimate(
        self, test: LeakTestConfig, cycles: list[LoadCycle], method: str
    ) -> dict[str, Any]:
        fraction = leak_fraction(cycles)
        loaded_kw = self._loaded_kw(test, cycles)
        estimate: dict[str, Any] = {
            "method": method,
            "leak_fraction": round(fraction, 4),
            "cycles": len(cycles),
            "loaded_kw": round(loaded_kw, 2),
            # Every loaded second of the test makes up for leaks (DOE/CAC).
            "kw_lost": round(fraction * loaded_kw, 2),
        }
        if test.rated_flow_m3_min is not None:
            estimate["leak_m3_min"] = round(fraction * test.rated_flow_m3_min, 3)
        return estimate

    def _watch_rise(self, test: LeakTestConfig, rise_above: float, t: float) -> None:
        """Duty over the whole cycles of the last `rise_window` against the median of earlier
        whole windows in the same production mode. Windows are learned only while no leak is
        suspected, so a leak is never learned as normal."""
        begin = self._state_since + test.settle
        if t < begin:
            return
        if self._rise_window_start is None:
            self._rise_window_start = t
        recent = self.cycles.since(max(t - test.rise_window, begin))
        mode = self._mode if self._mode is not None else ()
        history = self._rise_history.setdefault(mode, deque())
        full = sum(c.total_s for c in recent) >= 0.8 * test.rise_window
        if recent and full and len(history) >= test.rise_min_history:
            duty = leak_fraction(recent)
            baseline = statistics.median(history)
            rise = duty - baseline
            loaded_kw = self._loaded_kw(test, recent)
            self._rise = {
                "method": "air_use_rise",
                "state": "production" if self._producing else "no-production",
                "mode": list(mode),
                "duty": round(duty, 4),
                "baseline_duty": round(baseline, 4),
                "rise": round(rise, 4),
                "loaded_kw": round(loaded_kw, 2),
                "kw_lost": round(max(0.0, rise) * loaded_kw, 2),
            }
            if test.rated_flow_m3_min is not None:
                self._rise["leak_m3_min"] = round(max(0.0, rise) * test.rated_flow_m3_min, 3)
            if rise >= rise_above:
                if self._rise_since is None:
                    self._rise_since = t
                if t - self._rise_since >= test.rise_for:
                    self._rise_alarm = True
            else:
                self._rise_since = None
                if rise < rise_above / 2:
                    self._rise_alarm = False
        if t - self._rise_window_start >= test.rise_window:
            window = self.cycles.since(self._rise_window_start)
            quiet = not self._rise_alarm and not self._test_alarm and self._rise_since is None
            if window and quiet:
                history.append(leak_fraction(window))
                while len(history) > test.rise_history:
                    history.popleft()
            self._rise_window_start = t

    def detail(self) -> dict[str, Any]:
        return {
            "setpoint_bar": rounded(self.reset.value if self.reset.started else None),
            "worst_far_end_bar": rounded(self._worst),
            "last_requests": self.reset.last_requests,
            "last_step_bar": self.reset.last_step,
            "producing": self._producing,
            "leak_test": self._leak,
            "air_use": self._rise,
            "mode": None if self._mode is None else list(self._mode),
            "learned": [
                {
                    "mode": list(mode),
                    "setpoint_bar": rounded(self._mode_setpoints.get(mode)),
                    "duty": [round(d, 4) for d in history],
                }
                for mode, history in self._rise_history.items()
            ],
        }


# --- chilled water --------------------------------------------------------------------------


class ChillerResetConfig(RuleCommon):
    """Trim and respond on the chilled-water supply setpoint against the process limits."""

    kind: Literal["chiller_reset"]
    setpoint: TagKey
    process: list[Requirement] = Field(min_length=1)
    reset: TrimRespondConfig
    production: ProductionSignal | None = None
    # Outside production the setpoint goes here (the warmest the idle loop may run).
    outside_production_c: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChillerResetConfig:
        if self.reset.trim <= 0:
            raise ValueError("reset.trim raises the chilled-water setpoint: it must be positive")
        if self.outside_production_c is not None and self.production is None:
            raise ValueError("outside_production_c needs a production: signal")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [(f"process[{i}].tag", req.tag) for i, req in enumerate(self.process)]
        return tags + signal_inputs("production", self.production)

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [("setpoint", self.setpoint, self.outside_production_c)]


class ChillerReset(DomainRule):
    """The warmest chilled water that keeps every process requirement: trims the setpoint up
    every period, responds down to each request."""

    config: ChillerResetConfig

    def __init__(self, config: ChillerResetConfig) -> None:
        super().__init__(config, "chiller_reset")
        self.config = config
        self.reset = TrimRespond(config.reset)
        self._producing: bool | None = None
        self._requests = 0

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self.reset.reset(now.monotonic, present_number(snapshot, self.config.setpoint))
        self._producing = None

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        producing = True if cfg.production is None else cfg.production.on(snapshot)
        if producing and self._producing is False and self.reset.started:
            self.reset.reset(t, self.reset.value)
        self._producing = producing
        self._requests = _requests(cfg.process, snapshot)
        if not producing and cfg.outside_production_c is not None:
            return [self.propose(cfg.setpoint, cfg.outside_production_c, "no production")]
        setpoint = self.reset.update(t, self._requests)
        worst = max(
            number(snapshot, req.tag) - (req.max if req.max is not None else 0.0)
            for req in cfg.process
        )
        reason = (
            f"trim and respond: process {worst:+.2f} K from its limit, {self._requests}"
            f" request(s), last step {self.reset.last_step:+g} K"
        )
        return [self.propose(cfg.setpoint, round(setpoint, 4), reason)]

    def detail(self) -> dict[str, Any]:
        return {
            "setpoint_c": rounded(self.reset.value if self.reset.started else None),
            "requests": self._requests,
            "last_requests": self.reset.last_requests,
            "last_step_k": self.reset.last_step,
            "producing": self._producing,
        }


# --- idle machines to standby ---------------------------------------------------------------


class StandbyMachine(StrictModel):
    """One machine and its PROFIenergy-style figures."""

    name: Name
    state: TagKey  # the machine's state code
    idle_codes: list[float] = Field(default=[2.0], min_length=1)
    command: TagKey  # standby request written by the rule
    standby_value: OutputValue = True
    run_value: OutputValue = False
    idle_kw: float = Field(gt=0)
    standby_kw: float = Field(ge=0)
    restart_kwh: float = Field(default=0.0, ge=0)  # energy to come back to ready
    idle_for: Duration = 300.0  # idle this long before standby is considered
    min_pause: Duration  # [Time_min_Pause]: shorter pauses are not worth a standby
    time_to_pause: Duration = 0.0  # [Time_to_Pause]
    wake_up_time: Duration  # [Time_to_operate]: wake this long before a scheduled start
    max_starts_per_hour: int | None = Field(default=None, ge=1)
    start: ProductionSignal | None = None  # wakes the machine at once

    @model_validator(mode="after")
    def _consistent(self) -> StandbyMachine:
        if self.standby_kw >= self.idle_kw:
            raise ValueError("standby_kw must be below idle_kw: else standby saves nothing")
        if self.min_pause < self.time_to_pause + self.wake_up_time:
            raise ValueError("min_pause must cover time_to_pause + wake_up_time")
        return self


class IdleStandbyConfig(RuleCommon):
    """Standby for machines idle through a long enough pause of the production schedule."""

    kind: Literal["idle_standby"]
    schedule: ScheduleConfig
    production_periods: list[Name] = Field(min_length=1)
    machines: list[StandbyMachine] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> IdleStandbyConfig:
        known = self.schedule.period_names
        for period in self.production_periods:
            if period not in known:
                raise ValueError(
                    f"production_periods: the schedule has no period {period!r};"
                    f" it has {sorted(known)}"
                )
        names = [m.name for m in self.machines]
        if len(set(names)) != len(names):
            raise ValueError(f"machines: names repeat: {names}")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags: list[tuple[str, str]] = []
        for i, machine in enumerate(self.machines):
            tags.append((f"machines[{i}].state", machine.state))
            tags += signal_inputs(f"machines[{i}].start", machine.start)
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = []
        for i, machine in enumerate(self.machines):
            values.append((f"machines[{i}].standby_value", machine.command, machine.standby_value))
            values.append((f"machines[{i}].run_value", machine.command, machine.run_value))
        return values


def standby_saving_kwh(machine: StandbyMachine, pause_s: float) -> float:
    """Energy a standby saves over a pause: (idle - standby) kW over the time spent in standby
    (the pause less the time to enter it and to wake), less the energy to come back."""
    in_standby = max(0.0, pause_s - machine.time_to_pause - machine.wake_up_time)
    return (machine.idle_kw - machine.standby_kw) * in_standby / _HOUR - machine.restart_kwh


@dataclass
class _Machine:
    spec: StandbyMachine
    starts: MinOnOffTimes
    idle_since: float | None = None
    standby_since: float | None = None
    reason: str = ""
    pause_s: float | None = None


class IdleStandby(DomainRule):
    """PROFIenergy's rule: a pause is used for standby only when it is at least the machine's
    minimum pause and saves more energy than the restart costs; the machine is woken by its
    wake-up time before the next production period, or at once by its start signal."""

    config: IdleStandbyConfig

    def __init__(self, config: IdleStandbyConfig) -> None:
        super().__init__(config, "idle_standby")
        self.config = config
        self.schedule = Schedule(config.schedule)
        self._machines: list[_Machine] = []
        self._next_start: int | None = None
        self._last_wall_ms = 0
        self._t = 0.0
        self._restart(0.0)

    def _restart(self, t: float) -> None:
        previous = {m.spec.name: m.starts for m in self._machines}
        self._machines = [
            _Machine(
                spec,
                previous.get(spec.name)
                or MinOnOffTimes(
                    MinOnOffConfig(max_starts_per_hour=spec.max_starts_per_hour),
                    state=True,
                    since=t,
                ),
            )
            for spec in self.config.machines
        ]

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # The machines were woken (fallback) when the rule stopped; start counts are kept.
        self._restart(now.monotonic)
        for machine in self._machines:
            if machine.starts.state is False:
                machine.starts.observe(now.monotonic, True)

    def next_start_ms(self, wall_ms: int) -> int | None:
        """When the next production period starts (now, when one is active)."""
        if self.schedule.period_at(wall_ms) in self.config.production_periods:
            self._next_start = None
            return wall_ms
        cached, last = self._next_start, self._last_wall_ms
        self._last_wall_ms = wall_ms
        if cached is not None and last <= wall_ms < cached:
            return cached  # nothing starts before it (unless the clock was set back)
        starts = [self.schedule.next_start(wall_ms, p) for p in self.config.production_periods]
        known = [s for s in starts if s is not None]
        self._next_start = min(known) if known else None
        return self._next_start

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        t = self._t = now.monotonic
        next_start = self.next_start_ms(now.wall_ms)
        pause_s = None if next_start is None else (next_start - now.wall_ms) / 1000
        out: list[Proposal] = []
        for machine in self._machines:
            spec = machine.spec
            machine.pause_s = pause_s
            started = spec.start is not None and spec.start.on(snapshot)
            if machine.standby_since is not None:
                wake = started or (pause_s is not None and pause_s <= spec.wake_up_time)
                if wake:
                    machine.standby_since = None
                    machine.idle_since = None
                    machine.starts.request(t, True)
                    machine.reason = "start signal" if started else "wake-up before production"
            else:
                idle = number(snapshot, spec.state) in spec.idle_codes
                if not idle:
                    machine.idle_since = None
                elif machine.idle_since is None:
                    machine.idle_since = t
                machine.reason = self._standby_check(machine, t, pause_s, started)
                if machine.reason == "":
                    machine.standby_since = t
                    machine.starts.request(t, False)
                    machine.reason = (
                        f"standby: pause {format_duration(round(pause_s or 0.0))},"
                        f" saves {standby_saving_kwh(spec, pause_s or 0.0):.2f} kWh"
                    )
            if machine.standby_since is not None:
                out.append(self.propose(spec.command, spec.standby_value, machine.reason))
            else:
                out.append(self.propose(spec.command, spec.run_value, machine.reason))
        return out

    def _standby_check(
        self, machine: _Machine, t: float, pause_s: float | None, started: bool
    ) -> str:
        """'' when the machine should go to standby now, else why not."""
        spec = machine.spec
        if machine.idle_since is None:
            return "not idle"
        if started:
            return "start signal on"
        if t - machine.idle_since < spec.idle_for:
            return f"idle for less than {format_duration(spec.idle_for)}"
        if pause_s is None:
            return "no production period ahead in the schedule"
        if pause_s < spec.min_pause:
            return f"pause {format_duration(round(pause_s))} shorter than min_pause"
        if standby_saving_kwh(spec, pause_s) <= 0:
            return "standby would save less than the restart costs"
        limit = spec.max_starts_per_hour
        if limit is not None and machine.starts.starts_in_last_hour(t) >= limit:
            return f"{limit} starts in the last hour already"
        return ""

    def detail(self) -> dict[str, Any]:
        return {
            machine.spec.name: {
                "standby": machine.standby_since is not None,
                "idle_s": None
                if machine.idle_since is None
                else round(self._t - machine.idle_since, 1),
                "pause_s": rounded(machine.pause_s, 0),
                "saving_kwh": rounded(
                    None
                    if machine.pause_s is None
                    else standby_saving_kwh(machine.spec, machine.pause_s)
                ),
                "reason": machine.reason,
            }
            for machine in self._machines
        }

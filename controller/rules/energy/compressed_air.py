"""Compressed air: the header pressure reset by trim and respond against the far end, a lower
setpoint or stop outside production, the load/unload leak test and the air-use rise alarm.
docs/rules.md, "compressed_air", gives the method, source and parameters."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.alarms import DeclaredAlarm, Indicates, declare
from controller.configtypes import Duration, PositiveDuration, StrictModel, format_duration
from controller.model import Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionMode,
    ProductionSignal,
    present_number,
    rounded,
    signal_inputs,
)
from controller.rules.energy.air_use import P_ATM_BAR, AirUseRise, RiseSettings
from controller.rules.energy.load_cycles import LoadCycle, LoadUnloadCycles, leak_fraction
from controller.rules.energy.requirement import (
    Requirement,
    Trend,
    count_requests,
    first_endangered,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.steps import EstimateSteps
from controller.rules.trimrespond import TrimRespond, TrimRespondConfig

_HOUR = 3600.0
_MAX_FLOW_SHARE = 2.0  # of the rated flow: more is not a reading of this header


class LeakTestConfig(StrictModel):
    """The load/unload leak test of the DOE/Compressed Air Challenge, run whenever there is no
    production: with no air used, every loaded second makes up for leaks."""

    loaded: TagKey  # true (or 1) while the compressor is loaded
    power: TagKey | None = None  # compressor input power, kW: averaged while loaded
    full_load_kw: float | None = Field(default=None, gt=0)  # when there is no power tag
    rated_flow_m3_min: float | None = Field(default=None, gt=0)  # to give the leak in m3/min
    # A header flow meter (free air, m3/min): the air-use rise judges its mean flow (a share of
    # `rated_flow_m3_min`) instead of the duty of the loaded signal's cycles.
    flow: TagKey | None = None
    # Header pressure (gauge, bar): windows are compared at the same pressure (leaks grow with
    # it). None: the setpoint's read-back stands for it.
    pressure: TagKey | None = None
    # Signals the machines' air use follows (each machine's power, kW, or a part rate): in
    # production the flow is fitted on them per mode and the rise judged on what they do not
    # explain; the floor falls with the wander they explain, to `explained_rise_above` at
    # least. Needs `flow`. Empty: the flow alone (today's behaviour).
    explained_by: list[TagKey] = Field(default_factory=list, max_length=32)
    explained_rise_above: float | None = Field(default=0.01, gt=0, lt=1)
    settle: Duration = 300.0  # after production stops, before cycles count
    min_cycles: int = Field(default=3, ge=1)
    # Standing leakage (the test's leak fraction) above this is a maintenance finding
    # (`leakage_high`), not a new leak: DOE/CAC, 20-30 % typical of unmanaged plants.
    alarm_above: float = Field(default=0.25, gt=0, lt=1)
    # A new leak: a rise of the air use (flow or duty) above earlier whole windows of the same
    # mode at the same pressure, in production (`rise_above`) and with no production
    # (`test_rise_above`, where the use is the leakage itself and steady); each raised by
    # `rise_sigmas` times the robust spread of those windows and by the duty's resolution.
    # Null: that state is not watched.
    rise_above: float | None = Field(default=0.03, gt=0, lt=1)
    test_rise_above: float | None = Field(default=0.01, gt=0, lt=1)
    rise_sigmas: float = Field(default=6.0, ge=0)
    rise_window: PositiveDuration = 900.0
    # With no production the use is steady: shorter windows judge a night sooner.
    test_rise_window: PositiveDuration = 300.0
    rise_for: Duration = 300.0  # the window already averages: the hold only skips a burst
    rise_history: int = Field(default=16, ge=2)
    rise_min_history: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _power_known(self) -> LeakTestConfig:
        if self.power is None and self.full_load_kw is None:
            raise ValueError("give power: (a tag) or full_load_kw: to estimate the kW lost")
        if self.rise_min_history > self.rise_history:
            raise ValueError("rise_min_history must not exceed rise_history")
        if self.flow is not None and self.rated_flow_m3_min is None:
            raise ValueError("flow: needs rated_flow_m3_min: (the flow is judged as its share)")
        if self.explained_by and self.flow is None:
            raise ValueError("explained_by: needs flow: (a header flow meter to fit on them)")
        if len(set(self.explained_by)) != len(self.explained_by):
            raise ValueError("explained_by: a tag is listed twice")
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


class AirHeadroom(StrictModel):
    """The compressor's spare capacity. A lower header spends the air stored in the receiver
    and the pipes; a compressor loaded nearly all the time cannot win it back, so when the
    air used goes past what it delivers the far end falls sooner than at the design pressure.
    While the compressor was loaded `hold_above` of the last `window` or more (`loaded`: true
    or 1 while loaded), and for `hold_for` after, the setpoint in production is held at
    `reset.initial` (else `reset.max`) at least."""

    loaded: TagKey
    hold_above: float = Field(0.9, gt=0, le=1)
    window: PositiveDuration = 600.0
    hold_for: Duration = 900.0


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
    # In production, never below the highest setpoint learned for a production mode: a step of
    # air (the end of a break, machines starting together) then starts from a header that
    # holds the far end. False: each mode trims to its own (today's behaviour).
    hold_for_load_steps: bool = False
    # Off by default: the reset trims whatever the compressor's duty.
    headroom: AirHeadroom | None = None

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
            if test.flow is not None:
                tags.append(("leak_test.flow", test.flow))
            if test.pressure is not None:
                tags.append(("leak_test.pressure", test.pressure))
            tags += [
                (f"leak_test.explained_by[{i}]", tag) for i, tag in enumerate(test.explained_by)
            ]
        if self.headroom is not None:
            tags.append(("headroom.loaded", self.headroom.loaded))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = [("setpoint", self.setpoint, None)]
        outside = self.outside_production
        if outside is not None and outside.stop is not None:
            values.append(("outside_production.stop_value", outside.stop, outside.stop_value))
            values.append(("outside_production.run_value", outside.stop, outside.run_value))
        return values


class CompressedAir(DomainRule):
    """Lowest header pressure that keeps every far-end requirement (trim and respond), a lower
    setpoint or stop outside production, and the leak estimate from load/unload cycles."""

    config: CompressedAirConfig
    ALARMS = declare(
        air_leak=DeclaredAlarm(Indicates.AIR_LEAK, "compressed_air"),
        leakage_high=DeclaredAlarm(Indicates.MAINTENANCE, "compressed_air"),
        pressure_low=DeclaredAlarm(Indicates.PROCESS_LIMIT, "compressed_air"),
    )

    def __init__(self, config: CompressedAirConfig) -> None:
        super().__init__(config, "compressed_air")
        self.config = config
        # The machines' work signals only sharpen the leak estimate: a power meter that fails
        # must not stop the pressure control, so they are read where good and fresh (a poll
        # without them is left out of the fit), never required inputs.
        if config.leak_test is not None:
            required = {
                tag
                for field, tag in config.input_tags()
                if not field.startswith("leak_test.explained_by")
            }
            optional = set(config.leak_test.explained_by) - required
            self.inputs = {tag: age for tag, age in self.inputs.items() if tag not in optional}
        self.reset = TrimRespond(config.reset)
        self.cycles = LoadUnloadCycles()
        # Per production mode (the values of the production tags: which machines are in which
        # state): the setpoint trim and respond reached in it, and the duty of whole windows.
        self._mode_setpoints: dict[ProductionMode, float] = {}
        self._leak: dict[str, Any] | None = None
        self._test_alarm = False
        test = config.leak_test or LeakTestConfig(loaded="unused.loaded", full_load_kw=1.0)
        self.air_use = AirUseRise(
            RiseSettings(
                rise_above=test.rise_above,
                test_rise_above=test.test_rise_above,
                sigmas=test.rise_sigmas,
                window_s=test.rise_window,
                test_window_s=test.test_rise_window,
                hold_s=test.rise_for,
                history=test.rise_history,
                min_history=test.rise_min_history,
                prior_leakage=test.alarm_above,
                by_flow=test.flow is not None,
                explained=len(test.explained_by),
                explained_rise_above=test.explained_rise_above,
                explained_names=tuple(test.explained_by),
            )
        )
        # The air_leak alarm's estimate stepping up by the rise that raises it: another leak.
        self._step_floor = min(
            (f for f in (test.rise_above, test.test_rise_above) if f is not None),
            default=test.alarm_above,
        )
        self._steps = EstimateSteps(self._step_floor, test.rise_for, test.rise_window)
        self._trends = [Trend() for _ in config.critical]
        self._endangered: str | None = None
        self._last_fast: str | None = None
        self._duty: deque[tuple[float, bool]] = deque()
        self._held_until: float | None = None
        self._restart_state()

    def _restart_state(self) -> None:
        """Timers and the cycle record restart (a gap in the inputs breaks cycles); what was
        learned and the alarms' latches are kept."""
        self._mode: ProductionMode | None = None
        self._producing: bool | None = None
        self._state_since = 0.0
        self._violated_since: float | None = None
        self._last_violation = 0.0
        self._low: tuple[str, float, float] = ("", 0.0, 0.0)
        self.air_use.new_state()
        self._worst: float | None = None
        self._fast_at: float | None = None
        for trend in self._trends:
            trend.clear()
        self.cycles.reset()
        self._duty.clear()

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self._restart_state()
        self.reset.reset(now.monotonic, present_number(snapshot, self.config.setpoint))

    def _mode_of(self, snapshot: Mapping[str, Sample]) -> ProductionMode:
        signal = self.config.production
        if signal is None:
            return ()
        return tuple(round(number(snapshot, tag), 3) for tag in signal.tags)

    def _change_mode(self, mode: ProductionMode, producing: bool, t: float) -> None:
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
        self.air_use.new_state()

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        producing = True if cfg.production is None else cfg.production.on(snapshot)
        mode = self._mode_of(snapshot)
        if mode != self._mode:
            self._change_mode(mode, producing, t)
        requests = count_requests(cfg.critical, snapshot)
        worst = min(number(snapshot, req.tag) for req in cfg.critical)
        self._worst = worst
        outside = cfg.outside_production
        out: list[Proposal] = []
        if producing or outside is None or outside.setpoint_bar is None:
            floor = self._load_step_floor() if producing else None
            held = producing and self._held(snapshot, t)
            if held:
                # Not trimmed under the design pressure either: released, the setpoint goes
                # on from there, not from what trim and respond reached meanwhile.
                reset = cfg.reset
                design = reset.initial if reset.initial is not None else reset.max
                if self.reset.started and self.reset.value < design:
                    self.reset.reset(t, design)
            if producing:
                self._fast_path(snapshot, t, floor)
            setpoint = self.reset.update(t, requests if producing else 0)
            reason = (
                f"trim and respond: far end {worst:.2f} bar, {requests} request(s),"
                f" last step {self.reset.last_step:+g} bar"
            )
            if floor is not None and setpoint < floor:
                # The output only: trim and respond goes on learning what this mode needs.
                setpoint = floor
                reason = f"held for a load step at {floor:g} bar; {reason}"
            if self._endangered is not None:
                reason = f"fast path: {self._endangered}; {reason}"
            if held:
                reason = f"held: the compressor at full duty; {reason}"
        else:
            setpoint = outside.setpoint_bar
            reason = "no production: lower setpoint"
        out.append(self.propose(cfg.setpoint, round(setpoint, 4), reason))
        if outside is not None and outside.stop is not None:
            value = outside.run_value if producing else outside.stop_value
            out.append(self.propose(outside.stop, value, "production" if producing else reason))
        self._pressure_alarm(cfg, snapshot, producing, t, setpoint)
        if cfg.leak_test is not None:
            self._leaks(cfg.leak_test, snapshot, producing, now)
        return out

    def _fast_path(self, snapshot: Mapping[str, Sample], t: float, floor: float | None) -> None:
        """A far-end requirement endangered (within its guard, or reaching its minimum within
        its lead): the setpoint (held at `floor` at least) one `max_response` up at once, again
        after the requirement's `lead` while it stays endangered."""
        self._endangered, lead = first_endangered(self.config.critical, self._trends, snapshot, t)
        if self._endangered is None or not self.reset.started:
            return
        if self._fast_at is not None and t - self._fast_at < lead:
            return
        self._fast_at = t
        before = self.reset.value if floor is None else max(floor, self.reset.value)
        self.reset.move_to(t, before + self.config.reset.max_response)
        if self.reset.value > before:
            self._last_fast = self._endangered

    def _held(self, snapshot: Mapping[str, Sample], t: float) -> bool:
        """The compressor loaded `headroom.hold_above` of its last window or more, now or
        within `hold_for`."""
        headroom = self.config.headroom
        if headroom is None:
            return False
        duty = self._duty
        duty.append((t, number(snapshot, headroom.loaded) >= 0.5))
        while duty and duty[0][0] <= t - headroom.window:
            duty.popleft()
        full = t - duty[0][0] >= 0.9 * headroom.window if duty else False
        loaded = sum(1 for _, on in duty if on) / len(duty)
        if full and loaded >= headroom.hold_above:
            self._held_until = t + headroom.hold_for
        return self._held_until is not None and t < self._held_until

    def _load_step_floor(self) -> float | None:
        """With `hold_for_load_steps`, the highest setpoint learned for another production
        mode (not this one's: it would hold this mode at what it needed before); before any
        is learned, `reset.initial` (else `reset.max`): the first step of the day starts from
        the design pressure."""
        if not self.config.hold_for_load_steps:
            return None
        others = [sp for mode, sp in self._mode_setpoints.items() if mode != self._mode]
        if others:
            return max(others)
        reset = self.config.reset
        return reset.initial if reset.initial is not None else reset.max

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
        self, test: LeakTestConfig, snapshot: Mapping[str, Sample], producing: bool, now: Now
    ) -> None:
        t = now.monotonic
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
        if (test.rise_above, test.test_rise_above) != (None, None):
            self._watch_rise(test, snapshot, now)
        if self._test_alarm and self._leak is not None:
            leak = self._leak
            self.set_alarm(
                "leakage_high",
                True,
                f"leak test: compressor loaded {leak['leak_fraction']:.0%} of the time with no"
                f" air used (over {test.alarm_above:.0%}), about {leak['kw_lost']:.1f} kW lost"
                " to standing leaks",
                leak,
            )
        else:
            self.set_alarm("leakage_high", False)
        rise = self.air_use.estimate
        if self.air_use.alarm and rise is not None:
            # Another leak is a step as large as a raise would need now (its spread included).
            self._steps.step = max(self._step_floor, rise["rise_above"])
            # Each mode's rise is over its own baseline: levels are compared within a mode.
            basis = f"{rise['state']} {rise['mode']}"
            step = self._steps.update(t, True, rise["rise"], basis)
            self.set_alarm(
                "air_leak",
                True,
                f"air use {rise['rise']:.1%} of capacity above earlier windows in the same mode"
                f" ({rise['state']}) for over {format_duration(test.rise_for)}: about"
                f" {rise['kw_lost']:.1f} kW lost",
                rise,
                steps=step,
            )
        else:
            self._steps.update(t, False, None)
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

    def _watch_rise(self, test: LeakTestConfig, snapshot: Mapping[str, Sample], now: Now) -> None:
        """Feed the air-use rise detector (controller/rules/energy/air_use.py): the flow as a
        share of rated (with `flow`), the header pressure (else the setpoint's read-back)."""
        t = now.monotonic
        flow = None
        if test.flow is not None and test.rated_flow_m3_min is not None:
            share = number(snapshot, test.flow) / test.rated_flow_m3_min
            # A reading the compressor cannot deliver (negative, or over twice its rating) is
            # a meter fault, not air: left out of the window (a window too gappy is not judged).
            flow = share if 0.0 <= share <= _MAX_FLOW_SHARE else None
        gauge = (
            number(snapshot, test.pressure)
            if test.pressure is not None
            else present_number(snapshot, self.config.setpoint)
        )
        recent = self.cycles.since(t - test.rise_window)
        work = self._work(test, snapshot, now.wall_ms)
        self.air_use.update(
            t,
            mode=self._mode if self._mode is not None else (),
            producing=bool(self._producing),
            begin=self._state_since + test.settle,
            flow=flow,
            pressure_abs=None if gauge is None else gauge + P_ATM_BAR,
            cycles=self.cycles,
            loaded_kw=self._loaded_kw(test, recent),
            rated_flow_m3_min=test.rated_flow_m3_min,
            work=work,
        )

    def _work(
        self, test: LeakTestConfig, snapshot: Mapping[str, Sample], wall_ms: int
    ) -> tuple[float, ...] | None:
        """The `explained_by` signals now, or None when one has no good reading younger than
        the rule's `max_age` or reads negative (no work): that poll is left out of the fit and
        the windows, and the rule runs on."""
        max_age = self.config.max_age
        values: list[float] = []
        for tag in test.explained_by:
            value = present_number(snapshot, tag)
            sample = snapshot.get(tag)
            if value is None or value < 0.0 or sample is None:
                return None
            if max_age is not None and (wall_ms - sample.read_ts) / 1000 > max_age:
                return None
            values.append(value)
        return tuple(values)

    def detail(self) -> dict[str, Any]:
        return {
            "setpoint_bar": rounded(self.reset.value if self.reset.started else None),
            "worst_far_end_bar": rounded(self._worst),
            "last_requests": self.reset.last_requests,
            "last_step_bar": self.reset.last_step,
            "producing": self._producing,
            "leak_test": self._leak,
            "air_use": self.air_use.estimate,
            "mode": None if self._mode is None else list(self._mode),
            "load_step_floor_bar": rounded(self._load_step_floor()),
            "endangered": self._endangered,
            "last_fast": self._last_fast,
            "held_until": rounded(self._held_until),
            "learned": [
                {
                    "mode": list(mode),
                    "setpoint_bar": rounded(self._mode_setpoints.get(mode)),
                    "use": [round(w.use, 4) for w in history],
                }
                for mode, history in self.air_use.history.items()
            ],
        }

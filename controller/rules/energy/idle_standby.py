"""Idle machines to standby, PROFIenergy-style: a pause of the production schedule is used when
it is long enough and saves more than the restart costs. docs/rules.md, "idle_standby", gives
the method, source and parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, Name, StrictModel, format_duration
from controller.model import Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    rounded,
    signal_inputs,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.schedule import Schedule, ScheduleConfig
from controller.rules.timing import ControlTiming

_HOUR = 3600.0


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


def standby_saving_kwh(machine: StandbyMachine, pause_s: float, lag_s: float = 0.0) -> float:
    """Energy a standby saves over a pause: (idle - standby) kW over the time spent in standby
    (the pause less the time to enter it and to wake, the wake sent `lag_s` early), less the
    energy to come back."""
    in_standby = max(0.0, pause_s - machine.time_to_pause - machine.wake_up_time - lag_s)
    return (machine.idle_kw - machine.standby_kw) * in_standby / _HOUR - machine.restart_kwh


@dataclass
class _Machine:
    spec: StandbyMachine
    starts: MinOnOffTimes
    lag_s: float  # the gateway's write lag to the machine's command (ControlTiming)
    idle_since: float | None = None
    standby_since: float | None = None
    reason: str = ""
    pause_s: float | None = None


class IdleStandby(DomainRule):
    """PROFIenergy's rule: a pause is used for standby only when it is at least the machine's
    minimum pause and saves more energy than the restart costs; the machine is woken by its
    wake-up time before the next production period, or at once by its start signal. The wake
    is sent that much earlier again as a write to its command can lag (`ControlTiming`: a
    cycle, the write's bound, the read-back poll), so the machine is ready when it is due."""

    config: IdleStandbyConfig

    def __init__(self, config: IdleStandbyConfig, timing: ControlTiming | None = None) -> None:
        super().__init__(config, "idle_standby")
        self.config = config
        self.timing = timing or ControlTiming()
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
                spec=spec,
                lag_s=self.timing.write_lag_s(spec.command),
                starts=previous.get(spec.name)
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
                wake = started or (pause_s is not None and pause_s <= self.lead_s(machine))
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
                        f" saves {self._saving(machine, pause_s or 0.0):.2f} kWh"
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
        if pause_s <= spec.time_to_pause + self.lead_s(machine):
            return (
                f"pause {format_duration(round(pause_s))} too short to enter standby and be"
                f" woken {format_duration(round(self.lead_s(machine)))} ahead"
            )
        if self._saving(machine, pause_s) <= 0:
            return "standby would save less than the restart costs"
        limit = spec.max_starts_per_hour
        if limit is not None and machine.starts.starts_in_last_hour(t) >= limit:
            return f"{limit} starts in the last hour already"
        return ""

    @staticmethod
    def lead_s(machine: _Machine) -> float:
        """How long before a production start the machine is woken: its wake-up time plus
        the write lag, so it is ready at the start."""
        return machine.spec.wake_up_time + machine.lag_s

    @staticmethod
    def _saving(machine: _Machine, pause_s: float) -> float:
        return standby_saving_kwh(machine.spec, pause_s, machine.lag_s)

    def detail(self) -> dict[str, Any]:
        return {
            machine.spec.name: {
                "standby": machine.standby_since is not None,
                "idle_s": None
                if machine.idle_since is None
                else round(self._t - machine.idle_since, 1),
                "pause_s": rounded(machine.pause_s, 0),
                "saving_kwh": rounded(
                    None if machine.pause_s is None else self._saving(machine, machine.pause_s)
                ),
                "wake_lead_s": rounded(self.lead_s(machine), 0),
                "reason": machine.reason,
            }
            for machine in self._machines
        }

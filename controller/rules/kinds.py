"""The generic rule kinds a plant engineer writes in YAML: `threshold`, `pid` and `schedule`,
built from the control blocks. The domain rules (peak shaving, compressed air, water) are built
the same way on top of these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from controller.configtypes import format_duration
from controller.model import Sample
from controller.rules.blocks import Hysteresis, HysteresisConfig
from controller.rules.catalog import build_domain_rule
from controller.rules.common import OutputValue, RuleCommon
from controller.rules.config import (
    PidRuleConfig,
    RuleConfig,
    ScheduleRuleConfig,
    ThresholdRuleConfig,
)
from controller.rules.pid import PID
from controller.rules.rule import Now, Proposal, Rule, RuleInputError, number
from controller.rules.schedule import Schedule
from controller.rules.timing import ControlTiming
from controller.scheduler.board import PlanBoard

if TYPE_CHECKING:
    from controller.scheduler.config import TariffConfig


class _ConfiguredRule(Rule):
    """Name, mode, priority and input freshness straight from the rule's config."""

    def __init__(self, config: RuleCommon, kind: str) -> None:
        self.config = config
        self.name = config.name
        self.kind = kind
        self.mode = config.mode
        self.priority = config.priority
        self.accept_uncertain = config.accept_uncertain
        self.inputs = {tag: config.max_age for _, tag in config.input_tags()}
        self.outputs = tuple(dict.fromkeys(tag for _, tag, _ in config.output_values()))

    def _propose(self, values: Mapping[str, OutputValue], reason: str) -> list[Proposal]:
        return [Proposal(tag, value, self.priority, reason) for tag, value in values.items()]


class ThresholdRule(_ConfiguredRule):
    """`set` while a condition on one input holds (after it has held for `for`), `otherwise`
    once it has been released (with hysteresis, for `release_after`)."""

    config: ThresholdRuleConfig

    def __init__(self, config: ThresholdRuleConfig) -> None:
        super().__init__(config, "threshold")
        when = config.when
        if when.above is not None:
            self._band = HysteresisConfig(high=when.above, low=when.release, action="direct")
        else:
            assert when.below is not None  # the config requires one of the two
            self._band = HysteresisConfig(high=when.release, low=when.below, action="reverse")
        self._restart()

    def _restart(self) -> None:
        self._hysteresis = Hysteresis(self._band)
        self.active = False
        self._changing_since: float | None = None
        self._value: float | None = None

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self._restart()

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        config = self.config
        self._value = value = number(snapshot, config.when.tag)
        holds = self._hysteresis.update(value)
        if holds == self.active:
            self._changing_since = None
        else:
            if self._changing_since is None:
                self._changing_since = now.monotonic
            delay = config.hold if holds else config.release_after
            if now.monotonic - self._changing_since >= delay:
                self.active = holds
                self._changing_since = None
        if self.active:
            return self._propose(config.set, self._describe(value, "holds"))
        return self._propose(config.otherwise, self._describe(value, "released"))

    def _describe(self, value: float, state: str) -> str:
        when = self.config.when
        if when.above is not None:
            level = f">= {when.above:g}" if state == "holds" else f"< {when.above:g}"
        else:
            level = f"<= {when.below:g}" if state == "holds" else f"> {when.below:g}"
        hold = self.config.hold if state == "holds" else self.config.release_after
        held = f" for {format_duration(hold)}" if hold > 0 else ""
        return f"{when.tag} {value:g}: {state} ({level}{held})"

    def detail(self) -> dict[str, Any]:
        return {
            "value": self._value,
            "condition": self._hysteresis.output,
            "active": self.active,
            "changing_since_s": self._changing_since,
        }


class PidRule(_ConfiguredRule):
    """Holds `measurement` at `setpoint` by writing `output` through the PID block. Starts from
    the output's present value (bumpless) and follows whatever value the output actually got
    (a clamp, a ramp, an operator's override), so its integrator never winds up."""

    config: PidRuleConfig

    def __init__(self, config: PidRuleConfig) -> None:
        super().__init__(config, "pid")
        self.pid = PID(config.pid)
        self._time: float | None = None
        self._setpoint: float | None = None
        self._measurement: float | None = None

    def _inputs(self, snapshot: Mapping[str, Sample]) -> tuple[float, float]:
        config = self.config
        setpoint = config.setpoint
        sp = number(snapshot, setpoint) if isinstance(setpoint, str) else setpoint
        return sp, number(snapshot, config.measurement)

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self.pid.reset()
        self._time = None
        present = snapshot.get(self.config.output)
        try:
            output = number(snapshot, self.config.output) if present is not None else None
            setpoint, measurement = self._inputs(snapshot)
        except RuleInputError:
            return
        if output is not None:
            cfg = self.pid.config
            output = min(cfg.out_max, max(cfg.out_min, output))
            self.pid.track(now.monotonic, output, setpoint, measurement)
            self._time = now.monotonic

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        setpoint, measurement = self._inputs(snapshot)
        output = self.pid.update(now.monotonic, setpoint, measurement)
        self._time, self._setpoint, self._measurement = now.monotonic, setpoint, measurement
        reason = f"{self.config.measurement} {measurement:g} to setpoint {setpoint:g}"
        return [Proposal(self.config.output, round(output, 6), self.priority, reason)]

    def settle(self, applied: Mapping[str, OutputValue]) -> None:
        value = applied.get(self.config.output)
        if (
            value is None
            or isinstance(value, bool)
            or self._time is None
            or self._setpoint is None
            or self._measurement is None
        ):
            return
        if abs(float(value) - self.pid.output) > 1e-9:
            self.pid.track(self._time, float(value), self._setpoint, self._measurement)

    def detail(self) -> dict[str, Any]:
        return {
            "setpoint": self._setpoint,
            "measurement": self._measurement,
            "output": self.pid.output,
            "integral": round(self.pid.integral, 6),
        }


class ScheduleRule(_ConfiguredRule):
    """The values listed for the period of the schedule active now; nothing in a period that
    is not listed (its outputs are released)."""

    config: ScheduleRuleConfig

    def __init__(self, config: ScheduleRuleConfig) -> None:
        super().__init__(config, "schedule")
        self.schedule = Schedule(config.schedule)
        self.period: str | None = None
        self._next: dict[str, Any] | None = None

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        period = self.schedule.period_at(now.wall_ms)
        if period != self.period:
            self.period = period
            change = self.schedule.next_change(now.wall_ms)
            self._next = None if change is None else {"at": change.at_ms, "period": change.period}
        return self._propose(self.config.set.get(period, {}), f"period {period}")

    def detail(self) -> dict[str, Any]:
        return {"period": self.period, "next": self._next}


def build_rule(
    config: RuleConfig,
    timing: ControlTiming | None = None,
    plans: PlanBoard | None = None,
    tariff: TariffConfig | None = None,
) -> Rule:
    """The rule of a config item; `timing` (the gateway's cycle, write bound and polls) for
    the rules that act ahead of a known time; `plans` for the rules that follow the
    scheduler's plan; `tariff` (the config's top-level one) for the rules that read prices."""
    if isinstance(config, ThresholdRuleConfig):
        return ThresholdRule(config)
    if isinstance(config, PidRuleConfig):
        return PidRule(config)
    if isinstance(config, ScheduleRuleConfig):
        return ScheduleRule(config)
    return build_domain_rule(config, timing, plans, tariff)


def build_rules(
    configs: Sequence[RuleConfig],
    timing: ControlTiming | None = None,
    plans: PlanBoard | None = None,
    tariff: TariffConfig | None = None,
) -> list[Rule]:
    """One rule per config item, in config order (the order breaks priority ties)."""
    return [build_rule(config, timing, plans, tariff) for config in configs]

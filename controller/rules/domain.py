"""What the energy and water rules share: name, mode and inputs from their config, the
production signal most of them follow, and the alarm conditions they report to the alarm board
(controller/alarms.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from controller.alarms import AlarmCondition, DeclaredAlarm
from controller.configtypes import StrictModel
from controller.model import Quality, Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.rule import Proposal, Rule, number

# The values of a rule's production tags: which machines are in which state. Rules that learn
# (the air-use rise, the water leak baseline) learn per production mode.
ProductionMode = tuple[float, ...]


class ProductionSignal(StrictModel):
    """Production is on while any of `tags` reads `at_least` or more: machine state codes
    (the simulated cell's 0 off, 1 standby, 2 idle, 3 producing), or booleans (true is 1)."""

    tags: list[TagKey] = Field(min_length=1)
    at_least: float = 0.5

    def on(self, snapshot: Mapping[str, Sample]) -> bool:
        return any(number(snapshot, tag) >= self.at_least for tag in self.tags)


def signal_inputs(path: str, signal: ProductionSignal | None) -> list[tuple[str, str]]:
    if signal is None:
        return []
    return [(f"{path}.tags[{i}]", tag) for i, tag in enumerate(signal.tags)]


class UndeclaredAlarmError(KeyError):
    """A rule set an alarm its kind does not declare in `ALARMS`."""


class DomainRule(Rule):
    """Name, mode, priority, inputs and outputs from the config; alarm conditions kept by
    name and reported every cycle (`AlarmSource`). Each kind declares its alarms in `ALARMS`
    (what each indicates and where), carried in every alarm it raises."""

    ALARMS: ClassVar[Mapping[str, DeclaredAlarm]] = {}

    def __init__(self, config: RuleCommon, kind: str) -> None:
        self.name = config.name
        self.kind = kind
        self.mode = config.mode
        self.priority = config.priority
        self.accept_uncertain = config.accept_uncertain
        self.inputs = {tag: config.max_age for _, tag in config.input_tags()}
        self.outputs = tuple(dict.fromkeys(tag for _, tag, _ in config.output_values()))
        self._conditions: dict[str, AlarmCondition] = {}

    def alarm_name(self, what: str) -> str:
        return f"{self.name}.{what}"

    def set_alarm(
        self,
        what: str,
        active: bool,
        message: str = "",
        estimate: Mapping[str, Any] | None = None,
        *,
        steps: int = 0,
    ) -> None:
        """Record the state of the alarm `what` (its name is `rule.what`) for this cycle;
        `steps`: times its estimate stepped up by a leak's size in this episode."""
        declared = self.ALARMS.get(what)
        if declared is None:
            raise UndeclaredAlarmError(f"{self.kind} does not declare an alarm {what!r}")
        name = self.alarm_name(what)
        self._conditions[name] = AlarmCondition(
            name=name,
            active=active,
            message=message,
            estimate=dict(estimate or {}),
            rule=self.name,
            indicates=declared.indicates.value,
            location=declared.location,
            steps=steps if active else 0,
        )

    def alarm_conditions(self) -> list[AlarmCondition]:
        return list(self._conditions.values())

    def alarm_active(self, what: str) -> bool:
        condition = self._conditions.get(self.alarm_name(what))
        return condition is not None and condition.active

    def propose(self, tag: str, value: OutputValue, reason: str) -> Proposal:
        return Proposal(tag, value, self.priority, reason)


def present_number(snapshot: Mapping[str, Sample], tag: str) -> float | None:
    """The value of a tag that is not an input (an output's read-back), when usable."""
    sample = snapshot.get(tag)
    if sample is None or sample.quality is not Quality.GOOD:
        return None
    value = sample.value
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return float(value)
    return None


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)

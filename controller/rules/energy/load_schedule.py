"""The deferrable loads follow the scheduler's plan (docs/rules.md, "load_schedule"): a car's
charger and a tank's heater enabled in the steps the plan gives them power, disabled in the
others; a tank at its guard temperature is heated whatever the plan says; without a valid plan
every load gets `without_plan` (enabled: its own charger or thermostat decides, as without a
scheduler)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Name, StrictModel
from controller.model import Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import DomainRule
from controller.rules.rule import Now, Proposal, number
from controller.scheduler.board import PlanBoard


class LoadGuard(StrictModel):
    """The load is enabled whatever the plan says while `tag` reads at or below `min`."""

    tag: TagKey
    min: float


class PlannedLoad(StrictModel):
    """One load of the plan (a `scheduler.evs[]` or `scheduler.tanks[]` name) and its enable."""

    name: Name
    tag: TagKey
    on_value: OutputValue = 1.0
    off_value: OutputValue = 0.0
    # The plan's kW for the step at or above this: enabled.
    min_kw: float = Field(0.5, gt=0)
    # Without a valid plan (null: on_value).
    without_plan: OutputValue | None = None
    guard: LoadGuard | None = None


class LoadScheduleConfig(RuleCommon):
    """Enable the planned loads in their planned steps."""

    kind: Literal["load_schedule"]
    loads: list[PlannedLoad] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_per_load(self) -> LoadScheduleConfig:
        names = [load.name for load in self.loads]
        if len(set(names)) != len(names):
            raise ValueError("loads: a load is named twice")
        tags = [load.tag for load in self.loads]
        if len(set(tags)) != len(tags):
            raise ValueError("loads: two loads write one tag")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        return [
            (f"loads[{i}].guard.tag", load.guard.tag)
            for i, load in enumerate(self.loads)
            if load.guard is not None
        ]

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = []
        for i, load in enumerate(self.loads):
            values.append((f"loads[{i}].on_value", load.tag, load.on_value))
            values.append((f"loads[{i}].off_value", load.tag, load.off_value))
        return values


class LoadSchedule(DomainRule):
    """Each planned load on or off by the plan's step of now."""

    config: LoadScheduleConfig

    def __init__(self, config: LoadScheduleConfig, plans: PlanBoard | None = None) -> None:
        super().__init__(config, "load_schedule")
        self.config = config
        self.plans = plans if plans is not None else PlanBoard()
        self.states: dict[str, str] = {}

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        target = self.plans.target(now.wall_ms)
        out = []
        for load in self.config.loads:
            if load.guard is not None and number(snapshot, load.guard.tag) <= load.guard.min:
                value, state = load.on_value, "guard"
                reason = f"{load.guard.tag} at or below {load.guard.min:g}: on"
            elif target is None:
                value = load.on_value if load.without_plan is None else load.without_plan
                state = "no_plan"
                reason = f"no valid plan: {self.plans.why_none(now.wall_ms)}"[:200]
            else:
                kw = target.ev_kw.get(load.name, target.tank_kw.get(load.name, 0.0))
                on = kw >= load.min_kw
                value, state = (load.on_value, "on") if on else (load.off_value, "off")
                reason = f"plan {kw:.1f} kW for {load.name}"
            self.states[load.name] = state
            out.append(self.propose(load.tag, value, reason))
        return out

    def detail(self) -> dict[str, Any]:
        return {"loads": dict(self.states)}

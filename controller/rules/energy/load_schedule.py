"""The deferrable loads follow the scheduler's plan (docs/rules.md, "load_schedule"): a car's
charger and a tank's heater enabled in the steps the plan gives them power (for the planned
share of the step when the load's `rated_kw` is given), disabled in the others. The limits hold
whatever the plan says, every cycle: a tank at its guard temperature is heated until it is
`release` above it, and a car whose remaining energy needs the time left to its departure (less
`deadline_margin`) is charged. Without a valid plan every load gets `without_plan` (enabled:
its own charger or thermostat decides, as without a scheduler)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Name, PositiveDuration, StrictModel
from controller.model import Sample
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.domain import DomainRule
from controller.rules.rule import Now, Proposal, number
from controller.scheduler.board import EvSessionStatus, PlanBoard, PlanTarget

# The planner's view of a car older than this is not trusted (the planner's pass stopped).
EV_STATUS_MAX_AGE_MS = 120_000


class LoadGuard(StrictModel):
    """The load is enabled whatever the plan says once `tag` reads at or below `min`, until it
    reads `release` above it (no switching every cycle at the limit)."""

    tag: TagKey
    min: float
    release: float = Field(1.0, gt=0)


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
    # The load's kW when enabled: enabled for plan kW / rated_kw of the step, from its start
    # (a heater whose planned average is a share of its rating). Null: the whole step.
    rated_kw: float | None = Field(None, gt=0)
    # A car (a `scheduler.evs[]` load): charged whatever the plan says once what it still
    # needs takes all but this much of the time left to its departure at the charger's kW.
    deadline_margin: PositiveDuration = 900.0


class LoadScheduleConfig(RuleCommon):
    """Enable the planned loads in their planned steps."""

    kind: Literal["load_schedule"]
    loads: list[PlannedLoad] = Field(min_length=1)
    # The guard's and the deadline's proposals carry this priority (null: the rule's): above
    # peak_shaving's, a limit wins over a shed (the plan's on and off stay below it).
    limit_priority: int | None = None

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
    """Each planned load on or off by the plan's step of now, within its limits."""

    config: LoadScheduleConfig

    def __init__(self, config: LoadScheduleConfig, plans: PlanBoard | None = None) -> None:
        super().__init__(config, "load_schedule")
        self.config = config
        self.plans = plans if plans is not None else PlanBoard()
        self.states: dict[str, str] = {}
        self._guarded: set[str] = set()

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        target = self.plans.target(now.wall_ms)
        out = []
        for load in self.config.loads:
            limit = self._limit(load, snapshot, now)
            if limit:
                self.states[load.name] = limit[0]
                out.append(self._limit_proposal(load.tag, load.on_value, limit[1]))
                continue
            if self._car_unseen(load, now):
                # Whether a car is there is not known: the plan cannot have planned it, the
                # charger's own logic decides (a car there is charged, none draws nothing);
                # a shed still wins (the rule's own priority).
                value, state = load.on_value, "no_reading"
                reason = f"{load.name}: no reading of whether a car is connected: on"
            elif self._car_unplanned(load, target, now):
                # A car there that the plan has no session for (no booking today, after its
                # booking's departure, its booked energy delivered): the charger decides.
                value, state = load.on_value, "unplanned"
                reason = f"{load.name}: a car the plan has no session for: on"
            elif target is None:
                value = load.on_value if load.without_plan is None else load.without_plan
                state = "no_plan"
                reason = f"no valid plan: {self.plans.why_none(now.wall_ms)}"[:200]
            else:
                on, reason = self._planned(load, target, now)
                value, state = (load.on_value, "on") if on else (load.off_value, "off")
            self.states[load.name] = state
            out.append(self.propose(load.tag, value, reason))
        return out

    def _limit(
        self, load: PlannedLoad, snapshot: Mapping[str, Sample], now: Now
    ) -> tuple[str, str] | None:
        """(state, reason) when a limit enables the load whatever the plan says."""
        guard = load.guard
        if guard is not None:
            reading = number(snapshot, guard.tag)
            if reading <= guard.min:
                self._guarded.add(load.name)
            elif reading >= guard.min + guard.release:
                self._guarded.discard(load.name)
            if load.name in self._guarded:
                return "guard", (
                    f"{guard.tag} {reading:g}: on from {guard.min:g} until"
                    f" {guard.min + guard.release:g}"
                )
        car = self.plans.ev_sessions.get(load.name)
        if car is not None and _deadline(car, now.wall_ms, load.deadline_margin):
            left_h = (car.depart_ms or 0) / 3_600_000 - now.wall_ms / 3_600_000
            return "deadline", (
                f"{load.name} needs {car.remaining_kwh:.1f} kWh in {left_h * 60:.0f} min: on"
            )
        return None

    def _car_unseen(self, load: PlannedLoad, now: Now) -> bool:
        car = self.plans.ev_sessions.get(load.name)
        if car is None or now.wall_ms - car.seen_ms > EV_STATUS_MAX_AGE_MS:
            return False
        return car.connected is None

    def _car_unplanned(self, load: PlannedLoad, target: PlanTarget | None, now: Now) -> bool:
        car = self.plans.ev_sessions.get(load.name)
        if car is None or target is None or not car.connected:
            return False
        return now.wall_ms - car.seen_ms <= EV_STATUS_MAX_AGE_MS and load.name not in target.ev_kw

    def _limit_proposal(self, tag: str, value: OutputValue, reason: str) -> Proposal:
        priority = self.config.limit_priority
        if priority is None:
            return self.propose(tag, value, reason)
        return Proposal(tag, value, priority, reason)

    def _planned(self, load: PlannedLoad, target: PlanTarget, now: Now) -> tuple[bool, str]:
        kw = target.ev_kw.get(load.name, target.tank_kw.get(load.name, 0.0))
        reason = f"plan {kw:.1f} kW for {load.name}"
        if kw < load.min_kw:
            return False, reason
        if load.rated_kw is None:
            return True, reason
        share = min(kw / load.rated_kw, 1.0)
        on_until = target.start_ms + share * (target.end_ms - target.start_ms)
        return now.wall_ms < on_until, f"{reason}: {share:.0%} of the step"

    def detail(self) -> dict[str, Any]:
        return {"loads": dict(self.states)}


def _deadline(car: EvSessionStatus, now_ms: int, margin_s: float) -> bool:
    """True when the car's remaining energy needs the time left to departure less the margin."""
    if not car.connected or car.remaining_kwh <= 0 or car.depart_ms is None:
        return False
    if now_ms - car.seen_ms > EV_STATUS_MAX_AGE_MS or now_ms >= car.depart_ms:
        return False
    left_h = (car.depart_ms - now_ms) / 3_600_000 - margin_s / 3600
    return car.remaining_kwh >= car.max_kw * left_h

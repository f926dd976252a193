"""The plan in force, between the planner that makes it and the rules that follow it: the step
of now (battery kW, the import and peak it expects, the SoC at the step's end), or why there is
none. Light on purpose: the rules import it, never the solver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PlanTarget:
    """One step of the plan, as the rules follow it (+ discharge, the rules' sign)."""

    start_ms: int
    end_ms: int
    battery_kw: float
    import_kw: float
    export_kw: float
    soc_pct: float  # expected at the end of the step
    peak_kw: float  # the plan's highest billing-window average import
    ev_kw: Mapping[str, float] = field(default_factory=dict)
    tank_kw: Mapping[str, float] = field(default_factory=dict)
    load_kw: float | None = None  # the inflexible load forecast
    pv_kw: float = 0.0
    soc_start_pct: float | None = None  # expected at the start of the step


@dataclass(frozen=True, slots=True)
class AcceptedPlan:
    """A plan that passed the daemon's checks: its steps in time order, when it was made and
    until when it may be followed."""

    steps: tuple[PlanTarget, ...]
    created_ms: int
    valid_until_ms: int

    def step_at(self, wall_ms: int) -> PlanTarget | None:
        if wall_ms >= self.valid_until_ms:
            return None
        for step in self.steps:
            if step.start_ms <= wall_ms < step.end_ms:
                return step
        return None


@dataclass(frozen=True, slots=True)
class EvSessionStatus:
    """A car on a charger as the planner last saw it (every planner pass, plan or no plan): from
    the charger's `connected` and power readings and the booking in the config. What the
    deadline guard of load_schedule enforces, whatever the plan says."""

    connected: bool | None  # None: the charger's `connected` reading is missing or bad
    remaining_kwh: float  # the booking's energy less what the charger delivered since it came
    depart_ms: int | None  # the booking's departure today (None: no booking today)
    max_kw: float
    seen_ms: int  # when the planner last observed it


class PlanBoard:
    """Holds the plan in force; `target(now)` is its step of now, or None with `why_none()`."""

    def __init__(self) -> None:
        self._plan: AcceptedPlan | None = None
        self._why = "no plan yet"
        self.revision = 0
        # False until the first plan is made or fails: a daemon just started is waiting for
        # its first plan, which is no fault (no alarm).
        self.attempted = False
        # The cars on the planned chargers, by the plan's EV name (the planner's observation).
        self.ev_sessions: dict[str, EvSessionStatus] = {}

    @property
    def plan(self) -> AcceptedPlan | None:
        return self._plan

    def accept(self, plan: AcceptedPlan) -> None:
        self._plan = plan
        self._why = ""
        self.attempted = True
        self.revision += 1

    def withdraw(self, why: str) -> None:
        """No plan is followed from now on: the reactive rules decide."""
        self._plan = None
        self._why = why
        self.revision += 1
        self.attempted = True

    def note(self, why: str) -> None:
        """A re-plan failed while the plan in force stays usable: kept for the alarm text."""
        self._why = why

    def target(self, wall_ms: int) -> PlanTarget | None:
        plan = self._plan
        return None if plan is None else plan.step_at(wall_ms)

    def why_none(self, wall_ms: int) -> str:
        plan = self._plan
        if plan is None:
            return self._why or "no plan"
        if wall_ms >= plan.valid_until_ms:
            reason = f"the plan made at {plan.created_ms} ms is stale"
            return f"{reason}: {self._why}" if self._why else reason
        return "the plan does not cover now"

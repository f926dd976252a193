"""load_schedule on step tables: a planned load enabled in the steps the plan gives it power,
disabled in the others, enabled at its guard whatever the plan says, and `without_plan`
(enabled) without a valid plan; the config names only loads the scheduler plans."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from controller.config import ConfigError, parse_config
from controller.rules.config import RuleConfig
from controller.rules.energy.load_schedule import LoadSchedule
from controller.rules.kinds import build_rule
from controller.rules.rule import RuleInputError
from controller.scheduler.board import AcceptedPlan, EvSessionStatus, PlanBoard, PlanTarget
from tests.rules.plantloop import Driven
from tests.scheduler.cell import scheduler_data

START_MS = Driven.__dataclass_fields__["start_ms"].default

LOADS = [
    {"name": "car", "tag": "plc.ev_enable"},
    {
        "name": "tank",
        "tag": "plc.heater_enable",
        "guard": {"tag": "plc.tank_c", "min": 56.0},
    },
]


def plan(car_kw: float, tank_kw: float) -> AcceptedPlan:
    step = PlanTarget(
        start_ms=START_MS,
        end_ms=START_MS + 900_000,
        battery_kw=0.0,
        import_kw=100.0,
        export_kw=0.0,
        soc_pct=50.0,
        peak_kw=150.0,
        ev_kw={"car": car_kw},
        tank_kw={"tank": tank_kw},
    )
    return AcceptedPlan((step,), created_ms=START_MS, valid_until_ms=START_MS + 3_600_000)


def rule(board: PlanBoard, **settings: Any) -> tuple[Driven, LoadSchedule]:
    config = TypeAdapter(RuleConfig).validate_python(
        {"name": "loads", "kind": "load_schedule", "loads": LOADS, **settings}
    )
    built = build_rule(config, plans=board)
    assert isinstance(built, LoadSchedule)
    return Driven(built), built


# The plan's car kW, tank kW, tank degC -> car enable, heater enable
TABLE = [
    (11.0, 24.0, 60.0, 1.0, 1.0),  # both planned
    (0.0, 0.0, 60.0, 0.0, 0.0),  # neither: both off
    (0.3, 24.0, 60.0, 0.0, 1.0),  # under min_kw (0.5): off
    (11.0, 0.0, 56.0, 1.0, 1.0),  # the tank at its guard: heated whatever the plan says
]


@pytest.mark.parametrize(("car", "tank", "temp", "car_on", "heater_on"), TABLE)
def test_the_loads_follow_the_plan(
    car: float, tank: float, temp: float, car_on: float, heater_on: float
) -> None:
    board = PlanBoard()
    board.accept(plan(car, tank))
    driven, built = rule(board)
    out = driven.step({"plc.tank_c": temp})
    assert out == {"plc.ev_enable": car_on, "plc.heater_enable": heater_on}
    assert set(built.detail()["loads"].values()) <= {"on", "off", "guard"}


def test_without_a_plan_the_loads_are_enabled() -> None:
    board = PlanBoard()
    driven, built = rule(board)
    assert driven.step({"plc.tank_c": 60.0}) == {"plc.ev_enable": 1.0, "plc.heater_enable": 1.0}
    assert built.detail()["loads"] == {"car": "no_plan", "tank": "no_plan"}
    board.accept(plan(0.0, 0.0))
    assert driven.step({"plc.tank_c": 60.0}) == {"plc.ev_enable": 0.0, "plc.heater_enable": 0.0}
    board.withdraw("timeout: killed")
    assert driven.step({"plc.tank_c": 60.0}) == {"plc.ev_enable": 1.0, "plc.heater_enable": 1.0}


def test_a_load_the_scheduler_does_not_plan_is_refused() -> None:
    data = scheduler_data()
    data["rules"].append(
        {
            "name": "loads",
            "kind": "load_schedule",
            "loads": [{"name": "forklift", "tag": "process-plc.ev_charger_enable"}],
        }
    )
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml.safe_dump(data), "cell.yaml")
    assert any(
        "rules[11].loads[0].name: the scheduler plans no load 'forklift'" in p
        for p in raised.value.problems
    ), raised.value.problems


def test_the_guard_holds_the_heater_on_until_its_release() -> None:
    """At 56 degC the tank is heated whatever the plan says, and stays heated until 57 (the
    guard's `release` of 1 K), not switched every cycle at the limit."""
    board = PlanBoard()
    board.accept(plan(0.0, 0.0))
    driven, built = rule(board)
    heater = "plc.heater_enable"
    temps = [57.5, 56.2, 56.0, 56.1, 56.6, 56.99, 57.0, 56.5]
    seen = [driven.step({"plc.tank_c": t})[heater] for t in temps]
    assert seen == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    driven.step({"plc.tank_c": 55.9})
    assert built.detail()["loads"]["tank"] == "guard"


def test_a_heater_with_a_rating_is_on_for_the_planned_share_of_the_step() -> None:
    """6 kW planned for a 24 kW heater: on for the first quarter of the 15-min step (225 s)."""
    board = PlanBoard()
    board.accept(plan(0.0, 6.0))
    loads = [LOADS[0], {**LOADS[1], "rated_kw": 24.0}]
    driven, _ = rule(board, loads=loads)
    on = [driven.step({"plc.tank_c": 60.0}, dt=1.0)["plc.heater_enable"] for _ in range(230)]
    # the cycle at t seconds into the step: on while t < 225
    assert on[:224] == [1.0] * 224
    assert on[224:] == [0.0] * 6


def car(remaining_kwh: float, depart_in_s: float, *, seen_ago_s: float = 0.0) -> EvSessionStatus:
    now = START_MS
    return EvSessionStatus(
        connected=True,
        remaining_kwh=remaining_kwh,
        depart_ms=now + round(depart_in_s * 1000),
        max_kw=11.0,
        seen_ms=now - round(seen_ago_s * 1000),
    )


# remaining kWh, departure in s, planner's view age s -> car enable (the plan says 0 kW)
DEADLINES = [
    (5.5, 3600.0, 0.0, 0.0),  # 30 min of charge in 60 min, margin 15: the plan decides
    (5.5, 2700.0, 0.0, 1.0),  # 30 min of charge in 45 min: all but the margin, on
    (5.5, 2760.0, 0.0, 0.0),  # a minute to spare beyond the margin: the plan decides
    (1.0, 60.0, 0.0, 1.0),  # the last minute: on
    (0.0, 60.0, 0.0, 0.0),  # delivered: the plan decides
    (5.5, 2700.0, 300.0, 0.0),  # the planner's view is 5 min old: not trusted
    (5.5, -1.0, 0.0, 0.0),  # gone
]


@pytest.mark.parametrize(("remaining", "depart", "age", "enabled"), DEADLINES)
def test_a_car_is_charged_when_its_departure_needs_it(
    remaining: float, depart: float, age: float, enabled: float
) -> None:
    board = PlanBoard()
    board.accept(plan(0.0, 0.0))
    # the view is taken at the rule's first cycle, 1 s after START_MS
    board.ev_sessions["car"] = car(remaining, depart + 1.0, seen_ago_s=age - 1.0)
    driven, built = rule(board, limit_priority=12)
    out = driven.step({"plc.tank_c": 60.0})
    assert out["plc.ev_enable"] == enabled
    proposal = next(p for p in driven.proposals if p.tag == "plc.ev_enable")
    if enabled:
        assert built.detail()["loads"]["car"] == "deadline"
        assert proposal.priority == 12  # wins over a shed (peak_shaving at 10)
    else:
        assert proposal.priority == 0


def test_the_deadline_holds_without_a_plan_too() -> None:
    board = PlanBoard()
    board.ev_sessions["car"] = car(5.5, 1800.0)
    driven, built = rule(board, loads=[{**LOADS[0], "without_plan": 0.0}, LOADS[1]])
    assert driven.step({"plc.tank_c": 60.0})["plc.ev_enable"] == 1.0
    assert built.detail()["loads"]["car"] == "deadline"


def test_a_charger_whose_connection_is_unknown_is_left_to_itself() -> None:
    """A bad `connected` reading: the plan cannot have planned the car, so the charger's own
    logic decides (enabled), whatever the plan's 0 kW says."""
    board = PlanBoard()
    board.accept(plan(0.0, 0.0))
    board.ev_sessions["car"] = EvSessionStatus(
        connected=None, remaining_kwh=0.0, depart_ms=None, max_kw=11.0, seen_ms=START_MS + 1000
    )
    driven, built = rule(board, limit_priority=12)
    assert driven.step({"plc.tank_c": 60.0})["plc.ev_enable"] == 1.0
    assert built.detail()["loads"]["car"] == "no_reading"
    proposal = next(p for p in driven.proposals if p.tag == "plc.ev_enable")
    assert proposal.priority == 0  # not a limit: a shed still wins


def test_a_bad_tank_reading_stops_the_rule() -> None:
    """The guard's reading is text: the rule stops (the engine writes the enable's fallback,
    the thermostat decides); it never follows the plan blind."""
    board = PlanBoard()
    board.accept(plan(0.0, 0.0))
    driven, _ = rule(board)
    with pytest.raises(RuleInputError, match=r"plc\.tank_c"):
        driven.step({"plc.tank_c": "offline"})


def test_a_car_the_plan_has_no_session_for_is_left_to_its_charger() -> None:
    """A car plugged in on a day without a booking (or after its booking's departure): the plan
    has no session for it, so its 0 kW is no decision; the charger's own logic charges it."""
    board = PlanBoard()
    step = plan(0.0, 0.0).steps[0]
    unplanned = AcceptedPlan(
        (PlanTarget(**{**_fields(step), "ev_kw": {}}),),
        created_ms=START_MS,
        valid_until_ms=START_MS + 3_600_000,
    )
    board.accept(unplanned)
    board.ev_sessions["car"] = EvSessionStatus(
        connected=True, remaining_kwh=0.0, depart_ms=None, max_kw=11.0, seen_ms=START_MS + 1000
    )
    driven, built = rule(board)
    assert driven.step({"plc.tank_c": 60.0})["plc.ev_enable"] == 1.0
    assert built.detail()["loads"]["car"] == "unplanned"
    board.accept(plan(0.0, 0.0))  # a session planned at 0 kW now: off
    assert driven.step({"plc.tank_c": 60.0})["plc.ev_enable"] == 0.0


def _fields(step: PlanTarget) -> dict[str, Any]:
    return {name: getattr(step, name) for name in PlanTarget.__dataclass_fields__}

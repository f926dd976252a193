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
from controller.scheduler.board import AcceptedPlan, PlanBoard, PlanTarget
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

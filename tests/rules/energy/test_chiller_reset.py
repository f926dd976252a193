"""Chilled-water reset: trim and respond on the supply setpoint keeps the process limit with
its margin, on the plant and on known steps."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.energy.chiller_reset import ChillerReset, ChillerResetConfig
from drivers.sim.plant.chiller import chiller_cop
from drivers.sim.plant.plant import Plant
from tests.rules.plantloop import Driven, PlantLoop, scenario

POINTS = {
    "plc.chw_setpoint_c": "chiller.supply_setpoint_c",
    "plc.chw_return_c": "chiller.return_temp_c",
}


def config(**changes: Any) -> ChillerResetConfig:
    settings: dict[str, Any] = {
        "name": "chw",
        "kind": "chiller_reset",
        "setpoint": "plc.chw_setpoint_c",
        "process": [{"tag": "plc.chw_return_c", "max": 16.0, "margin": 1.0}],
        "reset": {
            "min": 5.0,
            "max": 14.0,
            "initial": 7.0,
            "period": "2min",
            "delay": "5min",
            "trim": 0.1,
            "respond": -0.2,
            "max_response": -0.6,
        },
    }
    settings.update(changes)
    return ChillerResetConfig.model_validate(settings)


def test_setpoint_rises_while_the_process_stays_under_its_limit_on_the_plant() -> None:
    loop = PlantLoop(ChillerReset(config()), POINTS, plant=Plant(scenario("heatwave")))
    loop.advance(6 * 3600)
    highest: list[float] = []
    loop.run(4 * 3600, lambda loop: highest.append(loop.plant.chiller.return_c))
    assert loop.rule.detail()["setpoint_c"] > 9.0
    assert max(highest) <= 16.0
    assert loop.plant.truth.seconds_process_above_limit == 0


def test_a_warmer_setpoint_raises_the_chiller_cop() -> None:
    spec = scenario().chilled_water
    assert chiller_cop(spec, 12.0, 24.0, 0.5) > chiller_cop(spec, 7.0, 24.0, 0.5)


def test_trims_up_every_period_without_requests() -> None:
    driven = Driven(ChillerReset(config(reset=dict(reset(), delay="0s"))))
    for _ in range(601):  # the first cycle starts the periods: five end by then
        values = driven.step({"plc.chw_return_c": 12.0})
    assert values["plc.chw_setpoint_c"] == pytest.approx(7.5)


def test_process_within_its_margin_makes_the_setpoint_respond_down() -> None:
    driven = Driven(ChillerReset(config(reset=dict(reset(), delay="0s"))))
    for _ in range(121):
        values = driven.step({"plc.chw_return_c": 15.5})
    assert values["plc.chw_setpoint_c"] == pytest.approx(6.8)


def test_process_over_its_limit_makes_two_requests() -> None:
    driven = Driven(ChillerReset(config(reset=dict(reset(), delay="0s"))))
    for _ in range(121):
        values = driven.step({"plc.chw_return_c": 16.5})
    assert values["plc.chw_setpoint_c"] == pytest.approx(6.6)


def test_outside_production_the_idle_setpoint_is_proposed() -> None:
    production = {"tags": ["plc.state"], "at_least": 3}
    driven = Driven(ChillerReset(config(production=production, outside_production_c=14.0)))
    assert driven.step({"plc.chw_return_c": 12.0, "plc.state": 1})["plc.chw_setpoint_c"] == 14.0


def test_starts_from_the_setpoint_the_chiller_holds() -> None:
    rule = ChillerReset(config())
    Driven(rule).step({"plc.chw_return_c": 12.0, "plc.chw_setpoint_c": 9.0})
    assert rule.reset.value == 9.0


def test_a_negative_trim_is_refused() -> None:
    with pytest.raises(ValidationError, match="positive"):
        config(reset=dict(reset(), trim=-0.1, respond=0.2, max_response=0.6))


def reset() -> dict[str, Any]:
    return {
        "min": 5.0,
        "max": 14.0,
        "initial": 7.0,
        "period": "2min",
        "delay": "5min",
        "trim": 0.1,
        "respond": -0.2,
        "max_response": -0.6,
    }

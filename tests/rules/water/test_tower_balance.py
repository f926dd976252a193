"""The cooling tower's water balance: an unmetered loss (a basin or tower-side leak) found from
makeup, bleed and conductivities, with its estimate; none on a tower that is only bleeding,
concentrating or evaporating."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.water.tower_balance import TowerBalance, TowerBalanceConfig
from drivers.sim.plant.plant import Plant
from drivers.sim.plant.plc import Setpoint
from drivers.sim.plant.water import CoolingTower
from drivers.sim.scenario import EventsSpec
from tests.rules.plantloop import Driven, PlantLoop, scenario


def config(**changes: Any) -> TowerBalanceConfig:
    settings: dict[str, Any] = {
        "name": "tower",
        "kind": "tower_balance",
        "makeup_flow": "plc.makeup_m3_h",
        "conductivity": "plc.tower_us_cm",
        "blowdown_flow": "plc.blowdown_m3_h",
        "makeup_us_cm": 400,
        "volume_m3": 0.9,
        "threshold_m3_h": 0.05,
    }
    settings.update(changes)
    return TowerBalanceConfig.model_validate(settings)


def leak(rule: TowerBalance) -> Any:
    (condition,) = rule.alarm_conditions()
    return condition


def first_alarm(rule: TowerBalance, tower: CoolingTower, hours: float, leak_from_h: float) -> Any:
    """The tower alone, 150 kW of heat, stepped every 10 s; the leak opens at `leak_from_h`."""
    driven = Driven(rule)
    for _ in range(round(hours * 360)):
        if driven.t >= leak_from_h * 3600:
            tower.leak_m3_h = 0.1
        tower.step(10.0, heat_kw=150.0, wet_bulb_c=20.0, running=True)
        values = {
            "plc.makeup_m3_h": tower.makeup_m3_h,
            "plc.tower_us_cm": tower.conductivity,
            "plc.blowdown_m3_h": tower.blowdown_m3_h,
        }
        driven.step(values, dt=10.0)
        if leak(rule).active:
            return driven.t
    return None


def tower(initial_us_cm: float, bleed_pct: float | None) -> CoolingTower:
    spec = scenario().cooling_tower.model_copy(update={"initial_conductivity_us_cm": initial_us_cm})
    return CoolingTower(spec, Setpoint(default=bleed_pct, min=0.0, max=100.0))


def test_basin_leak_with_the_bleed_closed_and_conductivity_falling_is_alarmed() -> None:
    """The issue's heatwave tower: bleed closed, a 0.1 m3/h basin leak from 1 h; makeup goes
    above evaporation, the conductivity falls from 2000 uS/cm; alarm with the estimate."""
    closed = tower(2000.0, bleed_pct=0.0)
    rule = TowerBalance(config())
    raised = first_alarm(rule, closed, hours=4, leak_from_h=1)
    assert raised is not None, "no alarm in 4 h"
    assert 3600 < raised <= 3600 + 30 * 60
    assert rule.balance is not None
    assert rule.balance.conductivity_trend_us_cm_h < 0
    # Raised while the window still fills: the estimate is the loss so far, then the full leak.
    assert leak(rule).estimate["leak_m3_h"] == pytest.approx(0.1, abs=0.025)
    assert leak(rule).estimate["bleed_m3_h"] == pytest.approx(0.0, abs=0.001)


def test_a_closed_bleed_with_conductivity_rising_is_no_leak() -> None:
    rule = TowerBalance(config())
    assert first_alarm(rule, tower(1100.0, bleed_pct=0.0), hours=4, leak_from_h=99) is None
    assert rule.balance is not None
    assert rule.balance.conductivity_trend_us_cm_h > 0
    assert rule.balance.leak_m3_h == pytest.approx(0.0, abs=0.005)


def test_an_open_bleed_is_accounted_for() -> None:
    """Bleeding at full flow dilutes the tower quickly: conductivity falls, but the meter
    explains it."""
    rule = TowerBalance(config())
    assert first_alarm(rule, tower(2300.0, bleed_pct=100.0), hours=3, leak_from_h=99) is None


def test_bleed_from_the_valve_position_without_a_meter() -> None:
    rule = TowerBalance(
        config(blowdown_flow=None, bleed_valve="plc.valve_pct", bleed_full_m3_h=0.3)
    )
    driven = Driven(rule)
    bleeding = tower(2300.0, bleed_pct=100.0)
    for _ in range(3 * 360):
        bleeding.step(10.0, heat_kw=150.0, wet_bulb_c=20.0, running=True)
        values = {
            "plc.makeup_m3_h": bleeding.makeup_m3_h,
            "plc.tower_us_cm": bleeding.conductivity,
            "plc.valve_pct": bleeding.valve_pct,
        }
        driven.step(values, dt=10.0)
    assert not leak(rule).active
    assert rule.balance is not None
    assert rule.balance.bleed_m3_h == pytest.approx(0.3, abs=0.01)


def test_the_bleed_is_given_exactly_one_way() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        config(bleed_valve="plc.valve_pct", bleed_full_m3_h=0.3)
    with pytest.raises(ValidationError, match="exactly one"):
        config(blowdown_flow=None)


PLANT_POINTS = {
    "plc.makeup_m3_h": "tower.makeup_flow_m3_h",
    "plc.tower_us_cm": "tower.conductivity_us_cm",
    "plc.blowdown_m3_h": "tower.blowdown_flow_m3_h",
}


def test_plant_tower_basin_leak_is_alarmed_with_its_estimate() -> None:
    """normal-day with a 0.1 m3/h basin leak at 10:00 (seen only in the makeup): the PLC's own
    bleed control runs, the rule finds the loss within 30 min."""
    leaks = {
        "leaks": [
            {
                "kind": "water",
                "name": "basin",
                "start": {"at": "10:00"},
                "m3_h": 0.1,
                "location": "cooling_tower",
            }
        ]
    }
    day = scenario().model_copy(update={"events": EventsSpec.model_validate(leaks)})
    rule = TowerBalance(config())
    loop = PlantLoop(rule, PLANT_POINTS, plant=Plant(day), dt=10.0)
    raised: list[float] = []

    def watch(loop: PlantLoop) -> None:
        if not raised and leak(rule).active:
            raised.append(loop.plant.time_s)

    loop.run(13 * 3600, watch)
    started = loop.plant.truth.leaks[0].started_s
    assert started is not None
    assert raised, "no alarm by 13:00"
    assert 0 < raised[0] - started <= 30 * 60
    assert leak(rule).estimate["leak_m3_h"] == pytest.approx(0.1, abs=0.02)


def test_plant_normal_day_raises_no_tower_leak() -> None:
    rule = TowerBalance(config())
    loop = PlantLoop(rule, PLANT_POINTS, plant=Plant(scenario("normal-day")), dt=10.0)
    worst: list[float] = []

    def watch(loop: PlantLoop) -> None:
        assert not leak(rule).active, loop.plant.time_s
        if rule.balance is not None:
            worst.append(rule.balance.leak_m3_h)

    loop.run(24 * 3600, watch)
    assert max(worst) < 0.025


def test_a_second_basin_leak_under_the_raised_alarm_is_a_step() -> None:
    """docs/rules.md "Alarms": 0.1 m3/h from 1 h raises the alarm; 0.1 m3/h more from 2.5 h is
    a step of its estimate within 30 min, while the alarm stays raised."""
    basin = tower(2000.0, bleed_pct=0.0)
    rule = TowerBalance(config())
    driven = Driven(rule)
    stepped: list[float] = []
    for _ in range(5 * 360):
        hours = driven.t / 3600
        basin.leak_m3_h = 0.2 if hours >= 2.5 else 0.1 if hours >= 1 else 0.0
        basin.step(10.0, heat_kw=150.0, wet_bulb_c=20.0, running=True)
        values = {
            "plc.makeup_m3_h": basin.makeup_m3_h,
            "plc.tower_us_cm": basin.conductivity,
            "plc.blowdown_m3_h": basin.blowdown_m3_h,
        }
        driven.step(values, dt=10.0)
        if driven.t < 2.5 * 3600:
            assert leak(rule).steps == 0
        elif not stepped and leak(rule).steps == 1:
            stepped.append(driven.t)
        assert leak(rule).active or driven.t < 1.5 * 3600
    assert stepped, "no step in 2.5 h"
    assert stepped[0] - 2.5 * 3600 <= 30 * 60
    assert leak(rule).steps == 1
    assert leak(rule).estimate["leak_m3_h"] == pytest.approx(0.2, abs=0.03)

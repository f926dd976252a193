"""Rinse water reuse: quality kept in spec on the plant with far less fresh water than a
constant overflow, fresh water between two conductivities, recirculation only while clean
enough and the line runs, the quality alarm."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.water.rinse_reuse import RinseReuse, RinseReuseConfig
from drivers.sim.plant.plant import Plant
from tests.rules.plantloop import Driven, PlantLoop, scenario

POINTS = {
    "plc.rinse_us_cm": "rinse.conductivity_us_cm",
    "plc.fresh_pct": "rinse.fresh_valve_pct",
    "plc.recirc_pct": "rinse.recirc_valve_pct",
    "plc.washer_state": "washer-1.state",
}


def config(**changes: Any) -> RinseReuseConfig:
    settings: dict[str, Any] = {
        "name": "rinse",
        "kind": "rinse_reuse",
        "conductivity": "plc.rinse_us_cm",
        "limit_us_cm": 900,
        "fresh_valve": "plc.fresh_pct",
        "fresh_on_us_cm": 750,
        "fresh_off_us_cm": 600,
        "recirc_valve": "plc.recirc_pct",
        "production": {"tags": ["plc.washer_state"], "at_least": 3},
    }
    settings.update(changes)
    return RinseReuseConfig.model_validate(settings)


def test_plant_rinse_stays_in_spec_with_less_fresh_water_than_overflow() -> None:
    loop = PlantLoop(RinseReuse(config()), POINTS, plant=Plant(scenario()), dt=5.0)
    highest: list[float] = []
    loop.run(24 * 3600, lambda loop: highest.append(loop.plant.rinse.conductivity))
    plant = loop.plant
    assert plant.truth.seconds_rinse_above_limit == 0
    assert max(highest) <= 900
    # the baseline overflows at the valve's default 50 % of 2 m3/h all day: 24 m3
    assert plant.rinse_fresh_total_m3 < 0.1 * 24


def test_plant_without_recirculation_feeds_fresh_water_and_stays_in_spec() -> None:
    rule = RinseReuse(config(recirc_valve=None))
    loop = PlantLoop(rule, POINTS, plant=Plant(scenario()), dt=5.0)
    loop.advance(6 * 3600)
    loop.run(8 * 3600)
    assert loop.plant.truth.seconds_rinse_above_limit == 0
    assert loop.plant.rinse_fresh_total_m3 > 0


def test_fresh_water_opens_at_fresh_on_and_closes_at_fresh_off() -> None:
    driven = Driven(RinseReuse(config()))
    running = {"plc.washer_state": 3}
    assert driven.step({"plc.rinse_us_cm": 740.0, **running})["plc.fresh_pct"] == 0.0
    assert driven.step({"plc.rinse_us_cm": 750.0, **running})["plc.fresh_pct"] == 100.0
    assert driven.step({"plc.rinse_us_cm": 610.0, **running})["plc.fresh_pct"] == 100.0
    assert driven.step({"plc.rinse_us_cm": 600.0, **running})["plc.fresh_pct"] == 0.0


def test_recirculates_only_while_the_line_runs_and_the_rinse_is_under_reuse_below() -> None:
    driven = Driven(RinseReuse(config(reuse_below_us_cm=800)))
    assert driven.step({"plc.rinse_us_cm": 500.0, "plc.washer_state": 3})["plc.recirc_pct"] == 100
    assert driven.step({"plc.rinse_us_cm": 500.0, "plc.washer_state": 2})["plc.recirc_pct"] == 0
    assert driven.step({"plc.rinse_us_cm": 820.0, "plc.washer_state": 3})["plc.recirc_pct"] == 0


def test_over_the_limit_raises_the_quality_alarm() -> None:
    rule = RinseReuse(config())
    Driven(rule).step({"plc.rinse_us_cm": 950.0, "plc.washer_state": 3})
    (alarm,) = rule.alarm_conditions()
    assert (alarm.name, alarm.active) == ("rinse.quality", True)
    assert alarm.estimate["conductivity_us_cm"] == pytest.approx(950.0)


def test_levels_out_of_order_are_refused() -> None:
    with pytest.raises(ValidationError, match="fresh_off_us_cm < fresh_on_us_cm"):
        config(fresh_on_us_cm=950)

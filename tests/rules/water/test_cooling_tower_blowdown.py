"""Cooling tower blowdown: the mass balance (blowdown = evaporation / (cycles - 1)) on known
numbers and on the plant held in the band, the band with its deadband, the valve's minimum
times, the bleed time limit and conductivity alarms."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.water.cooling_tower_blowdown import BlowdownConfig, CoolingTowerBlowdown
from controller.rules.water.tower_chemistry import (
    blowdown_for_cycles,
    cycles_of_concentration,
    makeup_for_cycles,
)
from drivers.sim.plant.plant import Plant
from tests.rules.plantloop import Driven, PlantLoop, scenario

POINTS = {
    "plc.tower_us_cm": "tower.conductivity_us_cm",
    "plc.bleed_pct": "tower.blowdown_valve_pct",
    "plc.makeup_m3_h": "tower.makeup_flow_m3_h",
}


def config(**changes: Any) -> BlowdownConfig:
    settings: dict[str, Any] = {
        "name": "tower",
        "kind": "cooling_tower_blowdown",
        "conductivity": "plc.tower_us_cm",
        "valve": "plc.bleed_pct",
        "limit_us_cm": 2500,
        "margin_us_cm": 100,
        "deadband_us_cm": 100,
        "min_open": "2min",
        "min_closed": "5min",
        "max_open": "1h",
        "makeup_us_cm": 400,
    }
    settings.update(changes)
    return BlowdownConfig.model_validate(settings)


def alarms(rule: CoolingTowerBlowdown) -> set[str]:
    return {c.name for c in rule.alarm_conditions() if c.active}


def test_mass_balance_known_answer() -> None:
    # 100 kW of heat evaporates 0.126 m3/h; at 5 cycles the blowdown is a quarter of that.
    assert cycles_of_concentration(2000, 400) == 5
    assert blowdown_for_cycles(0.126, 5) == pytest.approx(0.0315)
    assert makeup_for_cycles(0.126, 5) == pytest.approx(0.1575)


def test_estimates_from_makeup_and_conductivity_at_steady_state() -> None:
    rule = CoolingTowerBlowdown(config(makeup_flow="plc.makeup_m3_h"))
    Driven(rule).step({"plc.tower_us_cm": 2000.0, "plc.makeup_m3_h": 0.1575})
    detail = rule.detail()
    assert detail["cycles"] == 5
    assert detail["evaporation_m3_h"] == pytest.approx(0.126)
    assert detail["blowdown_m3_h"] == pytest.approx(0.0315)


def test_plant_held_in_the_band_bleeds_evaporation_over_cycles_minus_one() -> None:
    """Three simulated days from just under the band: between the first and the last closing
    of the valve the basin is back where it was, so blowdown + drift over that stretch equals
    evaporation / (C - 1), C the cycles of the water that left."""
    base = scenario()
    tower = base.cooling_tower.model_copy(update={"initial_conductivity_us_cm": 2350.0})
    plant = Plant(base.model_copy(update={"cooling_tower": tower}))
    rule = CoolingTowerBlowdown(config())
    loop = PlantLoop(rule, POINTS, plant=plant, dt=10.0)
    closings: list[dict[str, float]] = []
    state = {"open": False, "outflow": 0.0, "solids": 0.0, "low": 1e9, "high": 0.0}

    def record(loop: PlantLoop) -> None:
        water = loop.plant.truth.water_m3
        conductivity = loop.plant.tower.conductivity
        outflow = water["tower_blowdown"] + water["tower_drift"]
        state["solids"] += (outflow - state["outflow"]) * conductivity
        state["outflow"] = outflow
        state["low"] = min(state["low"], conductivity)
        state["high"] = max(state["high"], conductivity)
        if state["open"] and not rule.valve.state:
            closings.append(
                {
                    "evaporation": water["tower_evaporation"],
                    "outflow": outflow,
                    "solids": state["solids"],
                }
            )
        state["open"] = rule.valve.state

    loop.run(3 * 86400, record)
    assert len(closings) >= 3
    first, last = closings[0], closings[-1]
    evaporation = last["evaporation"] - first["evaporation"]
    outflow = last["outflow"] - first["outflow"]
    cycles = (last["solids"] - first["solids"]) / outflow / 400
    assert outflow == pytest.approx(blowdown_for_cycles(evaporation, cycles), rel=0.03)
    assert state["low"] >= 2300 - 5
    assert state["high"] <= 2500


def test_opens_at_limit_minus_margin_and_closes_a_deadband_lower() -> None:
    rule = CoolingTowerBlowdown(config(min_open="0s", min_closed="0s"))
    driven = Driven(rule)
    assert driven.step({"plc.tower_us_cm": 2390.0}) == {"plc.bleed_pct": 0.0}
    assert driven.step({"plc.tower_us_cm": 2400.0}) == {"plc.bleed_pct": 100.0}
    assert driven.step({"plc.tower_us_cm": 2350.0}) == {"plc.bleed_pct": 100.0}
    assert driven.step({"plc.tower_us_cm": 2300.0}) == {"plc.bleed_pct": 0.0}


def closed_for_min_closed(driven: Driven) -> None:
    """Started with the valve closed for an unknown time, the block counts min_closed from the
    start (the safe assumption)."""
    for _ in range(5 * 60):
        driven.step({"plc.tower_us_cm": 2350.0})


def test_opening_waits_for_min_closed_after_a_start() -> None:
    driven = Driven(CoolingTowerBlowdown(config()))
    assert driven.step({"plc.tower_us_cm": 2450.0}) == {"plc.bleed_pct": 0.0}
    closed_for_min_closed(driven)
    assert driven.step({"plc.tower_us_cm": 2450.0}) == {"plc.bleed_pct": 100.0}


def test_valve_keeps_its_minimum_open_time() -> None:
    rule = CoolingTowerBlowdown(config())
    driven = Driven(rule)
    closed_for_min_closed(driven)
    driven.step({"plc.tower_us_cm": 2400.0})
    for _ in range(100):
        assert driven.step({"plc.tower_us_cm": 2200.0}) == {"plc.bleed_pct": 100.0}
    for _ in range(30):
        values = driven.step({"plc.tower_us_cm": 2200.0})
    assert values == {"plc.bleed_pct": 0.0}


def test_valve_open_longer_than_max_open_raises_the_bleed_time_limit() -> None:
    rule = CoolingTowerBlowdown(config(max_open="30min"))
    driven = Driven(rule)
    closed_for_min_closed(driven)
    for _ in range(30 * 60 + 1):
        driven.step({"plc.tower_us_cm": 2450.0})
    assert alarms(rule) == {"tower.bleed_time_limit"}
    for _ in range(3 * 60):
        driven.step({"plc.tower_us_cm": 2250.0})
    assert alarms(rule) == set()


def test_conductivity_over_the_limit_raises_its_alarm() -> None:
    rule = CoolingTowerBlowdown(config())
    driven = Driven(rule)
    driven.step({"plc.tower_us_cm": 2510.0})
    assert "tower.conductivity_high" in alarms(rule)


def test_restart_takes_the_valve_state_from_its_reading() -> None:
    rule = CoolingTowerBlowdown(config())
    Driven(rule).step({"plc.tower_us_cm": 2350.0, "plc.bleed_pct": 100.0})
    assert rule.valve.state is True


def test_band_reaching_below_zero_is_refused() -> None:
    with pytest.raises(ValidationError, match="below limit_us_cm"):
        config(margin_us_cm=1500, deadband_us_cm=1000)

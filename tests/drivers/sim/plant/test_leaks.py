"""Injected leaks: they start when the scenario says, show in the physical flows, and their truth
is kept for scoring."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.air import orifice_free_air_m3_min_per_bar_abs
from drivers.sim.scenario import AirLeak, WaterLeak, load_scenario


def test_leak_truth_holds_the_configured_start() -> None:
    scenario = load_scenario("leak")
    plant = Plant(scenario)
    while plant.time_s < 15 * 3600:
        plant.step(5.0)
    truth = {leak.name: leak for leak in plant.ground_truth().leaks}
    for leak in scenario.events.leaks:
        assert truth[leak.name].configured_start.endswith(leak.start.at.strftime("%H:%M:%S"))
        assert truth[leak.name].started_s == leak.start.seconds_after(scenario.start)
        assert truth[leak.name].volume_m3 > 0


def test_air_leak_adds_its_orifice_flow() -> None:
    scenario = load_scenario("leak")
    leak = next(x for x in scenario.events.leaks if isinstance(x, AirLeak))
    plant = Plant(scenario)
    start = leak.start.seconds_after(scenario.start)
    while plant.time_s < start:
        plant.step(5.0)
    pressure = plant.air.pressure_bar
    before = plant.air.leak_m3_min(pressure)
    plant.step(5.0)
    added = plant.air.leak_m3_min(pressure) - before
    assert added == pytest.approx(
        orifice_free_air_m3_min_per_bar_abs(leak.orifice_mm, leak.discharge_coefficient)
        * (pressure + 1.01325)
    )


def test_water_leak_raises_the_main_meter_flow_by_its_rate() -> None:
    scenario = load_scenario("leak")
    leak = next(x for x in scenario.events.leaks if isinstance(x, WaterLeak))
    reference = Plant(load_scenario("normal-day").model_copy(update={"seed": scenario.seed}))
    plant = Plant(scenario)
    end = leak.start.seconds_after(scenario.start) + 600
    while plant.time_s < end:
        plant.step(5.0)
        reference.step(5.0)
    difference = float(plant.read_point("water_meter.flow_m3_h")) - float(
        reference.read_point("water_meter.flow_m3_h")
    )
    assert difference == pytest.approx(leak.m3_h, abs=1e-9)

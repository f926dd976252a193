"""Chilled water against its sources: COP up with the supply temperature (1-2 % per degF at
design conditions), down with warmer condenser water; the loop holds its setpoint."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.chiller import ChilledWater, chiller_cop
from drivers.sim.scenario import Scenario

DESIGN_CONDENSER_C = 29.4  # 85 degF, AHRI 550/590 entering condenser water


def test_cop_rises_one_to_two_percent_per_degf_of_supply_temperature(normal_day: Scenario) -> None:
    spec = normal_day.chilled_water
    cop_7 = chiller_cop(spec, 7.0, DESIGN_CONDENSER_C, 1.0)
    cop_8 = chiller_cop(spec, 8.0, DESIGN_CONDENSER_C, 1.0)
    per_degf = (cop_8 / cop_7 - 1) / 1.8
    # The Carnot-fraction model sits at the top of the rule of thumb (~2 %/degF): allow a margin.
    assert 0.01 <= per_degf <= 0.025


def test_cop_at_design_is_that_of_a_water_cooled_chiller(normal_day: Scenario) -> None:
    # ASHRAE 90.1 water-cooled positive-displacement chillers: full-load COP ~4.7-5.5.
    cop = chiller_cop(normal_day.chilled_water, 6.7, DESIGN_CONDENSER_C, 1.0)
    assert 4.5 <= cop <= 6.5


def test_warmer_condenser_water_lowers_the_cop(normal_day: Scenario) -> None:
    spec = normal_day.chilled_water
    assert chiller_cop(spec, 7.0, 30.0, 1.0) < chiller_cop(spec, 7.0, 24.0, 1.0)


def test_loop_settles_at_the_setpoint_with_return_above_by_the_load(normal_day: Scenario) -> None:
    spec = normal_day.chilled_water
    loop = ChilledWater(spec)
    for _ in range(2000):
        loop.step(
            5.0,
            heat_kw=60.0,
            ambient_c=spec.supply_setpoint_c.default,
            condenser_water_in_c=25.0,
            running=True,
        )
    flow_kw_per_k = spec.loop_flow_m3_h / 3.6 * 4.186
    assert loop.supply_c == pytest.approx(spec.supply_setpoint_c.default, abs=0.05)
    assert loop.return_c - loop.supply_c == pytest.approx(loop.cooling_kw / flow_kw_per_k, rel=0.01)


def test_raising_the_setpoint_cuts_chiller_energy_over_a_shift(normal_day: Scenario) -> None:
    def shift_energy(setpoint: float) -> float:
        plant = Plant(normal_day)
        energy = 0.0
        beat = 0
        while plant.time_s < 14 * 3600:
            beat += 1
            plant.write_point("chiller.heartbeat", beat)
            plant.write_point("chiller.supply_setpoint_c", setpoint)
            plant.step(5.0)
            if plant.time_s > 6 * 3600:
                energy += float(plant.read_point("chiller.power_kw")) * 5.0 / 3600
        return energy

    assert shift_energy(10.0) < shift_energy(7.0)

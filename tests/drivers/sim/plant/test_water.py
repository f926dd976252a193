"""Water against its sources: the cooling tower's cycles of concentration, FEMP's evaporation
rule, and the rinse line's dilution balance."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.plc import Setpoint
from drivers.sim.plant.water import EQ_PER_US_CM_M3, CoolingTower, RinseLine
from drivers.sim.scenario import RinseSpec, Scenario


def _settled_tower(scenario: Scenario, valve_pct: float, heat_kw: float) -> CoolingTower:
    tower = CoolingTower(scenario.cooling_tower, Setpoint(default=valve_pct, min=0, max=100))
    for _ in range(30 * 24 * 12):  # a month at 5 s: many times the volume turnover
        tower.step(300.0, heat_kw=heat_kw, wet_bulb_c=20.0, running=True)
    return tower


def test_cycles_of_concentration_equal_makeup_over_blowdown(normal_day: Scenario) -> None:
    tower = _settled_tower(normal_day, valve_pct=10.0, heat_kw=120.0)
    spec = normal_day.cooling_tower
    cycles = tower.conductivity / spec.makeup_conductivity_us_cm
    out = tower.makeup_m3_h - tower.evaporation_m3_h  # blowdown + drift (+ leaks, none here)
    assert cycles == pytest.approx(tower.makeup_m3_h / out, rel=1e-3)


def test_more_cycles_need_less_makeup(normal_day: Scenario) -> None:
    few = _settled_tower(normal_day, valve_pct=20.0, heat_kw=120.0)
    many = _settled_tower(normal_day, valve_pct=5.0, heat_kw=120.0)
    spec = normal_day.cooling_tower
    assert (
        many.conductivity / spec.makeup_conductivity_us_cm
        > few.conductivity / spec.makeup_conductivity_us_cm
    )
    assert many.makeup_m3_h < few.makeup_m3_h
    # makeup = E * C / (C - 1) for both
    for tower in (few, many):
        cycles = tower.conductivity / spec.makeup_conductivity_us_cm
        assert tower.makeup_m3_h == pytest.approx(
            tower.evaporation_m3_h * cycles / (cycles - 1), rel=1e-3
        )


def test_evaporation_follows_the_femp_rule(normal_day: Scenario) -> None:
    # FEMP: evaporation (gpm) ~ 0.00085 x circulation (gpm) x range (degF).
    tower = CoolingTower(normal_day.cooling_tower, Setpoint(default=0.0, min=0, max=100))
    heat_kw, range_k = 150.0, 5.0
    tower.step(60.0, heat_kw=heat_kw, wet_bulb_c=20.0, running=True)
    circulation_m3_h = heat_kw / (4.186 * range_k) * 3.6
    rule_m3_h = 0.00085 * circulation_m3_h * range_k * 1.8
    assert tower.evaporation_m3_h == pytest.approx(rule_m3_h, rel=0.06)


def test_local_blowdown_control_keeps_conductivity_near_its_setpoint(normal_day: Scenario) -> None:
    spec = normal_day.cooling_tower
    tower = CoolingTower(spec, Setpoint(default=None, min=0, max=100))
    seen = []
    for _ in range(14 * 24 * 60):  # two weeks at one minute
        tower.step(60.0, heat_kw=120.0, wet_bulb_c=20.0, running=True)
        seen.append(tower.conductivity)
    late = seen[len(seen) // 2 :]
    assert max(late) <= spec.local_conductivity_setpoint_us_cm + 20
    assert min(late) >= spec.local_conductivity_setpoint_us_cm - spec.local_hysteresis_us_cm - 20


def test_rinse_settles_where_drag_out_balances_dilution(normal_day: Scenario) -> None:
    spec = normal_day.rinse
    rinse = RinseLine(
        spec, Setpoint(default=40.0, min=0, max=100), Setpoint(default=0.0, min=0, max=100)
    )
    for _ in range(2000):
        rinse.step(30.0, producing=True)
    fresh = 0.4 * spec.fresh_max_m3_h
    expected = (
        spec.dragout_l_h / 1000 * spec.bath_conductivity_us_cm
        + fresh * spec.fresh_conductivity_us_cm
    ) / fresh
    assert rinse.conductivity == pytest.approx(expected, rel=1e-3)


def test_recirculation_through_ion_exchange_lowers_rinse_conductivity(normal_day: Scenario) -> None:
    spec = normal_day.rinse

    def settled(recirc_pct: float) -> float:
        rinse = RinseLine(
            spec,
            Setpoint(default=40.0, min=0, max=100),
            Setpoint(default=recirc_pct, min=0, max=100),
        )
        for _ in range(2000):
            rinse.step(30.0, producing=True)
        return rinse.conductivity

    assert settled(50.0) < settled(0.0)


def _tower_day(scenario: Scenario, forced_pct: float | None) -> tuple[Plant, float, float]:
    """A day of the plant, the blowdown valve forced (water PLC in remote) or on the PLC's own
    conductivity control; the lowest and highest conductivity after the first hour."""
    plant = Plant(scenario)
    low, high = float("inf"), 0.0
    beat = 0
    while plant.time_s < 86400.0:
        if forced_pct is not None:
            beat += 1
            plant.write_point("water.heartbeat", beat)
            plant.write_point("tower.blowdown_valve_pct", forced_pct)
        plant.step(5.0)
        if plant.time_s > 3600:
            low = min(low, plant.tower.conductivity)
            high = max(high, plant.tower.conductivity)
    return plant, low, high


def test_baseline_blowdown_holds_about_three_cycles(normal_day: Scenario) -> None:
    spec = normal_day.cooling_tower
    plant, low, high = _tower_day(normal_day, forced_pct=None)
    makeup = spec.makeup_conductivity_us_cm
    assert low / makeup >= 2.7
    assert high / makeup <= 3.05
    assert plant.ground_truth().seconds_tower_above_limit == 0.0


def test_closed_blowdown_concentrates_by_more_than_a_cycle_within_a_day(
    normal_day: Scenario,
) -> None:
    # With the tower's realistic system volume a controller holding more cycles than the
    # baseline's ~3 shows within one simulated day (reaching the limit's 6 takes about two).
    spec = normal_day.cooling_tower
    plant, _, _ = _tower_day(normal_day, forced_pct=0.0)
    gained = (plant.tower.conductivity - spec.initial_conductivity_us_cm) / (
        spec.makeup_conductivity_us_cm
    )
    assert gained > 1.0
    assert plant.ground_truth().water_m3["tower_blowdown"] == 0.0


def test_time_above_the_chemistry_limit_is_counted(normal_day: Scenario) -> None:
    limit = normal_day.cooling_tower.max_conductivity_us_cm
    tower = normal_day.cooling_tower.model_copy(update={"initial_conductivity_us_cm": limit + 200})
    plant = Plant(normal_day.model_copy(update={"cooling_tower": tower}))
    beat = 0
    while plant.time_s < 3600.0:
        beat += 1
        plant.write_point("water.heartbeat", beat)
        plant.write_point("tower.blowdown_valve_pct", 0.0)
        plant.step(5.0)
    assert plant.ground_truth().seconds_tower_above_limit == 3600.0


def _recirculating(spec: RinseSpec) -> RinseLine:
    """Fresh water closed, recirculation fully open: the exchanger does all the cleaning."""
    return RinseLine(
        spec, Setpoint(default=0.0, min=0, max=100), Setpoint(default=100.0, min=0, max=100)
    )


def test_ion_exchanger_exhausts_at_its_capacity_and_regeneration_draws_its_water(
    normal_day: Scenario,
) -> None:
    spec = normal_day.rinse.model_copy(update={"ix_capacity_eq": 3.0, "ix_initial_load": 0.0})
    rinse = _recirculating(spec)
    dt = 10.0
    drag_in = 0.0  # uS/cm * m3 carried into the tank
    start_content = rinse.conductivity * spec.tank_m3
    while rinse.ix_regenerating_s == 0:
        rinse.step(dt, producing=True)
        drag_in += spec.dragout_l_h / 1000 * spec.bath_conductivity_us_cm * dt / 3600
    # what the exchanger took out = what came in minus what the tank still holds
    removed = drag_in - (rinse.conductivity * spec.tank_m3 - start_content)
    assert removed * EQ_PER_US_CM_M3 == pytest.approx(spec.ix_capacity_eq, rel=0.01)
    exhausted_at = rinse.conductivity
    drawn = 0.0
    while rinse.ix_regenerating_s > 0:
        step = rinse.step(dt, producing=True)
        drawn += step.regeneration_m3
        assert rinse.supply_m3_h == pytest.approx(spec.ix_regeneration_m3 / spec.ix_regeneration_h)
    assert drawn == pytest.approx(spec.ix_regeneration_m3, rel=1e-6)
    # while it regenerated nothing was removed: the drag-out piled up
    assert rinse.conductivity > exhausted_at + 0.9 * 150.0 * spec.ix_regeneration_h / spec.tank_m3
    assert rinse.ix_regenerations == 1
    assert rinse.ix_load_eq == 0.0
    rinse.step(dt, producing=True)
    assert rinse.supply_m3_h == 0.0  # back in service, no water drawn


def test_a_day_of_recirculation_costs_regeneration_water_on_the_meters(
    normal_day: Scenario,
) -> None:
    # Fresh water closed and recirculation open as the PLC's own settings, a whole day.
    rinse = normal_day.rinse.model_copy(
        update={
            "fresh_valve_pct": normal_day.rinse.fresh_valve_pct.model_copy(update={"default": 0.0}),
            "recirc_valve_pct": normal_day.rinse.recirc_valve_pct.model_copy(
                update={"default": 100.0}
            ),
        }
    )
    plant = Plant(normal_day.model_copy(update={"rinse": rinse}))
    while plant.time_s < 24 * 3600:
        plant.step(10.0)
    metered = float(plant.read_point("rinse.fresh_total_m3"))
    # The drag-out of a production day (about 24 eq) is more than the half-used bed holds.
    assert metered > 0, "the exchanger cleaned the rinse all day and drew no water"
    assert metered >= plant.scenario.rinse.ix_regeneration_m3 * 0.99
    assert metered == pytest.approx(plant.ground_truth().water_m3["rinse_regeneration"], rel=1e-9)

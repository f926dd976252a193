"""The production schedule: shifts, breaks, idle periods, warm-up and days off."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.schedule import Activity, ProductionSchedule
from drivers.sim.scenario import Scenario, load_scenario

MONDAY = datetime.fromisoformat("2024-06-03T00:00")  # site local time, naive


# normal-day leaves machines idle between shifts (the baseline of a cell run without edgecell),
# so the night is IDLE; it was STANDBY before `between_shifts` existed.
@pytest.mark.parametrize(
    ("clock", "activity"),
    [
        ("03:00", Activity.IDLE),  # between shifts
        ("05:45", Activity.IDLE),  # warm-up before the early shift
        ("07:00", Activity.PRODUCING),
        ("09:05", Activity.IDLE),  # break
        ("15:10", Activity.IDLE),  # changeover
        ("21:59", Activity.PRODUCING),
        ("22:30", Activity.IDLE),  # between shifts
    ],
)
def test_weekday_activity(normal_day: Scenario, clock: str, activity: Activity) -> None:
    hour, minute = map(int, clock.split(":"))
    schedule = ProductionSchedule(normal_day.schedule)
    assert schedule.activity(MONDAY.replace(hour=hour, minute=minute)) is activity


def test_between_shifts_standby_puts_machines_in_standby_but_not_the_warmup(
    normal_day: Scenario,
) -> None:
    spec = normal_day.schedule.model_copy(update={"between_shifts": "standby"})
    schedule = ProductionSchedule(spec)
    assert schedule.activity(MONDAY.replace(hour=3)) is Activity.STANDBY
    assert schedule.activity(MONDAY.replace(hour=22, minute=30)) is Activity.STANDBY
    assert schedule.activity(MONDAY.replace(hour=5, minute=45)) is Activity.IDLE
    assert schedule.activity(MONDAY.replace(hour=9, minute=5)) is Activity.IDLE  # a break


def test_machines_left_idle_at_night_draw_their_idle_power(normal_day: Scenario) -> None:
    standby = normal_day.model_copy(
        update={"schedule": normal_day.schedule.model_copy(update={"between_shifts": "standby"})}
    )
    idle_plant, standby_plant = Plant(normal_day), Plant(standby)
    while idle_plant.time_s < 3 * 3600:
        idle_plant.step(5.0)
        standby_plant.step(5.0)
    extra = sum(
        float(idle_plant.read_point(f"{m.name}.power_kw"))
        - float(standby_plant.read_point(f"{m.name}.power_kw"))
        for m in normal_day.machines
    )
    assert extra == pytest.approx(
        sum(m.power_kw.idle - m.power_kw.standby for m in normal_day.machines)
    )


SATURDAY_10 = datetime.fromisoformat("2024-06-08T10:00")


def test_saturday_has_no_production(normal_day: Scenario) -> None:
    schedule = ProductionSchedule(normal_day.schedule)
    assert schedule.activity(SATURDAY_10) is Activity.OFF
    assert not schedule.occupied(SATURDAY_10)


def test_weekend_day_machines_are_off_and_the_site_draws_its_base() -> None:
    plant = Plant(load_scenario("weekend"))
    while plant.time_s < 12 * 3600:
        plant.step(5.0)
    assert all(plant.read_point(f"{m.name}.state") == Activity.OFF for m in plant.machines)
    assert all(plant.read_point(f"{m.name}.power_kw") == 0.0 for m in plant.machines)
    # Leaks keep the compressor cycling with nobody at work.
    assert float(plant.read_point("compressor.energy_kwh")) > 0


def test_load_curve_follows_the_shifts(normal_day: Scenario) -> None:
    # The 15-minute demand, not the instantaneous power: with machines idle at night (the
    # baseline) a sample can catch the wash tank's 24 kW heater and the compressor loaded
    # at the same moment, which says nothing about the shape of the day.
    plant = Plant(normal_day)
    power: dict[int, float] = {}
    while plant.time_s < 86400.0:
        plant.step(5.0)
        if plant.time_s % 3600 == 1800:
            power[int(plant.time_s // 3600)] = float(plant.read_point("site_meter.demand_kw"))
    night = max(power[h] for h in (0, 1, 2, 3, 4))
    day = min(power[h] for h in (7, 8, 10, 13, 16, 18, 21))
    assert day > 2 * night

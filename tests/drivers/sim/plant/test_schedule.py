"""The production schedule: shifts, breaks, idle periods, warm-up and days off."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.schedule import Activity, ProductionSchedule
from drivers.sim.scenario import Scenario, load_scenario

MONDAY = datetime.fromisoformat("2024-06-03T00:00")  # site local time, naive


@pytest.mark.parametrize(
    ("clock", "activity"),
    [
        ("03:00", Activity.STANDBY),
        ("05:45", Activity.IDLE),  # warm-up before the early shift
        ("07:00", Activity.PRODUCING),
        ("09:05", Activity.IDLE),  # break
        ("15:10", Activity.IDLE),  # changeover
        ("21:59", Activity.PRODUCING),
        ("22:30", Activity.STANDBY),
    ],
)
def test_weekday_activity(normal_day: Scenario, clock: str, activity: Activity) -> None:
    hour, minute = map(int, clock.split(":"))
    schedule = ProductionSchedule(normal_day.schedule)
    assert schedule.activity(MONDAY.replace(hour=hour, minute=minute)) is activity


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
    plant = Plant(normal_day)
    power: dict[int, float] = {}
    while plant.time_s < 86400.0:
        plant.step(5.0)
        if plant.time_s % 3600 == 1800:
            power[int(plant.time_s // 3600)] = float(plant.read_point("site_meter.active_power_kw"))
    night = max(power[h] for h in (0, 1, 2, 3, 4))
    day = min(power[h] for h in (7, 8, 10, 13, 16, 18, 21))
    assert day > 2 * night

"""The EV charging point: a car charges its energy at rated power from its arrival, a pause
defers the energy (it finishes later, nothing lost), energy still wanted at departure is
counted, and no car comes on a day off."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.scenario import EvChargerSpec, Scenario, load_scenario

CHARGER = "ev-charger"


def charger(scenario: Scenario) -> EvChargerSpec:
    return next(c for c in scenario.ev_chargers if c.name == CHARGER)


def run(plant: Plant, until_hour: float, beat: bool = True) -> list[float]:
    """Step to `until_hour`; the charging power after every step."""
    powers = []
    while plant.time_s < until_hour * 3600 - 1e-9:
        if beat:
            plant.write_point("process.heartbeat", int(plant.time_s) % 30000 + 1)
        plant.step(5.0)
        powers.append(float(plant.read_point(f"{CHARGER}.power_kw")))
    return powers


def test_car_charges_its_energy_at_rated_power_from_arrival(normal_day: Scenario) -> None:
    spec = charger(normal_day)
    (session,) = spec.sessions
    plant = Plant(normal_day)
    run(plant, 7.9)
    assert plant.read_point(f"{CHARGER}.connected") is False
    powers = run(plant, 17.0)
    charging_s = 5.0 * sum(1 for p in powers if p > 0)
    assert max(powers) == spec.kw
    assert charging_s == pytest.approx(session.kwh / spec.kw * 3600, abs=5.0)
    truth = plant.ground_truth()
    assert truth.energy_kwh[CHARGER] == pytest.approx(session.kwh)
    assert truth.ev_energy_short_kwh[CHARGER] == 0.0


def test_paused_charging_finishes_later_with_nothing_lost(normal_day: Scenario) -> None:
    (session,) = charger(normal_day).sessions
    plant = Plant(normal_day)
    run(plant, 8.0)
    plant.write_point(f"{CHARGER}.enable", 0)
    paused = run(plant, 9.0)
    assert plant.read_point(f"{CHARGER}.connected") is True
    plant.write_point(f"{CHARGER}.enable", 1)
    run(plant, 17.0)
    truth = plant.ground_truth()
    assert max(paused) == 0.0
    assert truth.energy_kwh[CHARGER] == pytest.approx(session.kwh)
    assert truth.ev_energy_short_kwh[CHARGER] == 0.0


def test_energy_still_wanted_at_departure_is_counted_short(normal_day: Scenario) -> None:
    (session,) = charger(normal_day).sessions
    plant = Plant(normal_day)
    run(plant, 8.0)
    plant.write_point(f"{CHARGER}.enable", 0)
    run(plant, 15.0)  # enabled again 90 minutes before the car leaves: too late
    plant.write_point(f"{CHARGER}.enable", 1)
    run(plant, 17.0)
    truth = plant.ground_truth()
    delivered = truth.energy_kwh[CHARGER]
    assert delivered == pytest.approx(charger(normal_day).kw * 1.5)
    assert truth.ev_energy_short_kwh[CHARGER] == pytest.approx(session.kwh - delivered)


def test_lost_heartbeat_lets_the_car_charge_again(normal_day: Scenario) -> None:
    timeout = normal_day.plcs.process.heartbeat_timeout
    assert timeout is not None
    plant = Plant(normal_day)
    run(plant, 8.0)
    plant.write_point(f"{CHARGER}.enable", 0)
    run(plant, 8.5)
    powers = run(plant, 8.5 + (timeout + 10) / 3600, beat=False)
    assert powers[-1] == charger(normal_day).kw


def test_no_car_comes_on_a_saturday() -> None:
    plant = Plant(load_scenario("weekend"))
    powers = run(plant, 24.0, beat=False)
    assert max(powers) == 0.0
    assert plant.ground_truth().ev_energy_short_kwh[CHARGER] == 0.0

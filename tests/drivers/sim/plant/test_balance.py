"""Mass and energy balances over a simulated day: nothing is created or lost between the
components and the meters."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.scenario import EventsSpec, Scenario, load_scenario


def _run_day(scenario: Scenario, dt: float = 5.0) -> Plant:
    plant = Plant(scenario)
    while plant.time_s < 86400.0:
        plant.step(dt)
    return plant


@pytest.fixture(scope="module")
def leak_day() -> Plant:
    """The leak scenario has every water path (leaks too) and an air leak."""
    return _run_day(load_scenario("leak"))


def test_energy_at_the_main_meter_equals_the_sum_of_the_components(leak_day: Plant) -> None:
    truth = leak_day.ground_truth()
    initial = leak_day.scenario.site.meter.initial_import_kwh
    metered = float(leak_day.read_point("site_meter.import_energy_kwh")) - initial
    assert metered == pytest.approx(sum(truth.energy_kwh.values()), rel=1e-9)
    assert metered == pytest.approx(truth.site_import_kwh, rel=1e-9)


def test_every_modelled_consumer_shows_in_the_energy_split(leak_day: Plant) -> None:
    truth = leak_day.ground_truth()
    scenario = leak_day.scenario
    equipment = (
        [m.name for m in scenario.machines]
        + [t.name for t in scenario.heated_tanks]
        + [c.name for c in scenario.ev_chargers]
    )
    expected = set(equipment) | {
        "compressor",
        "chiller",
        "chilled_water_pump",
        "tower_fan",
        "condenser_pump",
        "rinse_pump",
        "base_load",
    }
    assert set(truth.energy_kwh) == expected
    assert all(v > 0 for k, v in truth.energy_kwh.items() if k != "rinse_pump")


def test_tower_makeup_equals_evaporation_blowdown_drift_and_leaks(leak_day: Plant) -> None:
    water = leak_day.ground_truth().water_m3
    losses = (
        water["tower_evaporation"]
        + water["tower_blowdown"]
        + water["tower_drift"]
        + water["tower_leak"]
    )
    assert water["tower_makeup"] > 0
    assert water["tower_makeup"] == pytest.approx(losses, rel=1e-3)
    assert float(leak_day.read_point("tower.makeup_total_m3")) == pytest.approx(
        water["tower_makeup"], rel=1e-9
    )


def test_main_water_meter_equals_the_sum_of_the_uses(leak_day: Plant) -> None:
    water = leak_day.ground_truth().water_m3
    metered = (
        float(leak_day.read_point("water_meter.total_m3")) - leak_day.scenario.site.initial_water_m3
    )
    uses = (
        water["tower_makeup"]
        + water["rinse_fresh"]
        + water["rinse_regeneration"]
        + water["domestic"]
        + water["main_leak"]
    )
    assert metered == pytest.approx(uses, rel=1e-3)


def test_a_cooling_tower_basin_leak_shows_in_the_makeup() -> None:
    events = EventsSpec.model_validate(
        {"leaks": [{"kind": "water", "name": "basin", "start": {"at": "00:00"}, "m3_h": 0.2,
                    "location": "cooling_tower"}]}
    )  # fmt: skip
    plant = Plant(load_scenario("normal-day").model_copy(update={"events": events}))
    while plant.time_s < 6 * 3600:
        plant.step(5.0)
    water = plant.ground_truth().water_m3
    assert water["tower_leak"] == pytest.approx(0.2 * 6, rel=1e-6)
    assert water["tower_makeup"] == pytest.approx(
        water["tower_evaporation"] + water["tower_blowdown"] + water["tower_drift"] + 1.2,
        rel=1e-3,
    )

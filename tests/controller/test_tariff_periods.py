# ruff: noqa: DTZ001  (the tariff reads naive local times, as the scenario writes them)
"""A tariff period that crosses midnight (a cheap night from 22:00 to 06:00, the first thing a
three-period tariff has) prices every hour it covers, in the controller's tariff (the
scheduler's prices), in the simulated cell's bill and in the report's perfect-foresight
bound, as the schedule block reads such a stretch: it belongs to the day it starts on."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from controller.foresight import BatteryAsPlanned, FlexibleSet, foresight_problem
from controller.report import RunResult
from controller.scheduler_report import run_figures
from controller.tariff import TariffSpec
from drivers.sim.plant import Plant
from drivers.sim.plant.truth import GroundTruth
from drivers.sim.scenario import Scenario, load_scenario

NIGHT_TARIFF = {
    "default_price_per_kwh": 0.19,
    "periods": [
        {
            "name": "night",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "start": "22:00",
            "end": "06:00",
            "price_per_kwh": 0.12,
        },
        {"name": "peak", "start": "11:00", "end": "14:00", "price_per_kwh": 0.31},
    ],
}


@pytest.mark.parametrize(
    ("local", "price", "period"),
    [
        (datetime(2024, 6, 3, 22, 0), 0.12, "night"),  # Monday 22:00: the stretch starts
        (datetime(2024, 6, 3, 23, 59), 0.12, "night"),
        (datetime(2024, 6, 4, 0, 0), 0.12, "night"),  # Tuesday 00:00: Monday's stretch
        (datetime(2024, 6, 4, 5, 59), 0.12, "night"),
        (datetime(2024, 6, 4, 6, 0), 0.19, "default"),
        (datetime(2024, 6, 4, 12, 0), 0.31, "peak"),
        (datetime(2024, 6, 8, 3, 0), 0.12, "night"),  # Saturday 03:00: Friday's stretch
        (datetime(2024, 6, 9, 3, 0), 0.19, "default"),  # Sunday 03:00: none started Saturday
        (datetime(2024, 6, 3, 3, 0), 0.19, "default"),  # Monday 03:00: none started Sunday
    ],
)
def test_a_night_period_prices_the_hours_it_covers(
    local: datetime, price: float, period: str
) -> None:
    assert TariffSpec.model_validate(NIGHT_TARIFF).price_at(local) == (price, period)


def test_a_period_that_starts_where_it_ends_is_refused() -> None:
    data = {
        **NIGHT_TARIFF,
        "periods": [{"name": "x", "start": "06:00", "end": "06:00", "price_per_kwh": 0.1}],
    }
    with pytest.raises(ValidationError, match="start and end are equal"):
        TariffSpec.model_validate(data)


def _night_cell(start: str) -> Scenario:
    scenario = load_scenario("normal-day")
    return scenario.model_copy(
        update={
            "start": datetime.fromisoformat(start),
            "tariff": TariffSpec.model_validate(NIGHT_TARIFF),
        }
    )


def test_the_simulated_cell_bills_the_night_at_the_night_price() -> None:
    plant = Plant(_night_cell("2024-06-03T23:00:00"))
    for _ in range(12):
        plant.step(5.0)
    truth = plant.ground_truth()
    assert set(truth.energy_cost_by_period) == {"night"}
    assert truth.energy_cost == pytest.approx(truth.site_import_kwh * 0.12)


def test_the_bound_prices_the_night_at_the_night_price() -> None:
    scenario = _night_cell("2024-06-03T23:00:00")
    times = [(i + 1) * 5.0 / 3600.0 for i in range(360)]  # 30 min of 5-s cycles
    series = {"site_meter.active_power_kw": [80.0] * len(times)}
    problem = foresight_problem(
        scenario, times, series, FlexibleSet(battery=None), initial_soc_pct=0.0
    )
    assert problem.import_price == (0.12, 0.12)


def test_the_energy_left_in_the_battery_is_credited_at_the_tariffs_cheapest_price() -> None:
    """The runs are compared with the stored energy credited at the off-peak price, what it
    costs to put back: on a tariff whose cheapest hours are a period (the night) and whose
    default is the shoulder, that is the night's 0.12, not the default's 0.19. 20 kWh left
    (50 -> 60 % of 200 kWh) are worth 2.40 EUR; the bound values a stored kWh the same."""
    scenario = load_scenario("solar-day").model_copy(
        update={"tariff": TariffSpec.model_validate(NIGHT_TARIFF)}
    )
    truth = GroundTruth(scenario="x", seed=1, start="2024-06-03T00:00:00").as_dict()
    truth.update(
        site_import_kwh=1000.0,
        energy_cost=190.0,
        demand_charge_prorated=50.0,
        billing_demand_kw=160.0,
        battery_initial_soc_pct=50.0,
        battery_final_soc_pct=60.0,
        seconds_soc_outside_limits=0.0,
    )
    figures = run_figures(RunResult("reactive", truth, hours=24.0), scenario)
    assert figures["battery_stored_kwh"] == pytest.approx(20.0)
    assert figures["net_cost_soc_adjusted"] == pytest.approx(240.0 - 20.0 * 0.12)
    times = [(i + 1) * 5.0 / 3600.0 for i in range(360)]
    series = {"site_meter.active_power_kw": [80.0] * len(times)}
    battery = BatteryAsPlanned(
        capacity_kwh=200.0,
        max_charge_kw=100.0,
        max_discharge_kw=100.0,
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
        reserve_pct=10.0,
        soc_max_pct=95.0,
    )
    problem = foresight_problem(
        scenario, times, series, FlexibleSet(battery=battery), initial_soc_pct=50.0
    )
    assert problem.battery is not None
    assert problem.battery.end_value_per_kwh == pytest.approx(0.12)

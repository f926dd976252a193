"""The perfect-foresight bound (controller/foresight.py): the run's sampled plant series become
the LP's steps (the inflexible load without what the bound plans), and the bound's figures are
the bill ground truth would count, on cases a hand calculation confirms."""

from __future__ import annotations

import pytest

from controller.foresight import (
    BatteryAsPlanned,
    FlexibleSet,
    foresight_problem,
    perfect_foresight,
    step_means,
)
from drivers.sim.scenario import load_scenario

pytest.importorskip("highspy")

BATTERY = BatteryAsPlanned(
    capacity_kwh=200.0,
    max_charge_kw=100.0,
    max_discharge_kw=100.0,
    charge_efficiency=0.95,
    discharge_efficiency=0.95,
    reserve_pct=10.0,
    soc_max_pct=95.0,
)


def _cycles(hours: float, cycle_s: float = 5.0) -> list[float]:
    return [(i + 1) * cycle_s / 3600.0 for i in range(round(hours * 3600 / cycle_s))]


def test_step_means_take_each_cycle_into_the_step_it_ends_in() -> None:
    times = _cycles(0.5, cycle_s=300.0)  # 6 samples of 5 min: 0:05 .. 0:30
    assert step_means(times, [1, 1, 1, 4, 4, 4], 900.0) == [1.0, 4.0]


def test_the_inflexible_load_is_the_meter_plus_pv_and_battery_less_the_planned_loads() -> None:
    scenario = load_scenario("solar-day")
    times = _cycles(0.5)
    n = len(times)
    series = {
        "site_meter.active_power_kw": [50.0] * n,
        "pv.power_kw": [30.0] * n,
        "battery.power_kw": [20.0] * n,  # discharging 20 kW into the site
        "ev-charger.power_kw": [11.0] * n,
        "wash-tank.heater_power_kw": [0.0] * n,
        "washer-1.state": [3.0] * n,
    }
    flexible = FlexibleSet(battery=BATTERY, ev_chargers=("ev-charger",), tanks=("wash-tank",))
    problem = foresight_problem(scenario, times, series, flexible, initial_soc_pct=50.0)
    assert problem.base_load_kw == pytest.approx((89.0, 89.0))  # 50 + 30 + 20 - 11
    assert problem.pv_kw == pytest.approx((30.0, 30.0))
    assert problem.tanks[0].draw_kw == pytest.approx((8.0, 8.0))  # the washer producing
    assert problem.battery is not None
    assert problem.battery.soc_kwh == pytest.approx(100.0)
    # 00:00-00:30 on a Monday is off-peak; a day's demand charge is 1/30 of the month's
    assert problem.import_price == (0.16, 0.16)
    assert problem.demand_charge_per_kw == pytest.approx(9.0 * 0.5 / 720)
    assert problem.evs == ()  # no car before 08:00


def test_a_flat_night_bound_spends_the_battery_only_where_the_demand_charge_pays() -> None:
    """100 kW for 2 h at 0.16 EUR/kWh, a day's demand charge 9 EUR x 2/720 = 0.025 EUR per kW.
    A stored kWh is worth 0.16 left in the battery; discharged evenly over the 2 h it gives
    0.95 kWh AC (0.152 EUR of import) and 0.475 kW off the peak (0.0119 EUR): 0.1639 > 0.16,
    so the bound empties the battery to its reserve evenly, 80 kWh stored = 76 kWh AC, 38 kW:
    import 62 kW, bill 62 x 2 x 0.16 = 19.84, demand 62 x 0.025 = 1.55, stored -80 kWh
    credited at 0.16 = -12.80: 34.19 EUR against the still battery's 34.50."""
    scenario = load_scenario("solar-day")
    times = _cycles(2.0)
    n = len(times)
    series = {
        "site_meter.active_power_kw": [100.0] * n,
        "pv.power_kw": [0.0] * n,
        "battery.power_kw": [0.0] * n,
    }
    bound = perfect_foresight(
        scenario, times, series, FlexibleSet(battery=BATTERY), initial_soc_pct=50.0
    )
    assert bound.steps == 8
    assert bound.energy_cost == pytest.approx(19.84, abs=1e-3)
    assert bound.demand_charge == pytest.approx(1.55, abs=1e-3)
    assert bound.peak_demand_kw == pytest.approx(62.0, abs=1e-3)
    assert bound.stored_kwh == pytest.approx(-80.0, abs=1e-3)
    assert bound.net_cost_soc_adjusted == pytest.approx(34.19, abs=1e-3)


def test_the_bound_charges_off_peak_for_the_peak_price() -> None:
    """07:00-09:00: 0.16 EUR/kWh until 08:00, 0.24 after; the battery at its reserve charges
    in the cheap hour and discharges in the dear one, as the spread pays the losses
    (0.24 x 0.95 x 0.95 = 0.217 > 0.16), so the bound's bill is below the still battery's."""
    scenario = load_scenario("solar-day").model_copy(
        update={"start": load_scenario("solar-day").start.replace(hour=7)}
    )
    times = _cycles(2.0)
    n = len(times)
    series = {
        "site_meter.active_power_kw": [100.0] * n,
        "pv.power_kw": [0.0] * n,
        "battery.power_kw": [0.0] * n,
    }
    bound = perfect_foresight(
        scenario, times, series, FlexibleSet(battery=BATTERY), initial_soc_pct=10.0
    )
    still = 100 * 0.16 + 100 * 0.24 + 100 * 9.0 * 2 / 720
    assert bound.net_cost_soc_adjusted < still - 1.0
    assert max(bound.series["battery_kw"][:4]) <= 1e-6  # charging (or still) in the cheap hour
    assert min(bound.series["battery_kw"][4:]) >= -1e-6  # discharging in the dear one

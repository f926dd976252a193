"""The LP's money terms beyond the energy price, each on a problem checked by hand: battery
degradation, the worth of energy left at the horizon's end, and billing windows longer than a
step, including a first window that began before the plan."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.scheduler.lp import solve, window_peak_kw
from controller.scheduler.problem import BatteryModel, Problem
from tests.scheduler.problems import battery, spread


def test_degradation_below_the_spread_still_cycles_and_is_paid() -> None:
    """The two-step spread (test_lp_known_answers) at 0.05 per kWh of AC throughput: a kWh
    delivered at step 1 costs 0.10/0.81 = 0.1235 of energy and 0.05 * (1/0.81 + 1) = 0.1117 of
    wear, 0.2352 < 0.30: still cycled. Wear 0.05 * (61.728 + 50) = 5.586; total 11.173 + 5.586
    = 16.759."""
    plan = solve(spread(battery(degradation_per_kwh=0.05)))
    assert plan.steps[1].battery_kw == pytest.approx(50.0, abs=1e-6)
    assert plan.cost["degradation"] == pytest.approx(0.05 * (50 / 0.81 + 50), abs=1e-6)
    assert plan.cost["total"] == pytest.approx(0.10 * (50 + 50 / 0.81) + 0.05 * (50 / 0.81 + 50),
                                               abs=1e-6)


def test_degradation_above_the_spread_leaves_the_battery_idle() -> None:
    """At 0.10 per kWh: 0.1235 + 0.10 * 2.2346 = 0.347 > 0.30: not worth cycling."""
    plan = solve(spread(battery(degradation_per_kwh=0.10)))
    assert [s.battery_kw for s in plan.steps] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert plan.cost["degradation"] == pytest.approx(0.0, abs=1e-6)


def one_step(bat: BatteryModel, price: float) -> Problem:
    return Problem(start_ms=0, step_minutes=60, base_load_kw=(0.0,), pv_kw=(0.0,),
                   import_price=(price,), export_price=(0.0,), battery=bat)


def test_energy_worth_more_at_the_end_than_now_is_stored() -> None:
    """One hour at 0.10, a stored kWh worth 0.20 at the end: an AC kWh bought stores 0.9 kWh
    worth 0.18 > 0.10, so the battery fills: 90 kWh stored from 100 kWh AC (its 100 kW)."""
    plan = solve(one_step(battery(end_value_per_kwh=0.20), 0.10))
    assert plan.steps[0].battery_kw == pytest.approx(-100.0, abs=1e-6)
    assert plan.steps[0].soc_kwh == pytest.approx(100.0, abs=1e-6)
    assert plan.cost["end_value"] == pytest.approx(20.0, abs=1e-6)
    assert plan.cost["objective"] == pytest.approx(10.0 - 20.0, abs=1e-6)


def test_energy_worth_less_at_the_end_than_its_price_is_not_bought() -> None:
    """A stored kWh worth 0.10 at the end: 0.9 * 0.10 = 0.09 < 0.10 per AC kWh."""
    plan = solve(one_step(battery(end_value_per_kwh=0.10), 0.10))
    assert plan.steps[0].battery_kw == pytest.approx(0.0, abs=1e-6)


def test_the_end_value_keeps_the_battery_from_being_dumped_at_the_horizons_end() -> None:
    """A full battery, 50 kW of load at 0.30: discharging a stored kWh saves 0.9 * 0.30 = 0.27;
    worth 0.40 at the end it is kept, worth nothing it is spent down to the reserve (90 kWh
    stored give 81 kWh AC: 50 kW for the hour needs 55.6 kWh stored, SoC 44.4)."""
    full = {"soc_kwh": 100.0}
    problem = Problem(start_ms=0, step_minutes=60, base_load_kw=(50.0,), pv_kw=(0.0,),
                      import_price=(0.30,), export_price=(0.0,),
                      battery=battery(**full, end_value_per_kwh=0.40))
    assert solve(problem).steps[0].battery_kw == pytest.approx(0.0, abs=1e-6)
    spent = solve(replace(problem, battery=battery(**full)))
    assert spent.steps[0].battery_kw == pytest.approx(50.0, abs=1e-6)
    assert spent.steps[0].soc_kwh == pytest.approx(100 - 50 / 0.9, abs=1e-6)


def test_an_end_soc_floor_is_kept_at_the_horizons_end() -> None:
    """The same full battery with end_soc_min_kwh 80: it may give only 20 kWh stored, 18 AC."""
    problem = Problem(start_ms=0, step_minutes=60, base_load_kw=(50.0,), pv_kw=(0.0,),
                      import_price=(0.30,), export_price=(0.0,),
                      battery=battery(soc_kwh=100.0, end_soc_min_kwh=80.0))
    plan = solve(problem)
    assert plan.steps[0].soc_kwh == pytest.approx(80.0, abs=1e-6)
    assert plan.steps[0].battery_kw == pytest.approx(18.0, abs=1e-6)


# 5-min steps, 15-min billing windows (3 steps). A re-plan 5 min into a window: 2 steps of that
# window are left, and 10 kWh were already imported in its first 5 min (120 kW).
WINDOWED_LOAD = (100.0, 160.0, 100.0, 100.0, 100.0, 100.0)


def windowed(**changes: object) -> Problem:
    values: dict[str, object] = {
        "start_ms": 0, "step_minutes": 5, "base_load_kw": WINDOWED_LOAD, "pv_kw": (0.0,) * 6,
        "import_price": (0.20,) * 6, "export_price": (0.0,) * 6,
        "demand_charge_per_kw": 1.0, "demand_window_steps": 3,
        "first_window_steps": 2, "first_window_import_kwh": 10.0,
    }
    values.update(changes)
    return Problem(**values)  # type: ignore[arg-type]


def test_the_billing_peak_averages_the_window_and_counts_what_was_metered_before_the_plan() -> None:
    """Windows: steps 0-1 (plus the 10 kWh before), 2-4, 5 (its first 5 min). Averages over
    15 min: (10 + (100 + 160) / 12) / 0.25 = 126.67 kW; 100 kW; (100 / 12) / 0.25 = 33.3 kW.
    The 160 kW step alone is not the peak."""
    problem = windowed()
    assert window_peak_kw(problem, WINDOWED_LOAD) == pytest.approx((10 + 260 / 12) / 0.25)
    plan = solve(problem)
    assert plan.peak_kw == pytest.approx((10 + 260 / 12) / 0.25, abs=1e-6)
    assert plan.cost["demand_charge"] == pytest.approx(126.6667, abs=1e-3)


def test_in_a_window_already_begun_the_battery_can_only_shave_the_steps_left() -> None:
    """A lossless battery of 20 kW: over the 2 steps left it takes 20 * 2/3 = 13.33 kW off the
    window's average, 126.67 -> 113.33 kW; the next window (100 kW) stays below that."""
    bat = battery(capacity_kwh=50.0, soc_kwh=40.0, soc_max_kwh=50.0, max_discharge_kw=20.0,
                  charge_efficiency=1.0, discharge_efficiency=1.0, end_value_per_kwh=0.20)
    plan = solve(windowed(battery=bat))
    assert [s.battery_kw for s in plan.steps[:2]] == pytest.approx([20.0, 20.0], abs=1e-6)
    assert plan.peak_kw == pytest.approx(126.6667 - 20 * 2 / 3, abs=1e-3)


def test_a_peak_already_above_every_window_makes_the_demand_charge_nothing() -> None:
    plan = solve(windowed(peak_already_kw=130.0))
    assert plan.peak_kw == pytest.approx(130.0)
    assert plan.cost["demand_charge"] == pytest.approx(0.0, abs=1e-9)

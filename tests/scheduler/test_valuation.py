"""What a 24-h plan puts on what lies beyond its horizon (controller/scheduler/valuation.py,
docs/rules.md "What the horizon does not see"): the billing period's demand charge shared by the
days left in it, on the increment above the peak already set; and the energy left in the battery
at the horizon's end. Known answers, each with its hand calculation."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.scheduler.lp import solve
from controller.scheduler.problem import Problem
from controller.scheduler.valuation import days_left_in_period, planned_demand_charge
from tests.scheduler.forecasts import cloud_forecast, payload
from tests.scheduler.problems import battery, spread
from tests.scheduler.test_planner_inputs import MINUTE_MS, MONDAY_MS, Site

UTC = ZoneInfo("UTC")
DAY_MS = 24 * 60 * MINUTE_MS
JUNE_3 = MONDAY_MS  # 2024-06-03 00:00 UTC
JUNE_30 = MONDAY_MS + 27 * DAY_MS


def test_the_days_left_in_the_billing_period() -> None:
    """The billing period is the calendar month in the tariff's zone, today counted: June has
    30 days, so 3 June leaves 28 (3..30) and 30 June 1; 1 Feb 2024 (a leap year) 29; 22:30 UTC
    on 30 June is already 1 July in Berlin (CEST, UTC+2): 31 days of July."""
    assert days_left_in_period(JUNE_3, UTC) == 28
    assert days_left_in_period(JUNE_3 + 10 * 60 * MINUTE_MS, UTC) == 28  # 10:00: still today
    assert days_left_in_period(JUNE_30 + DAY_MS - 1, UTC) == 1
    assert days_left_in_period(1_706_745_600_000, UTC) == 29  # 2024-02-01 00:00 UTC
    late = JUNE_30 + (22 * 60 + 30) * MINUTE_MS
    assert days_left_in_period(late, UTC) == 1
    assert days_left_in_period(late, ZoneInfo("Europe/Berlin")) == 31
    assert planned_demand_charge(9.0, JUNE_3, UTC) == pytest.approx(9.0 / 28)


def test_the_planner_prices_its_peak_at_the_month_shared_by_the_days_left(
    tmp_path: Path,
) -> None:
    """The cell's tariff charges 9 EUR per kW-month. A plan made on 3 June 07:00 prices a kW of
    its peak above the peak already set at 9 / 28 = 0.3214 EUR (the 28 days 3..30 June hold the
    month's peak); on the month's last day at the whole 9. The stored energy left at the
    horizon's end (`end_value_per_kwh: auto`) is worth at the least the horizon's cheapest
    import price (0.16) less the discharge's wear (0.01 per AC kWh), delivered at the discharge
    efficiency (0.95): 0.95 x (0.16 - 0.01) = 0.1425 EUR per stored kWh."""
    for day_ms, charge in ((JUNE_3, 9.0 / 28), (JUNE_30, 9.0)):
        site = Site(day_ms + 7 * 60 * MINUTE_MS, tmp_path)
        site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
        assert site.planner.offer_pv_forecast(payload(cloud_forecast(site.clock.wall_ms())), "t")
        problem = site.planner.request(site.clock.wall_ms()).problem
        assert problem.demand_charge_per_kw == pytest.approx(charge)
        assert problem.battery is not None
        assert problem.battery.end_value_per_kwh == pytest.approx(0.95 * (0.16 - 0.01))


def break_then_block(demand_charge_per_kw: float, peak_already_kw: float = 0.0) -> Problem:
    """1-h steps at the peak price 0.24: a production break (90 kW) then a 3-h block (190 kW);
    the battery empty (at its 10 kWh reserve), 90 % each way, 0.05 EUR of wear per AC kWh."""
    return Problem(
        start_ms=0,
        step_minutes=60,
        base_load_kw=(90, 190, 190, 190),
        pv_kw=(0, 0, 0, 0),
        import_price=(0.24,) * 4,
        export_price=(0,) * 4,
        demand_charge_per_kw=demand_charge_per_kw,
        peak_already_kw=peak_already_kw,
        battery=battery(capacity_kwh=200.0, soc_max_kwh=200.0, degradation_per_kwh=0.05),
    )


def test_no_recharge_at_the_peak_price_for_a_peak_the_month_does_not_pay_back() -> None:
    """Shaving the block by 1 kW for its 3 h delivers 3 kWh, charged as 3 / 0.81 = 3.7037 kWh
    in the break at the same 0.24: losses 0.24 x 0.7037 = 0.16889, wear 0.05 x (3.7037 + 3) =
    0.33519, so 0.50408 EUR a kW.

    3 June (9 / 28 = 0.32143 EUR a kW): less than 0.50408, the battery stays idle and the peak is
    the block's 190 kW (the old valuation, the whole 9 EUR, recharged in every break).
    30 June, no peak set yet (9 EUR a kW, the day's peak is the month's): worth it, the break
    charges until it reaches the block's level, 90 + 3x / 0.81 = 190 - x, x = 100 / (1 + 3 /
    0.81) = 21.260 kW: the peak 168.740 kW. 30 June with 180 kW already set this month: shaving
    below 180 earns nothing, so the plan shaves the 10 kW above it and stops at 180."""
    early = solve(break_then_block(planned_demand_charge(9.0, JUNE_3, UTC)))
    assert all(step.battery_kw == pytest.approx(0.0, abs=1e-6) for step in early.steps)
    assert early.peak_kw == pytest.approx(190.0, abs=1e-6)
    assert early.cost["demand_charge"] == pytest.approx(190 * 9 / 28, abs=1e-6)

    last = solve(break_then_block(planned_demand_charge(9.0, JUNE_30, UTC)))
    shaved = 100 / (1 + 3 / 0.81)
    assert shaved == pytest.approx(21.260, abs=1e-3)
    assert last.peak_kw == pytest.approx(190 - shaved, abs=1e-6)
    assert last.steps[0].battery_kw == pytest.approx(-3 * shaved / 0.81, abs=1e-6)
    assert [s.battery_kw for s in last.steps[1:]] == pytest.approx([shaved] * 3, abs=1e-6)

    ratchet = solve(break_then_block(planned_demand_charge(9.0, JUNE_30, UTC), 180.0))
    assert ratchet.peak_kw == pytest.approx(180.0, abs=1e-6)
    assert [s.battery_kw for s in ratchet.steps[1:]] == pytest.approx([10.0] * 3, abs=1e-6)
    assert ratchet.cost["demand_charge"] == pytest.approx(0.0, abs=1e-6)


def test_the_end_value_keeps_the_battery_from_emptying_because_the_horizon_ends() -> None:
    """Two 1-h steps at the night price 0.16, 50 kW of load, the battery at 60 kWh (reserve 10),
    90 % each way, 0.01 of wear per AC kWh. A stored kWh spent now saves 0.9 x 0.16 = 0.144 and
    costs 0.9 x 0.01 = 0.009 of wear: 0.135 net. Worth nothing at the end (value 0), the plan
    spends the 50 kWh above the reserve (45 kWh AC, 45 kW in the first step); at the auto value
    0.9 x (0.16 - 0.01) = 0.135 it is no better than keeping it, and the plan keeps it."""

    def plan(end_value: float) -> list[float]:
        problem = spread(
            battery(soc_kwh=60.0, degradation_per_kwh=0.01, end_value_per_kwh=end_value),
            import_price=(0.16, 0.16),
        )
        return [step.soc_kwh for step in solve(problem).steps]

    assert plan(0.0)[-1] == pytest.approx(10.0, abs=1e-6)
    assert plan(0.9 * (0.16 - 0.01)) == pytest.approx([60.0, 60.0], abs=1e-6)

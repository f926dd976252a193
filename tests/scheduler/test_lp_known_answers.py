"""The scheduler's LP on problems small enough to solve by hand: each docstring carries the hand
calculation, the test checks the solver against it (docs/rules.md, "Scheduler: the model", works
the first one through)."""

from __future__ import annotations

import pytest

from controller.scheduler.lp import solve
from controller.scheduler.problem import (
    EvSession,
    Problem,
    SchedulerError,
    ThermalTank,
)
from tests.scheduler.problems import battery, spread


def test_a_price_spread_charges_at_the_cheap_step_and_discharges_at_the_dear_one() -> None:
    """Two 1-hour steps, 50 kW of load in each, 0.10 then 0.30 per kWh, a battery at its 10 kWh
    reserve, 90 % efficient each way (AC to stored, stored to AC).

    Covering step 1's 50 kWh from the battery takes 50 / 0.9 = 55.556 kWh stored, which takes
    55.556 / 0.9 = 61.728 kWh of AC charge in step 0 (a stored kWh costs 0.10 / 0.81 = 0.1235,
    below 0.30: worth it). Step 0 imports 50 + 61.728 = 111.728 kWh at 0.10 = 11.1728; step 1
    imports nothing. Without the battery: 5.00 + 15.00 = 20.00. The SoC ends at the reserve.
    """
    plan = solve(spread())
    first, second = plan.steps
    assert first.battery_kw == pytest.approx(-50 / 0.81, abs=1e-6)  # charging
    assert second.battery_kw == pytest.approx(50.0, abs=1e-6)
    assert first.import_kw == pytest.approx(50 + 50 / 0.81, abs=1e-6)
    assert second.import_kw == pytest.approx(0.0, abs=1e-6)
    assert first.soc_kwh == pytest.approx(10 + 50 / 0.9, abs=1e-6)
    assert second.soc_kwh == pytest.approx(10.0, abs=1e-6)
    assert plan.cost["total"] == pytest.approx(0.10 * (50 + 50 / 0.81), abs=1e-6)  # 11.1728
    assert plan.status == "optimal"
    assert second.start_ms == 3_600_000


def test_a_spread_smaller_than_the_losses_leaves_the_battery_idle() -> None:
    """0.10 then 0.12: a stored kWh costs 0.10 / 0.81 = 0.1235 > 0.12, so cycling loses money;
    the plan buys each step's 50 kWh at its price: 5.00 + 6.00 = 11.00."""
    plan = solve(spread(import_price=(0.10, 0.12)))
    assert [step.battery_kw for step in plan.steps] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert plan.cost["total"] == pytest.approx(11.0, abs=1e-6)


# The demand ratchet: 15-min steps, a flat 0.20 per kWh, a window of one step, a demand charge
# of 0.03 per kW (this horizon's share of the month's). Load 50, 50, 200, 190, 180, 50 kW.
# Lowering the peak by 1 kW below level P costs the losses of moving 1 kW for 15 min through the
# battery in every step above P: n(P) * 0.25 h * 0.20 * (1/0.81 - 1) = n * 0.01173 per kW.
# n = 1 (P in 190..200) and n = 2 (180..190) cost less than 0.03; n = 3 (below 180) costs 0.0352:
# the optimum stops at P = 180 kW, where the demand charge and the energy price balance.
RATCHET_LOAD = (50.0, 50.0, 200.0, 190.0, 180.0, 50.0)


def ratchet(peak_already_kw: float) -> Problem:
    return Problem(
        start_ms=0,
        step_minutes=15,
        base_load_kw=RATCHET_LOAD,
        pv_kw=(0.0,) * 6,
        import_price=(0.20,) * 6,
        export_price=(0.0,) * 6,
        demand_charge_per_kw=0.03,
        peak_already_kw=peak_already_kw,
        battery=battery(capacity_kwh=200.0, soc_max_kwh=200.0),
    )


def test_a_peak_already_set_above_the_forecast_is_not_shaved() -> None:
    """Peak already 250 kW, forecast 200: any shaving earns nothing, and the battery's losses
    would cost: it stays idle; the demand charge adds nothing (cost 0.05 * 720 = 36.00)."""
    plan = solve(ratchet(250.0))
    assert all(step.battery_kw == pytest.approx(0.0, abs=1e-6) for step in plan.steps)
    assert plan.peak_kw == pytest.approx(250.0)
    assert plan.cost["demand_charge"] == pytest.approx(0.0, abs=1e-9)
    assert plan.cost["total"] == pytest.approx(0.05 * sum(RATCHET_LOAD), abs=1e-6)


def test_with_no_peak_set_it_shaves_to_where_demand_charge_and_energy_price_balance() -> None:
    """Peak already 0: shaved to 180 kW (see above). Energy: 0.05 per kW-step * (720 + the
    losses of 30 kW-steps moved: 30 * (1/0.81 - 1) = 7.037) = 36.352; demand 0.03 * 180 = 5.40;
    total 41.752 (unshaved: 36.00 + 6.00 = 42.00)."""
    plan = solve(ratchet(0.0))
    imports = [step.import_kw for step in plan.steps]
    assert max(imports) == pytest.approx(180.0, abs=1e-6)
    assert plan.peak_kw == pytest.approx(180.0, abs=1e-6)
    assert [s.battery_kw for s in plan.steps][2:5] == pytest.approx([20.0, 10.0, 0.0], abs=1e-6)
    assert plan.cost["demand_charge"] == pytest.approx(5.40, abs=1e-6)
    assert plan.cost["total"] == pytest.approx(0.05 * (720 + 30 * (1 / 0.81 - 1)) + 5.40, abs=1e-6)


def test_shaving_stops_at_the_peak_already_set_when_that_is_above_the_balance_point() -> None:
    """Peak already 185 kW: below it nothing is earned, so the plan shaves only 200 -> 185 and
    190 -> 185 (20 kW-steps) and pays no demand charge."""
    plan = solve(ratchet(185.0))
    assert max(step.import_kw for step in plan.steps) == pytest.approx(185.0, abs=1e-6)
    assert [s.battery_kw for s in plan.steps][2:5] == pytest.approx([15.0, 5.0, 0.0], abs=1e-6)
    assert plan.cost["demand_charge"] == pytest.approx(0.0, abs=1e-6)


def ev_problem(energy_kwh: float) -> Problem:
    return Problem(
        start_ms=0,
        step_minutes=60,
        base_load_kw=(0.0,) * 4,
        pv_kw=(0.0,) * 4,
        import_price=(0.30, 0.10, 0.20, 0.05),
        export_price=(0.0,) * 4,
        evs=(
            EvSession(name="car", max_kw=10.0, first_step=0, depart_step=3, energy_kwh=energy_kwh),
        ),
    )


def test_an_ev_charges_at_the_cheapest_steps_before_its_departure() -> None:
    """15 kWh by step 3 at most 10 kW: 10 kWh in step 1 (0.10), 5 kWh in step 2 (0.20); step 3
    is cheaper (0.05) but the car has left. Cost 1.00 + 1.00 = 2.00."""
    plan = solve(ev_problem(15.0))
    assert [step.ev_kw["car"] for step in plan.steps] == pytest.approx([0, 10, 5, 0], abs=1e-6)
    assert plan.cost["total"] == pytest.approx(2.0, abs=1e-6)


def test_an_ev_deadline_that_cannot_be_met_is_refused_with_the_car_named() -> None:
    """35 kWh in 3 steps at 10 kW (30 kWh at most) cannot be delivered."""
    with pytest.raises(SchedulerError, match=r"EV 'car' cannot get 35 kWh by step 3.*30\.00 kWh"):
        solve(ev_problem(35.0))


def test_an_ev_leaving_after_the_horizon_gets_in_it_only_what_it_cannot_get_later() -> None:
    """Departure at step 6 of a 4-step horizon, 10 kW: steps 4 and 5 (after the horizon) can give
    20 kWh of the 25, so 5 kWh must come within it, at its cheapest step (3, 0.05): 0.25."""
    problem = Problem(
        start_ms=0,
        step_minutes=60,
        base_load_kw=(0.0,) * 4,
        pv_kw=(0.0,) * 4,
        import_price=(0.30, 0.10, 0.20, 0.05),
        export_price=(0.0,) * 4,
        evs=(EvSession(name="car", max_kw=10.0, first_step=0, depart_step=6, energy_kwh=25.0),),
    )
    plan = solve(problem)
    assert [step.ev_kw["car"] for step in plan.steps] == pytest.approx([0, 0, 0, 5], abs=1e-6)


def tank_problem(*, on_off: bool) -> Problem:
    return Problem(
        start_ms=0,
        step_minutes=60,
        base_load_kw=(0.0,) * 4,
        pv_kw=(0.0,) * 4,
        import_price=(0.10, 0.30, 0.10, 0.30),
        export_price=(0.0,) * 4,
        tanks=(
            ThermalTank(
                name="wash",
                heater_kw=10.0,
                temp_c=45.0,
                min_c=40.0,
                max_c=50.0,
                heat_capacity_kwh_per_k=1.0,
                loss_kw_per_k=0.0,
                ambient_c=20.0,
                draw_kw=(5.0, 5.0, 5.0, 5.0),
                on_off=on_off,
            ),
        ),
    )


def test_a_tank_heats_in_the_cheap_steps_and_stays_in_its_band() -> None:
    """1 kWh/K, no losses, 5 kW drawn every hour from 45 C: 20 kWh leave, the tank may end at
    40 C, so 15 kWh of heat, all in the cheap steps 0 and 2 (0.10): cost 1.50. Step 0 heats 5-10
    kWh (not above 50 C, not below 40 C at step 1); step 2 the rest, ending at 40 C."""
    plan = solve(tank_problem(on_off=False))
    heat = [step.tank_kw["wash"] for step in plan.steps]
    assert heat[1] == pytest.approx(0.0, abs=1e-6)
    assert heat[3] == pytest.approx(0.0, abs=1e-6)
    assert sum(heat) == pytest.approx(15.0, abs=1e-6)
    temps = [step.tank_c["wash"] for step in plan.steps]
    assert all(40.0 - 1e-6 <= temp <= 50.0 + 1e-6 for temp in temps)
    assert temps[-1] == pytest.approx(40.0, abs=1e-6)
    assert plan.cost["total"] == pytest.approx(1.5, abs=1e-6)
    assert not plan.mip


@pytest.mark.parametrize("mode", ["exact", "round"])
def test_an_on_off_heater_is_full_on_or_off_for_whole_steps(mode: str) -> None:
    """The same tank with a 10 kW on/off heater: 15 kWh is not a whole number of 10 kWh steps,
    so it runs two cheap steps (0 and 2): 50, 45, 50, 45 C, cost 2.00. The exact MIP finds it,
    and so does rounding the LP's schedule (its bound: the LP's 1.50)."""
    plan = solve(tank_problem(on_off=True), on_off=mode)
    assert [step.tank_kw["wash"] for step in plan.steps] == [10.0, 0.0, 10.0, 0.0]
    assert [step.tank_c["wash"] for step in plan.steps] == pytest.approx([50, 45, 50, 45], abs=1e-6)
    assert plan.cost["total"] == pytest.approx(2.0, abs=1e-6)
    assert plan.mip
    if mode == "round":
        assert plan.cost["lower_bound"] == pytest.approx(1.5, abs=1e-4)


def test_a_tank_whose_draw_outruns_its_heater_is_refused_with_the_tank_named() -> None:
    """45 C + 10 kWh - 16 kWh over 1 kWh/K: 39 C after step 0, below the 40 C floor."""
    problem = Problem(
        start_ms=0,
        step_minutes=60,
        base_load_kw=(0.0,) * 2,
        pv_kw=(0.0,) * 2,
        import_price=(0.1, 0.1),
        export_price=(0.0, 0.0),
        tanks=(
            ThermalTank(
                name="wash",
                heater_kw=10.0,
                temp_c=45.0,
                min_c=40.0,
                max_c=50.0,
                heat_capacity_kwh_per_k=1.0,
                loss_kw_per_k=0.0,
                ambient_c=20.0,
                draw_kw=(16.0, 16.0),
            ),
        ),
    )
    with pytest.raises(SchedulerError, match=r"tank 'wash'.*falls to 39\.00 C at step 0"):
        solve(problem)

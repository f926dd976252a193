"""What the scheduler refuses, and that the refusal names the field: a problem arrives from
forecasts, a config and (in the worker) a pipe, so NaN, infinity, negative energies and
forecasts of the wrong length must stop at construction, never reach the solver."""

from __future__ import annotations

import math
from typing import Any

import pytest

from controller.scheduler.lp import solve
from controller.scheduler.problem import (
    BatteryModel,
    EvSession,
    Plan,
    Problem,
    SchedulerError,
    ThermalTank,
)

BATTERY: dict[str, Any] = {
    "capacity_kwh": 200.0,
    "soc_kwh": 100.0,
    "soc_min_kwh": 20.0,
    "soc_max_kwh": 190.0,
    "max_charge_kw": 100.0,
    "max_discharge_kw": 100.0,
    "charge_efficiency": 0.95,
    "discharge_efficiency": 0.95,
}
TANK: dict[str, Any] = {
    "name": "wash",
    "heater_kw": 10.0,
    "temp_c": 60.0,
    "min_c": 55.0,
    "max_c": 65.0,
    "heat_capacity_kwh_per_k": 1.0,
    "loss_kw_per_k": 0.05,
    "ambient_c": 20.0,
    "draw_kw": (1.0, 1.0),
}
PROBLEM: dict[str, Any] = {
    "start_ms": 0,
    "step_minutes": 15,
    "base_load_kw": (100.0, 120.0),
    "pv_kw": (0.0, 10.0),
    "import_price": (0.2, 0.3),
    "export_price": (0.05, 0.05),
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"import_price": (0.2, math.nan)}, r"import_price\[1\] must be a number, got NaN"),
        ({"base_load_kw": (100.0, math.inf)}, r"base_load_kw\[1\] must be finite"),
        ({"pv_kw": (-1.0, 0.0)}, r"pv_kw\[0\] must be >= 0, got -1"),
        ({"pv_kw": (0.0,)}, r"pv_kw has 1 steps, base_load_kw has 2"),
        ({"export_price": (0.05, 0.05, 0.05)}, r"export_price has 3 steps"),
        (
            {"base_load_kw": (), "pv_kw": (), "import_price": (), "export_price": ()},
            r"base_load_kw is empty",
        ),
        ({"import_price": (0.2, "0.3")}, r"import_price\[1\] must be a number, got '0.3'"),
        ({"import_price": (0.2, True)}, r"import_price\[1\] must be a number, got True"),
        ({"export_price": (0.05, 0.4)}, r"export_price\[1\] 0.4 is above import_price\[1\] 0.3"),
        ({"step_minutes": 0}, r"step_minutes must be > 0"),
        ({"start_ms": -1}, r"start_ms must be >= 0"),
        ({"demand_window_steps": 0}, r"demand_window_steps must be >= 1"),
        ({"demand_window_steps": 3, "first_window_steps": 4}, r"first_window_steps 4 is more"),
        ({"demand_charge_per_kw": -9.0}, r"demand_charge_per_kw must be >= 0"),
        ({"peak_already_kw": math.nan}, r"peak_already_kw must be a number, got NaN"),
        ({"grid_import_max_kw": -1.0}, r"grid_import_max_kw must be >= 0"),
        ({"grid_export_max_kw": math.nan}, r"grid_export_max_kw must be a number, got NaN"),
        (
            {"tanks": (ThermalTank(**{**TANK, "draw_kw": (1.0,)}),)},
            r"tanks\['wash'\].draw_kw has 1 steps, base_load_kw has 2",
        ),
        (
            {"tanks": (ThermalTank(**TANK), ThermalTank(**TANK))},
            r"tanks: the name 'wash' is used twice",
        ),
    ],
)
def test_a_bad_problem_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SchedulerError, match=message):
        Problem(**{**PROBLEM, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"capacity_kwh": 0.0}, r"battery.capacity_kwh must be > 0"),
        ({"soc_kwh": math.nan}, r"battery.soc_kwh must be a number, got NaN"),
        ({"soc_kwh": 201.0}, r"battery.soc_kwh 201 is above capacity_kwh 200"),
        ({"soc_min_kwh": 195.0}, r"soc_min_kwh <= soc_max_kwh <= capacity_kwh must hold"),
        ({"charge_efficiency": 0.0}, r"battery.charge_efficiency must be > 0"),
        ({"discharge_efficiency": 1.2}, r"battery.discharge_efficiency must be in \(0, 1\]"),
        ({"max_charge_kw": -5.0}, r"battery.max_charge_kw must be >= 0"),
        ({"degradation_per_kwh": math.inf}, r"battery.degradation_per_kwh must be finite"),
        ({"end_soc_min_kwh": 195.0}, r"battery.end_soc_min_kwh 195 is above soc_max_kwh 190"),
    ],
)
def test_a_bad_battery_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SchedulerError, match=message):
        BatteryModel(**{**BATTERY, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"energy_kwh": -1.0}, r"evs\['car'\].energy_kwh must be >= 0"),
        ({"first_step": 4, "depart_step": 2}, r"evs\['car'\].depart_step 2 is before first_step 4"),
        ({"first_step": 1.5}, r"evs\['car'\].first_step must be a whole number"),
        ({"name": ""}, r"evs\[\].name must be a non-empty name"),
    ],
)
def test_a_bad_ev_session_is_refused_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    values = {"name": "car", "max_kw": 11.0, "first_step": 0, "depart_step": 8, "energy_kwh": 20.0}
    with pytest.raises(SchedulerError, match=message):
        EvSession(**{**values, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_c": 70.0}, r"tanks\['wash'\].min_c 70 must be below max_c 65"),
        ({"heat_capacity_kwh_per_k": 0.0}, r"heat_capacity_kwh_per_k must be > 0"),
        ({"draw_kw": (1.0, -2.0)}, r"tanks\['wash'\].draw_kw\[1\] must be >= 0"),
        ({"temp_c": math.inf}, r"tanks\['wash'\].temp_c must be finite"),
        ({"on_off": 1}, r"tanks\['wash'\].on_off must be true or false"),
    ],
)
def test_a_bad_tank_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SchedulerError, match=message):
        ThermalTank(**{**TANK, **changes})


def test_a_load_beyond_the_grid_limit_and_the_battery_is_refused_naming_the_step() -> None:
    problem = Problem(
        **{
            **PROBLEM,
            "grid_import_max_kw": 50.0,
            "battery": BatteryModel(**{**BATTERY, "max_discharge_kw": 40.0}),
        }
    )
    with pytest.raises(
        SchedulerError,
        match=r"step 0: the base load 100 kW .* above "
        r"grid_import_max_kw 50",
    ):
        solve(problem)


def test_an_infeasible_combination_says_what_could_not_be_kept() -> None:
    """Each limit alone is fine, together not: the grid gives 60 kW, the base load takes 50,
    the EV needs 20 kW for its 5 kWh in one 15-min step."""
    problem = Problem(
        **{
            **PROBLEM,
            "base_load_kw": (50.0, 50.0),
            "pv_kw": (0.0, 0.0),
            "grid_import_max_kw": 60.0,
            "evs": (
                EvSession(name="car", max_kw=22.0, first_step=0, depart_step=1, energy_kwh=5.0),
            ),
        }
    )
    with pytest.raises(
        SchedulerError,
        match=r"infeasible: no plan keeps the EV energy by "
        r"departure \(car\).*grid import/export limits",
    ):
        solve(problem)


def test_a_time_limit_that_is_not_a_positive_number_is_refused() -> None:
    with pytest.raises(SchedulerError, match="time_limit_s must be a positive number"):
        solve(Problem(**PROBLEM), time_limit_s=math.nan)
    with pytest.raises(SchedulerError, match="on_off must be one of round, exact"):
        solve(Problem(**PROBLEM), on_off="guess")


def test_a_problem_survives_the_round_trip_through_json_and_a_bad_one_is_named() -> None:
    problem = Problem(
        **{
            **PROBLEM,
            "battery": BatteryModel(**BATTERY),
            "tanks": (ThermalTank(**TANK),),
            "evs": (
                EvSession(name="car", max_kw=11.0, first_step=0, depart_step=2, energy_kwh=1.0),
            ),
        }
    )
    data = problem.as_json()
    assert data["grid_import_max_kw"] is None  # JSON has no infinity
    assert Problem.from_json(data) == problem
    with pytest.raises(SchedulerError, match=r"battery: unknown key\(s\) soc"):
        Problem.from_json({**data, "battery": {**data["battery"], "soc": 1}})
    with pytest.raises(SchedulerError, match=r"tanks\[0\]: missing key\(s\) draw_kw"):
        Problem.from_json(
            {**data, "tanks": [{k: v for k, v in data["tanks"][0].items() if k != "draw_kw"}]}
        )
    with pytest.raises(SchedulerError, match=r"problem: missing key\(s\) pv_kw"):
        Problem.from_json({k: v for k, v in data.items() if k != "pv_kw"})
    plan = solve(problem)
    assert Plan.from_json(plan.as_json()) == plan
    bad = plan.as_json()
    bad["steps"][1]["import_kw"] = "a lot"
    with pytest.raises(SchedulerError, match=r"plan.steps\[1\].import_kw must be a number"):
        Plan.from_json(bad)


def test_a_solve_past_its_time_limit_is_an_error_never_a_half_plan() -> None:
    """A day at 15-min steps with an on/off heater as an exact MIP (seconds of branch and bound)
    given a millisecond: no plan, a SchedulerError that says so."""
    import numpy as np

    from bench.scheduler import problem_at, solar_day

    rng = np.random.default_rng(1)
    state = {"soc_kwh": 100.0, "tank_c": 58.5, "ev_kwh": 26.4, "peak_kw": 0.0}
    problem = problem_at(solar_day(15.0, rng), 0, rng, state, on_off=True)
    with pytest.raises(SchedulerError, match=r"no optimal plan within time_limit_s 0.001"):
        solve(problem, time_limit_s=0.001, on_off="exact")

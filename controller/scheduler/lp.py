"""One re-plan: the `Problem` as a linear program (mixed-integer only for on/off heaters), solved
by HiGHS, read back as a `Plan`.

The model is built from numpy arrays and handed to HiGHS in one call (a 288-step problem has a few
thousand coefficients: one Python call each would cost more than the solve). Every variable and
constraint, with units: docs/rules.md, "Scheduler: the model".
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt

from controller.scheduler.problem import (
    BatteryModel,
    EvSession,
    Plan,
    PlanStep,
    Problem,
    SchedulerError,
    ThermalTank,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Tie-breakers (per kWh): among plans of equal cost, prefer the one that cycles the battery
# least, exports rather than curtails, and does not import and export at once. Far below any
# tariff's resolution, above HiGHS's dual feasibility tolerance (1e-7) even at 5-min steps
# (1e-5 x 1/12 h), or the solver would not see them; the reported costs are computed from the
# plan's powers without them.
_TIE_KWH = 1e-5
# Recovery bounds (a SoC or a tank outside its band now) are the fastest trajectory back: that
# leaves the LP no slack at all, so they are widened by this much (kWh or K).
_SLACK = 1e-6
_INF = highspy.kHighsInf


@dataclass
class _Model:
    """Column bounds and costs, and the constraint matrix as (row, column, value) triplets."""

    cost: list[FloatArray] = field(default_factory=list)
    lower: list[FloatArray] = field(default_factory=list)
    upper: list[FloatArray] = field(default_factory=list)
    integer: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    columns: int = 0
    rows: int = 0
    row_lower: list[FloatArray] = field(default_factory=list)
    row_upper: list[FloatArray] = field(default_factory=list)
    entry_row: list[IntArray] = field(default_factory=list)
    entry_col: list[IntArray] = field(default_factory=list)
    entry_value: list[FloatArray] = field(default_factory=list)

    def add_columns(
        self,
        cost: FloatArray,
        lower: FloatArray | float,
        upper: FloatArray | float,
        *,
        integer: bool = False,
    ) -> IntArray:
        n = len(cost)
        self.cost.append(np.asarray(cost, dtype=np.float64))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), n))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), n))
        self.integer.append(np.full(n, integer))
        first = self.columns
        self.columns += n
        return np.arange(first, first + n, dtype=np.int64)

    def add_rows(self, lower: FloatArray, upper: FloatArray) -> IntArray:
        n = len(lower)
        self.row_lower.append(np.asarray(lower, dtype=np.float64))
        self.row_upper.append(np.asarray(upper, dtype=np.float64))
        first = self.rows
        self.rows += n
        return np.arange(first, first + n, dtype=np.int64)

    def add_entries(self, rows: IntArray, cols: IntArray, values: FloatArray | float) -> None:
        self.entry_row.append(rows)
        self.entry_col.append(cols)
        self.entry_value.append(np.broadcast_to(np.asarray(values, dtype=np.float64), len(rows)))

    def pass_to(self, highs: highspy.Highs) -> bool:
        """Hand the model to HiGHS row-wise in one call; True when it has integer columns."""
        values = _flushed(np.concatenate(self.entry_value))
        kept = values != 0.0
        rows = np.concatenate(self.entry_row)[kept]
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=self.rows)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int32)
        integer = np.concatenate(self.integer)
        mip = bool(integer.any())
        status = highs.passModel(
            self.columns,
            self.rows,
            len(rows),
            int(highspy.MatrixFormat.kRowwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            _flushed(np.concatenate(self.cost)),
            _flushed(np.concatenate(self.lower)),
            _flushed(np.concatenate(self.upper)),
            _flushed(np.concatenate(self.row_lower)),
            _flushed(np.concatenate(self.row_upper)),
            starts,
            np.concatenate(self.entry_col)[kept][order].astype(np.int32),
            values[kept][order],
            integer.astype(np.int32),
        )
        if status != highspy.HighsStatus.kOk:
            raise SchedulerError(f"the solver refused the model ({status.name})")
        return mip


def _flushed(values: FloatArray) -> FloatArray:
    """Magnitudes below 1e-12 (of a kW, kWh, K or currency unit: nothing physical) as 0.
    HiGHS 1.16's MIP crashed the process (SIGSEGV) on a model with subnormal numbers in it
    (prices of 1e-308, a reserve of 5e-323 kWh: tests/scheduler/test_lp_properties.py)."""
    return np.where(np.abs(values) < 1e-12, 0.0, values)


@dataclass
class _BatteryColumns:
    charge: IntArray
    discharge: IntArray
    soc: IntArray


@dataclass
class _TankColumns:
    heat: IntArray  # kW, or on/off (0/1) for an on_off heater
    temp: IntArray
    kw_per_unit: float  # 1 for kW columns; heater_kw for on/off ones


@dataclass
class _Columns:
    balance: IntArray  # the power balance rows, one a step
    imports: IntArray
    exports: IntArray
    curtail: IntArray
    peak: IntArray | None
    battery: _BatteryColumns | None
    evs: dict[str, IntArray]
    tanks: dict[str, _TankColumns]


ON_OFF_MODES = ("round", "exact")


def solve(problem: Problem, *, time_limit_s: float = 1.0, on_off: str = "round") -> Plan:
    """The cheapest plan for `problem`; SchedulerError when there is none (infeasible input,
    time-out, solver failure), with what is wrong in the message.

    On/off heaters: `"exact"` solves the mixed-integer program (HiGHS's branch and bound: no
    optimum within 30 s at 96 steps, bench/README.md); `"round"` (the default) solves the LP
    with the heaters continuous, schedules each in whole steps keeping its band (at that LP's
    marginal prices; rounding its shares too where that raised the peak), and solves the LP
    again with them fixed: two to four LPs. Its plan's `cost["lower_bound"]` is the relaxed
    LP's cost, below every on/off plan's, so `objective - lower_bound` bounds what whole steps
    cost. When no schedule keeps a band, the exact MIP runs in the time left."""
    if not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise SchedulerError(
            f"time_limit_s must be a positive number of seconds, got {time_limit_s!r}"
        )
    if on_off not in ON_OFF_MODES:
        raise SchedulerError(f"on_off must be one of {', '.join(ON_OFF_MODES)}, got {on_off!r}")
    deadline = time.perf_counter() + time_limit_s
    if on_off == "round" and any(tank.on_off for tank in problem.tanks):
        return _solve_rounded(problem, deadline, time_limit_s)
    return _solve_exact(problem, deadline, time_limit_s, 0.0, 0.0)


def _solve_exact(
    problem: Problem, deadline: float, time_limit_s: float, build_ms: float, solve_ms: float
) -> Plan:
    """The LP, or the MIP when there are on/off heaters; a MIP's heaters are then fixed and
    the LP solved again: branch and bound stops within its gap (1e-4), which leaves room for
    waste the tie-breakers would remove (the battery charging and discharging in one step)."""
    run = _run(problem, deadline, time_limit_s, integer=True)
    build_ms += run.build_ms
    solve_ms += run.solve_ms
    if run.mip:
        heaters = {
            name: np.round(run.values[tank.heat])
            for name, tank in run.columns.tanks.items()
            if tank.kw_per_unit != 1.0
        }
        try:
            fixed = _run(problem, deadline, time_limit_s, integer=False, fixed=heaters)
        except SchedulerError:
            pass  # out of time: the MIP's own plan, valid, within its gap
        else:
            build_ms += fixed.build_ms
            solve_ms += fixed.solve_ms
            run = fixed
    on_off = any(tank.on_off for tank in problem.tanks)
    return _plan(problem, run.columns, run.values, mip=on_off, build_ms=build_ms, solve_ms=solve_ms)


def _solve_rounded(problem: Problem, deadline: float, time_limit_s: float) -> Plan:
    """On/off heaters in whole steps from the relaxed LP (solve's `on_off="round"`)."""
    relaxed = _run(problem, deadline, time_limit_s, integer=False)
    spent = [relaxed.build_ms, relaxed.solve_ms]
    relaxed_peak = window_peak_kw(problem, relaxed.values[relaxed.columns.imports])

    def fixed_at(heaters: dict[str, FloatArray] | None) -> tuple[float, _Run] | None:
        if heaters is None:
            return None
        try:
            fixed = _run(problem, deadline, time_limit_s, integer=False, fixed=heaters)
        except SchedulerError:
            return None  # a fixed heater broke another limit (the grid's)
        spent[0] += fixed.build_ms
        spent[1] += fixed.solve_ms
        return _costs(problem, fixed.columns, fixed.values)["objective"], fixed

    # The heaters scheduled at the relaxed plan's marginal prices. Where whole steps raised
    # the billing peak (the battery could not absorb them), also the relaxation's shares
    # rounded in order, and the prices of that plan tried again; the cheapest kept.
    found = [f for f in [fixed_at(_schedule_by_prices(problem, relaxed))] if f is not None]
    if (
        not found
        or window_peak_kw(problem, found[0][1].values[found[0][1].columns.imports])
        > relaxed_peak + 1e-3
    ):
        rounded = fixed_at(_round_heaters(problem, relaxed.columns, relaxed.values))
        found += [rounded] if rounded is not None else []
        if found:
            better = min(found, key=lambda f: f[0])[1]
            again = fixed_at(_schedule_by_prices(problem, better))
            found += [again] if again is not None else []
    if found:
        best = min(found, key=lambda f: f[0])[1]
        plan = _plan(
            problem, best.columns, best.values, mip=True, build_ms=spent[0], solve_ms=spent[1]
        )
        plan.cost["lower_bound"] = _costs(problem, relaxed.columns, relaxed.values)["objective"]
        return plan
    build_ms, solve_ms = spent
    return _solve_exact(problem, deadline, time_limit_s, build_ms, solve_ms)


@dataclass
class _Run:
    columns: _Columns
    values: FloatArray
    row_duals: FloatArray  # an LP's (what one more kW of load costs, per row); empty for a MIP
    mip: bool
    build_ms: float
    solve_ms: float


def _run(
    problem: Problem,
    deadline: float,
    time_limit_s: float,
    *,
    integer: bool,
    fixed: dict[str, FloatArray] | None = None,
) -> _Run:
    started = time.perf_counter()
    model, columns = _build(problem, integer=integer, fixed=fixed)
    highs = _new_highs()
    left = deadline - time.perf_counter()
    if left <= 0:
        raise SchedulerError(
            _failure(problem, highs, highspy.HighsModelStatus.kTimeLimit, time_limit_s)
        )
    highs.setOptionValue("time_limit", left)
    mip = model.pass_to(highs)
    built = time.perf_counter()
    highs.run()
    solved = time.perf_counter()
    status = highs.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise SchedulerError(_failure(problem, highs, status, time_limit_s))
    solution = highs.getSolution()
    duals = solution.row_dual if solution.dual_valid else []
    return _Run(
        columns,
        np.asarray(solution.col_value, dtype=np.float64),
        np.asarray(duals, dtype=np.float64),
        mip,
        (built - started) * 1000,
        (solved - built) * 1000,
    )


def _schedule_by_prices(problem: Problem, relaxed: _Run) -> dict[str, FloatArray] | None:
    """Each on/off heater's cheapest whole-step schedule that keeps its band, at the relaxed LP's
    marginal price of a kW in each step (its power balance's duals: the energy price, and the
    demand charge where a window sits at the peak, and what the battery would do instead):
    dynamic programming over the tank's temperature, kept to one path per 1/400 of the band.
    None when no schedule keeps the band (or the LP gave no duals)."""
    if len(relaxed.row_duals) == 0:
        return None
    marginal = relaxed.row_duals[relaxed.columns.balance]  # per kW of load, per step
    dt = problem.step_hours
    schedules = {}
    for tank in problem.tanks:
        if not tank.on_off:
            continue
        lower, upper = _tank_band(tank, dt)
        a, b = _tank_response(tank, dt)
        full = b * tank.efficiency * tank.heater_kw
        base = min(float(lower.min()), tank.temp_c)
        resolution = max(float(upper.max()) - base, 1e-6) / 400
        temps = np.array([tank.temp_c])
        costs = np.zeros(1)
        parents: list[IntArray] = []
        actions: list[FloatArray] = []
        for t in range(problem.steps):
            drift = a * temps + (1 - a) * tank.ambient_c - b * tank.draw_kw[t]
            next_temps = np.concatenate((drift, drift + full))
            next_costs = np.concatenate((costs, costs + marginal[t] * tank.heater_kw))
            came_from = np.tile(np.arange(len(temps)), 2)
            heated = np.repeat([0.0, 1.0], len(temps))
            inside = (next_temps >= lower[t] - 1e-9) & (next_temps <= upper[t] + 1e-9)
            if not inside.any():
                return None
            next_temps, next_costs = next_temps[inside], next_costs[inside]
            came_from, heated = came_from[inside], heated[inside]
            bucket = np.floor((next_temps - base) / resolution).astype(np.int64)
            order = np.lexsort((next_costs, bucket))  # by bucket, the cheapest first
            first = np.ones(len(order), dtype=bool)
            first[1:] = bucket[order][1:] != bucket[order][:-1]
            kept = order[first]
            temps, costs = next_temps[kept], next_costs[kept]
            parents.append(came_from[kept])
            actions.append(heated[kept])
        on = np.zeros(problem.steps)
        state = int(np.argmin(costs))
        for t in range(problem.steps - 1, -1, -1):
            on[t] = actions[t][state]
            state = int(parents[t][state])
        schedules[tank.name] = on
    return schedules


def _round_heaters(
    problem: Problem, columns: _Columns, x: FloatArray
) -> dict[str, FloatArray] | None:
    """Each on/off heater's relaxed schedule (a share of each step) rounded to whole steps:
    on when the shares carried so far reach half a step (the rounding error never exceeds
    half a step's heat), on whatever the carry when off would leave the band (now, or next
    step even at full heat), off when on would pass the top. None when a band cannot be kept."""
    dt = problem.step_hours
    rounded = {}
    for tank in problem.tanks:
        if not tank.on_off:
            continue
        share = np.clip(x[columns.tanks[tank.name].heat], 0.0, 1.0)
        lower, upper = _tank_band(tank, dt)
        a, b = _tank_response(tank, dt)
        full = b * tank.efficiency * tank.heater_kw
        steps = len(share)
        on = np.zeros(steps)
        temp, carry = tank.temp_c, 0.0
        for t in range(steps):
            drift = a * temp + (1 - a) * tank.ambient_c - b * tank.draw_kw[t]  # heater off
            carry += share[t]
            heat = carry >= 0.5 or drift < lower[t]
            if not heat and t + 1 < steps:
                coldest_next = a * drift + (1 - a) * tank.ambient_c - b * tank.draw_kw[t + 1] + full
                heat = coldest_next < lower[t + 1]
            if heat and drift + full > upper[t]:
                heat = False
            temp = drift + full if heat else drift
            if not lower[t] - 1e-9 <= temp <= upper[t] + 1e-9:
                return None
            carry -= float(heat)
            on[t] = float(heat)
        rounded[tank.name] = on
    return rounded


# --- building ---------------------------------------------------------------------------------


def _build(
    problem: Problem, *, integer: bool = True, fixed: dict[str, FloatArray] | None = None
) -> tuple[_Model, _Columns]:
    """The model; on/off heaters as integer columns, relaxed to [0, 1] (`integer=False`), or
    fixed to a schedule of 0/1 per step (`fixed`, by tank name)."""
    _check_feasible_inputs(problem)
    t_count = problem.steps
    dt = problem.step_hours
    steps = np.arange(t_count, dtype=np.int64)
    base = np.asarray(problem.base_load_kw)
    pv = np.asarray(problem.pv_kw)
    model = _Model()
    imports = model.add_columns(
        np.asarray(problem.import_price) * dt, 0.0, _bound(problem.grid_import_max_kw)
    )
    exports = model.add_columns(
        -np.asarray(problem.export_price) * dt + _TIE_KWH * dt,
        0.0,
        _bound(problem.grid_export_max_kw),
    )
    curtail = model.add_columns(np.full(t_count, 2 * _TIE_KWH * dt), 0.0, pv)
    # Power balance (kW): import - export + discharge - charge - EVs - heaters - curtailed
    #                    = base load - PV
    balance = model.add_rows(base - pv, base - pv)
    model.add_entries(balance, imports, 1.0)
    model.add_entries(balance, exports, -1.0)
    model.add_entries(balance, curtail, -1.0)
    battery = None
    if problem.battery is not None:
        battery = _add_battery(model, problem.battery, balance, t_count, dt)
    evs = {ev.name: _add_ev(model, ev, balance, t_count, dt) for ev in problem.evs}
    tanks = {
        tank.name: _add_tank(
            model, tank, balance, t_count, dt, integer=integer, fixed=(fixed or {}).get(tank.name)
        )
        for tank in problem.tanks
    }
    peak = (
        _add_demand_charge(model, problem, imports, steps)
        if problem.demand_charge_per_kw > 0
        else None
    )
    own = problem.pv_low_demand_charge_per_kw
    if own is not None and own > 0:
        # The case without the unseen sun has its own peak, at its own charge.
        low_peak: IntArray | None = model.add_columns(
            np.array([own]), np.array([problem.peak_already_kw]), np.array([_INF])
        )
    else:
        low_peak = peak if own is None else None
    if (
        low_peak is not None
        and battery is not None
        and problem.battery is not None
        and problem.pv_low_kw is not None
    ):
        _add_low_pv(
            model, problem, battery, bat=problem.battery, evs=evs, tanks=tanks, peak=low_peak
        )
    return model, _Columns(balance, imports, exports, curtail, peak, battery, evs, tanks)


def _bound(limit: float) -> float:
    return _INF if math.isinf(limit) else limit


def _add_battery(
    model: _Model, bat: BatteryModel, balance: IntArray, t_count: int, dt: float
) -> _BatteryColumns:
    throughput_cost = np.full(t_count, (bat.degradation_per_kwh + _TIE_KWH) * dt)
    charge = model.add_columns(throughput_cost, 0.0, bat.max_charge_kw)
    discharge = model.add_columns(throughput_cost, 0.0, bat.max_discharge_kw)
    # A SoC outside its band now (a reading, a reserve raised) comes back at the fastest rate;
    # the band holds from when it can.
    elapsed = (np.arange(t_count) + 1) * dt
    fastest_up = bat.soc_kwh + elapsed * (
        bat.max_charge_kw * bat.charge_efficiency - bat.standby_loss_kw
    )
    fastest_down = bat.soc_kwh - elapsed * (
        bat.max_discharge_kw / bat.discharge_efficiency + bat.standby_loss_kw
    )
    lower = np.minimum(bat.soc_min_kwh, fastest_up - _SLACK)
    lower[-1] = max(lower[-1], min(bat.end_floor_kwh, fastest_up[-1] - _SLACK))
    upper = np.maximum(bat.soc_max_kwh, fastest_down + _SLACK)
    end_cost = np.zeros(t_count)
    end_cost[-1] = -bat.end_value_per_kwh
    soc = model.add_columns(end_cost, lower, upper)
    model.add_entries(balance, charge, -1.0)
    model.add_entries(balance, discharge, 1.0)
    # Energy (kWh): soc[t] - soc[t-1] - dt*eta_c*charge[t] + dt/eta_d*discharge[t]
    #               = -dt*standby   (soc[-1] = the SoC now, moved to the right-hand side)
    rhs = np.full(t_count, -bat.standby_loss_kw * dt)
    rhs[0] += bat.soc_kwh
    energy = model.add_rows(rhs, rhs)
    model.add_entries(energy, soc, 1.0)
    model.add_entries(energy[1:], soc[:-1], -1.0)
    model.add_entries(energy, charge, -dt * bat.charge_efficiency)
    model.add_entries(energy, discharge, dt / bat.discharge_efficiency)
    return _BatteryColumns(charge, discharge, soc)


def _ev_window(ev: EvSession, t_count: int) -> tuple[int, int, int]:
    """(first, end) of the steps plugged in within the horizon, and the steps after it."""
    first = min(ev.first_step, t_count)
    end = min(ev.depart_step, t_count)
    after = max(0, ev.depart_step - max(ev.first_step, t_count))
    return first, end, after


def _add_ev(model: _Model, ev: EvSession, balance: IntArray, t_count: int, dt: float) -> IntArray:
    first, end, after = _ev_window(ev, t_count)
    upper = np.zeros(t_count)
    upper[first:end] = ev.max_kw
    power = model.add_columns(np.zeros(t_count), np.zeros(t_count), upper)
    model.add_entries(balance, power, -1.0)
    # Energy by departure (kWh): what the steps after the horizon cannot give, within it.
    need = max(0.0, ev.energy_kwh - ev.max_kw * dt * after)
    row = model.add_rows(np.array([need]), np.array([ev.energy_kwh]))
    model.add_entries(np.repeat(row, end - first), power[first:end], dt)
    return power


def _tank_response(tank: ThermalTank, dt: float) -> tuple[float, float]:
    """(a, b) of the exact step response of a tank with constant inputs over a step:
    T[t] = a*T[t-1] + (1-a)*ambient + b*(heat_kw - draw_kw), a = exp(-L*dt/C), b = (1-a)/L."""
    capacity, loss = tank.heat_capacity_kwh_per_k, tank.loss_kw_per_k
    x = loss * dt / capacity
    if x == 0:  # no loss (or one so small the exponential cannot see it)
        return 1.0, dt / capacity
    # (1-a)/L written as dt/C * (1-exp(-x))/x: no cancellation for a small loss
    return math.exp(-x), dt / capacity * (-math.expm1(-x) / x)


def _tank_path(tank: ThermalTank, dt: float, heat_kw: float) -> FloatArray:
    a, b = _tank_response(tank, dt)
    temps = np.empty(len(tank.draw_kw))
    temp = tank.temp_c
    for t, draw in enumerate(tank.draw_kw):
        temp = a * temp + (1 - a) * tank.ambient_c + b * (heat_kw - draw)
        temps[t] = temp
    return temps


def _tank_band(tank: ThermalTank, dt: float) -> tuple[FloatArray, FloatArray]:
    """The temperature band per step: [min_c, max_c], widened to the fastest way back while the
    tank starts outside it. SchedulerError when even the full heater cannot hold min_c."""
    warmest = _tank_path(tank, dt, tank.heater_kw * tank.efficiency)
    coolest = _tank_path(tank, dt, 0.0)
    held = tank.temp_c >= tank.min_c
    for t, temp in enumerate(warmest):
        if temp >= tank.min_c:
            held = True
        elif held:
            raise SchedulerError(
                f"tank {tank.name!r}: even with the heater full on ({tank.heater_kw:g} kW) it "
                f"falls to {temp:.2f} C at step {t}, below its min_c {tank.min_c:g} C: the "
                f"forecast draw is more than the heater can give"
            )
    if not held:
        raise SchedulerError(
            f"tank {tank.name!r} is at {tank.temp_c:g} C, below its min_c {tank.min_c:g} C, and "
            f"cannot recover within the horizon even with the heater full on "
            f"(it reaches {warmest[-1]:.2f} C)"
        )
    lower = np.minimum(tank.min_c, warmest - _SLACK)
    upper = np.maximum(tank.max_c, coolest + _SLACK)
    return lower, upper


def _add_tank(
    model: _Model,
    tank: ThermalTank,
    balance: IntArray,
    t_count: int,
    dt: float,
    *,
    integer: bool,
    fixed: FloatArray | None,
) -> _TankColumns:
    lower, upper = _tank_band(tank, dt)
    if tank.on_off:
        if fixed is not None:
            # 0 or 1: fixed; NaN: left to the solver, whole steps (integer=True) or shares
            free = np.isnan(fixed)
            heat = model.add_columns(
                np.zeros(t_count),
                np.where(free, 0.0, fixed),
                np.where(free, 1.0, fixed),
                integer=integer,
            )
        else:
            heat = model.add_columns(np.zeros(t_count), 0.0, 1.0, integer=integer)
        kw_per_unit = tank.heater_kw
    else:
        heat = model.add_columns(
            np.zeros(t_count), np.zeros(t_count), np.full(t_count, tank.heater_kw)
        )
        kw_per_unit = 1.0
    temp = model.add_columns(np.zeros(t_count), lower, upper)
    model.add_entries(balance, heat, -kw_per_unit)
    # Heat (K): temp[t] - a*temp[t-1] - b*eff*heater_kw[t] = (1-a)*ambient - b*draw[t]
    a, b = _tank_response(tank, dt)
    rhs = (1 - a) * tank.ambient_c - b * np.asarray(tank.draw_kw)
    rhs[0] += a * tank.temp_c
    heat_rows = model.add_rows(rhs, rhs)
    model.add_entries(heat_rows, temp, 1.0)
    model.add_entries(heat_rows[1:], temp[:-1], -a)
    model.add_entries(heat_rows, heat, -b * tank.efficiency * kw_per_unit)
    return _TankColumns(heat, temp, kw_per_unit)


def _window_index(problem: Problem) -> IntArray:
    """The billing window (0, 1, ...) of each step."""
    steps = np.arange(problem.steps, dtype=np.int64)
    width = problem.demand_window_steps
    first = problem.first_window_steps or width
    return np.where(steps < first, 0, (steps - first) // width + 1)


def _add_demand_charge(
    model: _Model, problem: Problem, imports: IntArray, steps: IntArray
) -> IntArray:
    # peak (kW) >= every window's average import, and >= the peak already set this period:
    # the charge is on peak - peak_already, so shaving below it earns nothing.
    peak = model.add_columns(
        np.array([problem.demand_charge_per_kw]),
        np.array([problem.peak_already_kw]),
        np.array([_INF]),
    )
    window = _window_index(problem)
    count = int(window[-1]) + 1
    width = problem.demand_window_steps
    window_hours = width * problem.step_hours
    # window average (kW) = (import already metered + dt * sum import) / window length
    lower = np.zeros(count)
    lower[0] = problem.first_window_import_kwh / window_hours
    rows = model.add_rows(lower, np.full(count, _INF))
    model.add_entries(rows, np.repeat(peak, count), 1.0)
    model.add_entries(rows[window], imports[steps], -1.0 / width)
    return peak


def _add_low_pv(
    model: _Model,
    problem: Problem,
    nominal: _BatteryColumns,
    *,
    bat: BatteryModel,
    evs: dict[str, IntArray],
    tanks: dict[str, _TankColumns],
    peak: IntArray,
) -> None:
    """The same site with only `pv_low_kw` of sun: the battery's first step is the plan's (what
    is done now is one decision), its later steps its own, the cars and tanks as planned; the
    billing peak must hold that case too. So the plan keeps in the battery what a forecast of
    too much sun would leave it short of. Only the peak is counted (the billing peak, or its own
    with `pv_low_demand_charge_per_kw`): its energy costs nothing (ties aside)."""
    t_count = problem.steps
    dt = problem.step_hours
    steps = np.arange(t_count, dtype=np.int64)
    base = np.asarray(problem.base_load_kw)
    low = np.asarray(problem.pv_low_kw)
    tie = np.full(t_count, _TIE_KWH * dt)
    imports = model.add_columns(tie, 0.0, _bound(problem.grid_import_max_kw))
    exports = model.add_columns(tie, 0.0, _bound(problem.grid_export_max_kw))
    curtail = model.add_columns(2 * tie, 0.0, low)
    balance = model.add_rows(base - low, base - low)
    model.add_entries(balance, imports, 1.0)
    model.add_entries(balance, exports, -1.0)
    model.add_entries(balance, curtail, -1.0)
    for power in evs.values():
        model.add_entries(balance, power, -1.0)
    for tank in tanks.values():
        model.add_entries(balance, tank.heat, -tank.kw_per_unit)
    battery = _add_battery(model, bat, balance, t_count, dt)
    # Its throughput and what it has left at the end cost nothing: only ties.
    model.cost[-3] = tie.copy()
    model.cost[-2] = tie.copy()
    model.cost[-1] = np.zeros(t_count)
    first = model.add_rows(np.zeros(2), np.zeros(2))
    model.add_entries(first, np.array([battery.charge[0], battery.discharge[0]]), 1.0)
    model.add_entries(first, np.array([nominal.charge[0], nominal.discharge[0]]), -1.0)
    window = _window_index(problem)
    count = int(window[-1]) + 1
    width = problem.demand_window_steps
    lower = np.zeros(count)
    lower[0] = problem.first_window_import_kwh / (width * dt)
    rows = model.add_rows(lower, np.full(count, _INF))
    model.add_entries(rows, np.repeat(peak, count), 1.0)
    model.add_entries(rows[window], imports[steps], -1.0 / width)


def _check_feasible_inputs(problem: Problem) -> None:
    """The infeasibilities a site meets, with a message that says which device and step."""
    dt = problem.step_hours
    for ev in problem.evs:
        first, end, after = _ev_window(ev, problem.steps)
        need = ev.energy_kwh - ev.max_kw * dt * after
        most = ev.max_kw * dt * (end - first)
        if need > most + 1e-9:
            raise SchedulerError(
                f"EV {ev.name!r} cannot get {ev.energy_kwh:g} kWh by step {ev.depart_step}: "
                f"plugged in for {end - first + after} steps at most {ev.max_kw:g} kW gives "
                f"{most + ev.max_kw * dt * after:.2f} kWh"
            )
    discharge = problem.battery.max_discharge_kw if problem.battery is not None else 0.0
    for t, (load, pv) in enumerate(zip(problem.base_load_kw, problem.pv_kw, strict=True)):
        if load - pv - discharge > problem.grid_import_max_kw + 1e-9:
            raise SchedulerError(
                f"step {t}: the base load {load:g} kW less PV {pv:g} kW and the battery's "
                f"{discharge:g} kW is above grid_import_max_kw {problem.grid_import_max_kw:g}"
            )


# --- solving ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """HiGHS prints its banner on the process's stdout (fd 1) when the first solver is made:
    a worker speaking JSON lines there must not get it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


_banner_shown = False


def _new_highs() -> highspy.Highs:
    global _banner_shown  # noqa: PLW0603  (once per process)
    if not _banner_shown:
        with _stdout_silenced():
            highs = highspy.Highs()  # type: ignore[no-untyped-call]
        _banner_shown = True
    else:
        highs = highspy.Highs()  # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    return highs


def _failure(
    problem: Problem, highs: highspy.Highs, status: highspy.HighsModelStatus, time_limit_s: float
) -> str:
    if status == highspy.HighsModelStatus.kTimeLimit:
        return f"the solver found no optimal plan within time_limit_s {time_limit_s:g}"
    if status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        parts = ["the battery's SoC band and end SoC"] if problem.battery is not None else []
        parts += (
            [f"the EV energy by departure ({', '.join(ev.name for ev in problem.evs)})"]
            if problem.evs
            else []
        )
        parts += (
            [
                f"the tank band{'s' if len(problem.tanks) > 1 else ''} "
                f"({', '.join(tank.name for tank in problem.tanks)}"
                f"{', on/off heaters' if any(t.on_off for t in problem.tanks) else ''})"
            ]
            if problem.tanks
            else []
        )
        parts.append("the grid import/export limits")
        return "infeasible: no plan keeps " + ", ".join(parts) + " at once"
    return f"the solver failed: {highs.modelStatusToString(status)}"


# --- reading the plan back --------------------------------------------------------------------


def _clean(values: FloatArray) -> FloatArray:
    """Solver round-off (1e-12 below a bound of 0) is not a reverse flow."""
    return np.where(np.abs(values) < 1e-9, 0.0, values)


def _plan(
    problem: Problem,
    columns: _Columns,
    x: FloatArray,
    *,
    mip: bool,
    build_ms: float,
    solve_ms: float,
) -> Plan:
    t_count = problem.steps
    imports = _clean(x[columns.imports])
    exports = _clean(x[columns.exports])
    curtail = _clean(x[columns.curtail])
    if columns.battery is not None and problem.battery is not None:
        charge = _clean(x[columns.battery.charge])
        discharge = _clean(x[columns.battery.discharge])
        soc = x[columns.battery.soc]
        capacity = problem.battery.capacity_kwh
    else:
        charge = discharge = soc = np.zeros(t_count)
        capacity = 0.0
    ev_kw = {name: _clean(x[cols]) for name, cols in columns.evs.items()}
    tank_kw = {}
    for name, tank in columns.tanks.items():
        heat = x[tank.heat]
        if tank.kw_per_unit != 1.0:
            heat = np.round(heat) * tank.kw_per_unit
        tank_kw[name] = _clean(heat)
    tank_c = {name: x[tank.temp] for name, tank in columns.tanks.items()}
    step_ms = problem.step_minutes * 60_000
    plan_steps = tuple(
        PlanStep(
            start_ms=problem.start_ms + round(t * step_ms),
            battery_kw=float(discharge[t] - charge[t]),
            ev_kw={name: float(kw[t]) for name, kw in ev_kw.items()},
            tank_kw={name: float(kw[t]) for name, kw in tank_kw.items()},
            import_kw=float(imports[t]),
            export_kw=float(exports[t]),
            soc_kwh=float(soc[t]),
            soc_pct=float(100.0 * soc[t] / capacity) if capacity else 0.0,
            tank_c={name: float(temp[t]) for name, temp in tank_c.items()},
            price=problem.import_price[t],
            load_kw=problem.base_load_kw[t],
            pv_kw=problem.pv_kw[t],
            pv_curtailed_kw=float(curtail[t]),
        )
        for t in range(t_count)
    )
    peak = window_peak_kw(problem, imports)
    return Plan(
        steps=plan_steps,
        cost=_costs(problem, columns, x),
        peak_kw=peak,
        build_ms=build_ms,
        solve_ms=solve_ms,
        status="optimal",
        mip=mip,
    )


def _costs(problem: Problem, columns: _Columns, x: FloatArray) -> dict[str, float]:
    """The plan's money, from its powers (not the solver's objective: no tie-breakers)."""
    dt = problem.step_hours
    imports = _clean(x[columns.imports])
    exports = _clean(x[columns.exports])
    peak = window_peak_kw(problem, imports)
    cost = {
        "energy": float(np.dot(imports, problem.import_price) * dt),
        "export_revenue": float(np.dot(exports, problem.export_price) * dt),
        "demand_charge": problem.demand_charge_per_kw * max(0.0, peak - problem.peak_already_kw),
        "degradation": 0.0,
        "end_value": 0.0,
    }
    bat = problem.battery
    if bat is not None and columns.battery is not None:
        moved = np.sum(_clean(x[columns.battery.charge]) + _clean(x[columns.battery.discharge]))
        cost["degradation"] = bat.degradation_per_kwh * float(moved) * dt
        cost["end_value"] = bat.end_value_per_kwh * float(x[columns.battery.soc][-1])
    cost["total"] = (
        cost["energy"] - cost["export_revenue"] + cost["demand_charge"] + cost["degradation"]
    )
    cost["objective"] = cost["total"] - cost["end_value"]
    return cost


def window_peak_kw(problem: Problem, import_kw: FloatArray | tuple[float, ...]) -> float:
    """The highest billing-window average import (kW) of `import_kw` per step, counting the
    import already metered in the first window and the peak already set this period."""
    window = _window_index(problem)
    energy = np.bincount(window, weights=np.asarray(import_kw) * problem.step_hours)
    energy[0] += problem.first_window_import_kwh
    hours = problem.demand_window_steps * problem.step_hours
    return max(problem.peak_already_kw, float(np.max(energy)) / hours)

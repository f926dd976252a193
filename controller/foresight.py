"""The perfect-foresight bound of the scheduler report: the scheduler's own LP
(controller/scheduler/lp.py) solved once over the whole run with what really happened, the
inflexible load and the PV of the rules + scheduler run from the plant's ground truth, so the
bound says what planning could have added to that very run had it known the future
(docs/simulator.md, "The scheduler report").

It plans what the scheduler plans (the battery; the cars and heated tanks when the scheduler's
config lists them), with the scheduler's own model of each (efficiencies, reserve, wear cost);
everything else stays in the load as it happened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from controller.scheduler.valuation import planned_demand_charge
from controller.tariff import WEEKDAYS, seconds_of_day
from drivers.sim.scenario import Scenario

if TYPE_CHECKING:
    from controller.scheduler.problem import Plan, Problem

# Points of the plant a bound needs besides the site meter, PV and battery (per equipment).
EV_POWER = "{name}.power_kw"
TANK_HEATER = "{name}.heater_power_kw"
MACHINE_STATE = "{name}.state"
PRODUCING, IDLE = 3, 2  # drivers/sim/plant: 0 off, 1 standby, 2 idle, 3 producing
# Water: kg/m3 x kJ/(kg K) / 3600 s/h = kWh per K per m3 (plant/chiller.py's constants).
KWH_PER_K_M3 = 1000.0 * 4.186 / 3600.0


@dataclass(frozen=True)
class BatteryAsPlanned:
    """The battery as the scheduler's config models it (one efficiency each way, the reserve,
    the wear cost); capacity and power limits too, as the scheduler was told them."""

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float
    discharge_efficiency: float
    reserve_pct: float
    soc_max_pct: float
    degradation_per_kwh: float = 0.0
    standby_loss_kw: float = 0.0


@dataclass(frozen=True)
class FlexibleSet:
    """What the bound plans: the battery, and the scenario's chargers and tanks (by name) the
    scheduler plans; the rest of the load is as it happened."""

    battery: BatteryAsPlanned | None
    ev_chargers: tuple[str, ...] = ()
    tanks: tuple[str, ...] = ()


@dataclass
class Bound:
    """The bound's figures in the report's terms (a linear model: no curve losses)."""

    plan: Any  # controller.scheduler.problem.Plan
    steps: int
    step_minutes: float
    energy_cost: float
    export_revenue: float
    demand_charge: float
    degradation: float
    net_cost: float
    stored_kwh: float
    net_cost_soc_adjusted: float
    peak_demand_kw: float
    import_kwh: float
    export_kwh: float
    series: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "step_minutes": self.step_minutes,
            "energy_cost": round(self.energy_cost, 2),
            "export_revenue": round(self.export_revenue, 2),
            "demand_charge": round(self.demand_charge, 2),
            "degradation": round(self.degradation, 2),
            "net_cost": round(self.net_cost, 2),
            "battery_stored_kwh": round(self.stored_kwh, 2),
            "net_cost_soc_adjusted": round(self.net_cost_soc_adjusted, 2),
            "peak_demand_kw": round(self.peak_demand_kw, 2),
            "import_kwh": round(self.import_kwh, 2),
            "export_kwh": round(self.export_kwh, 2),
            "solve_ms": round(float(self.plan.solve_ms), 1),
            "status": self.plan.status,
        }


def bound_points(scenario: Scenario) -> list[str]:
    """The plant points a run records so that a bound can be computed from it."""
    points = [EV_POWER.format(name=c.name) for c in scenario.ev_chargers]
    points += [TANK_HEATER.format(name=t.name) for t in scenario.heated_tanks]
    points += sorted({MACHINE_STATE.format(name=t.machine) for t in scenario.heated_tanks})
    return points


def step_seconds(scenario: Scenario) -> int:
    """The bound's step: 15 min, or the billing window if it does not divide into 15 min."""
    window = int(scenario.tariff.demand_window)
    return math.gcd(900, window) if window > 0 else 900


def step_means(times_h: Sequence[float], values: Sequence[float], step_s: float) -> list[float]:
    """Means per step of a series sampled at the END of each cycle (`times_h`: simulated
    hours after the start): a sample at t covers (t - cycle, t]."""
    if not times_h:
        return []
    steps = max(1, round(times_h[-1] * 3600.0 / step_s))
    sums, counts = [0.0] * steps, [0] * steps
    for t, value in zip(times_h, values, strict=True):
        index = min(steps - 1, max(0, math.ceil(t * 3600.0 / step_s - 1e-9) - 1))
        sums[index] += value
        counts[index] += 1
    return [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def _price(scenario: Scenario, second: float) -> float:
    """The scenario's import price at `second` after its start (plant/plant.py's rule)."""
    return scenario.tariff.price_at(scenario.start + timedelta(seconds=second))[0]


def _tank_draw(scenario: Scenario, name: str, states: Sequence[float]) -> list[float]:
    tank = next(t for t in scenario.heated_tanks if t.name == name)
    return [
        tank.draw_kw.producing
        if round(s) == PRODUCING
        else tank.draw_kw.idle
        if round(s) == IDLE
        else 0.0
        for s in states
    ]


def foresight_problem(
    scenario: Scenario,
    times_h: Sequence[float],
    series: Mapping[str, Sequence[float]],
    flexible: FlexibleSet,
    *,
    initial_soc_pct: float,
    planner_demand_charge: bool = False,
) -> Problem:
    """The whole run as one LP problem, from the run's sampled plant series: the inflexible
    load = site meter + PV + battery discharge - what the bound plans (chargers, tank
    heaters), per step mean. The demand charge is the month's prorated to the run's length,
    as ground truth bills it; `planner_demand_charge`: as the scheduler values it at the run's
    start (the month's charge shared by the days left in the billing period, no peak set yet:
    controller/scheduler/valuation.py)."""
    from controller.scheduler.problem import (  # noqa: PLC0415  (the scheduler extra)
        BatteryModel,
        EvSession,
        Problem,
        ThermalTank,
    )

    step_s = step_seconds(scenario)
    site = series["site_meter.active_power_kw"]
    pv = series.get("pv.power_kw", [0.0] * len(site))
    battery = series.get("battery.power_kw", [0.0] * len(site))
    loads = [s + p + b for s, p, b in zip(site, pv, battery, strict=True)]
    planned = [EV_POWER.format(name=n) for n in flexible.ev_chargers]
    planned += [TANK_HEATER.format(name=n) for n in flexible.tanks]
    for point in planned:
        loads = [x - y for x, y in zip(loads, series[point], strict=True)]
    base = [max(0.0, x) for x in step_means(times_h, loads, step_s)]
    pv_kw = [max(0.0, x) for x in step_means(times_h, pv, step_s)]
    count = len(base)
    hours = count * step_s / 3600.0
    tariff = scenario.tariff
    start_ms = int(scenario.start.replace(tzinfo=UTC).timestamp() * 1000)

    battery_model = None
    if flexible.battery is not None:
        model = flexible.battery
        capacity = model.capacity_kwh
        battery_model = BatteryModel(
            capacity_kwh=capacity,
            soc_kwh=capacity * initial_soc_pct / 100.0,
            soc_min_kwh=capacity * min(model.reserve_pct, initial_soc_pct) / 100.0,
            soc_max_kwh=capacity * max(model.soc_max_pct, initial_soc_pct) / 100.0,
            max_charge_kw=model.max_charge_kw,
            max_discharge_kw=model.max_discharge_kw,
            charge_efficiency=model.charge_efficiency,
            discharge_efficiency=model.discharge_efficiency,
            degradation_per_kwh=model.degradation_per_kwh,
            standby_loss_kw=model.standby_loss_kw,
            # The runs are compared with the energy left in the battery credited at the
            # off-peak price (the tariff's cheapest): the bound is worth the same per stored kWh.
            end_value_per_kwh=tariff.lowest_price_per_kwh,
        )
    evs = []
    for name in flexible.ev_chargers:
        charger = next(c for c in scenario.ev_chargers if c.name == name)
        day = WEEKDAYS[scenario.start.weekday()]
        offset = seconds_of_day(scenario.start.time())
        for session in charger.sessions:
            if day not in session.days:
                continue
            first = max(0, math.ceil((seconds_of_day(session.arrive) - offset) / step_s))
            depart = min(count, math.floor((seconds_of_day(session.depart) - offset) / step_s))
            if depart <= first:
                continue
            evs.append(
                EvSession(
                    name=name,
                    max_kw=charger.kw,
                    first_step=first,
                    depart_step=depart,
                    energy_kwh=min(session.kwh, charger.kw * (depart - first) * step_s / 3600),
                )
            )
    tanks = []
    for name in flexible.tanks:
        spec = next(t for t in scenario.heated_tanks if t.name == name)
        states = series[MACHINE_STATE.format(name=spec.machine)]
        draw = step_means(times_h, _tank_draw(scenario, name, states), step_s)
        tanks.append(
            ThermalTank(
                name=name,
                heater_kw=spec.heater_kw,
                temp_c=spec.initial_c,
                min_c=min(spec.min_c, spec.initial_c),
                max_c=spec.setpoint_c,
                heat_capacity_kwh_per_k=spec.volume_m3 * KWH_PER_K_M3,
                loss_kw_per_k=spec.loss_kw_per_k,
                ambient_c=spec.room_c,
                draw_kw=tuple(draw),
            )
        )
    if planner_demand_charge:
        charge = planned_demand_charge(tariff.demand_charge_per_kw_month, start_ms, ZoneInfo("UTC"))
    else:
        charge = tariff.demand_charge_per_kw_month * min(1.0, hours / (30 * 24.0))
    return Problem(
        start_ms=start_ms,
        step_minutes=step_s / 60.0,
        base_load_kw=tuple(base),
        pv_kw=tuple(pv_kw),
        import_price=tuple(_price(scenario, k * step_s) for k in range(count)),
        export_price=(tariff.export_price_per_kwh,) * count,
        demand_charge_per_kw=charge,
        demand_window_steps=max(1, round(tariff.demand_window / step_s)),
        battery=battery_model,
        evs=tuple(evs),
        tanks=tuple(tanks),
    )


def bound_of(
    problem: Problem, plan: Plan, *, stored_price: float, billed_per_kw: float | None = None
) -> Bound:
    """The bound's figures from its plan: the import bill, export revenue and the demand
    charge as ground truth counts them (the LP's steps are the billing windows' means;
    `billed_per_kw`: the charge per kW ground truth bills, when the LP priced it otherwise)."""
    dt_h = problem.step_minutes / 60.0
    steps = plan.steps
    energy = sum(s.import_kw * dt_h * s.price for s in steps)
    revenue = sum(
        s.export_kw * dt_h * price for s, price in zip(steps, problem.export_price, strict=True)
    )
    window = problem.demand_window_steps
    imports = [s.import_kw for s in steps]
    peak = max(
        (sum(imports[i : i + window]) / window for i in range(0, len(imports), window)),
        default=0.0,
    )
    demand = peak * (problem.demand_charge_per_kw if billed_per_kw is None else billed_per_kw)
    initial = problem.battery.soc_kwh if problem.battery is not None else 0.0
    stored = (steps[-1].soc_kwh - initial) if problem.battery is not None else 0.0
    net = energy - revenue + demand
    return Bound(
        plan=plan,
        steps=len(steps),
        step_minutes=problem.step_minutes,
        energy_cost=energy,
        export_revenue=revenue,
        demand_charge=demand,
        degradation=float(plan.cost.get("degradation", 0.0)),
        net_cost=net,
        stored_kwh=stored,
        net_cost_soc_adjusted=net - stored * stored_price,
        peak_demand_kw=peak,
        import_kwh=sum(imports) * dt_h,
        export_kwh=sum(s.export_kw for s in steps) * dt_h,
        series={
            "battery_kw": [s.battery_kw for s in steps],
            "soc_pct": [s.soc_pct for s in steps],
            "import_kw": [s.import_kw - s.export_kw for s in steps],
        },
    )


def perfect_foresight(
    scenario: Scenario,
    times_h: Sequence[float],
    series: Mapping[str, Sequence[float]],
    flexible: FlexibleSet,
    *,
    initial_soc_pct: float,
    planner_demand_charge: bool = False,
    time_limit_s: float = 60.0,
) -> Bound:
    """Solve the whole run with perfect foresight (needs the `scheduler` extra: highspy); its
    figures as ground truth bills them (the demand charge prorated to the run)."""
    from controller.scheduler import lp  # noqa: PLC0415  (the scheduler extra)

    problem = foresight_problem(
        scenario,
        times_h,
        series,
        flexible,
        initial_soc_pct=initial_soc_pct,
        planner_demand_charge=planner_demand_charge,
    )
    plan = lp.solve(problem, time_limit_s=time_limit_s)
    hours = len(problem.base_load_kw) * problem.step_minutes / 60.0
    billed = scenario.tariff.demand_charge_per_kw_month * min(1.0, hours / (30 * 24.0))
    return bound_of(
        problem, plan, stored_price=scenario.tariff.lowest_price_per_kwh, billed_per_kw=billed
    )

"""`edgecell report --scheduler`: what planning adds, measured on the simulated cell.

Three co-simulated runs on the same scenario and seed through the real protocol stacks: the
baseline (no controller: the battery in its vendor program), the reactive rules (the storage
config) and the rules with the model-predictive scheduler (the scheduler config); and the
perfect-foresight bound (controller/foresight.py): the scheduler's LP over the whole run with
the scheduler run's true load and PV. Ground truth scores every run; the bound is the LP's own
arithmetic. Writes scheduler.json, scheduler.md and the plan-vs-actual plot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.foresight import (
    BatteryAsPlanned,
    Bound,
    FlexibleSet,
    bound_points,
    perfect_foresight,
    step_means,
    step_seconds,
)
from controller.report import RunResult, _pct, _totals, run_once, storage_totals, window_label
from drivers.sim.scenario import Scenario

RUNS = ("baseline", "reactive", "scheduler")


@dataclass
class SchedulerRuns:
    baseline: RunResult
    reactive: RunResult
    scheduler: RunResult

    def by_label(self) -> dict[str, RunResult]:
        return {"baseline": self.baseline, "reactive": self.reactive, "scheduler": self.scheduler}


async def run_three(
    scenario: Scenario,
    reactive: Config,
    scheduler: Config,
    *,
    hours: float | None = None,
    cycle: float = 5.0,
    seed: int | None = None,
    progress: bool = True,
) -> SchedulerRuns:
    """Baseline, reactive rules and rules + scheduler, one after the other, same seed."""
    hours = hours if hours is not None else scenario.duration / 3600
    extra = bound_points(scenario)

    async def one(config: Config, *, rules: bool, label: str) -> RunResult:
        return await run_once(
            scenario,
            config,
            rules=rules,
            hours=hours,
            cycle=cycle,
            seed=seed,
            progress=progress,
            label=label,
            extra_points=extra,
        )

    return SchedulerRuns(
        baseline=await one(reactive, rules=False, label="baseline"),
        reactive=await one(reactive, rules=True, label="reactive"),
        scheduler=await one(scheduler, rules=True, label="scheduler"),
    )


def flexible_set(config: Config, scenario: Scenario) -> FlexibleSet:
    """What the scheduler of `config` plans, as the bound plans it: its battery model made
    never worse than the plant's battery (each way the better of the config's efficiency and
    the plant's best point: its inverter curve's peak times the DC one-way efficiency; the
    wider of the config's and the plant's SoC window; the larger capacity and power limits,
    the smaller standby loss; no wear cost, which no bill charges), so
    the bound is a bound on the bill; and the scenario's
    chargers and tanks whose tags the scheduler reads (matched through the scenario's
    protocol faces, controller/cellcheck.py)."""
    from controller.cellcheck import tag_points  # noqa: PLC0415

    scheduler = config.scheduler
    if scheduler is None:
        raise ValueError("the scheduler config has no scheduler: section")
    battery = None
    if scheduler.battery is not None:
        b = scheduler.battery
        best, low, high = 1.0, b.reserve_pct, b.soc_max_pct
        capacity, charge_kw, discharge_kw = b.capacity_kwh, b.max_charge_kw, b.max_discharge_kw
        standby = b.standby_loss_kw
        plant = scenario.battery
        if plant is not None:
            curve = max(p.efficiency for p in plant.inverter_efficiency)
            best = curve * math.sqrt(plant.dc_round_trip)
            low, high = min(low, plant.soc_min_pct), max(high, plant.soc_max_pct)
            # A config that understates the battery (a figure copied from another cell) plans
            # less than the cell has; the bound is on the cell (session 8).
            capacity = max(capacity, plant.usable_kwh)
            charge_kw = max(charge_kw, plant.max_charge_kw)
            discharge_kw = max(discharge_kw, plant.max_discharge_kw)
            standby = min(standby, plant.standby_kw)
        battery = BatteryAsPlanned(
            capacity_kwh=capacity,
            max_charge_kw=charge_kw,
            max_discharge_kw=discharge_kw,
            charge_efficiency=max(b.charge_efficiency, best),
            discharge_efficiency=max(b.discharge_efficiency, best),
            reserve_pct=low,
            soc_max_pct=high,
            degradation_per_kwh=0.0,
            standby_loss_kw=standby,
        )
    points = tag_points(config, scenario)
    chargers = {c.name for c in scenario.ev_chargers}
    tanks = {t.name for t in scenario.heated_tanks}
    planned_evs = [points.get(ev.connected, "").split(".")[0] for ev in scheduler.evs]
    planned_tanks = [points.get(t.temperature, "").split(".")[0] for t in scheduler.tanks]
    return FlexibleSet(
        battery=battery,
        ev_chargers=tuple(sorted({n for n in planned_evs if n in chargers})),
        tanks=tuple(sorted({n for n in planned_tanks if n in tanks})),
    )


def bound_for(
    runs: SchedulerRuns,
    scenario: Scenario,
    flexible: FlexibleSet,
    *,
    planner_demand_charge: bool = False,
) -> Bound:
    """The perfect-foresight bound on the scheduler run's true load and PV: on the bill as
    ground truth counts it (the demand charge prorated to the run), or with
    `planner_demand_charge` on the scheduler's own objective (the month's charge shared by
    the days left in the billing period at the run's start, controller/scheduler/valuation.py),
    its figures billed as ground truth bills them."""
    run = runs.scheduler
    initial = run.truth.get("battery_initial_soc_pct")
    if initial is None:
        initial = scenario.battery.initial_soc_pct if scenario.battery is not None else 0.0
    return perfect_foresight(
        scenario,
        run.times_h,
        run.series,
        flexible,
        initial_soc_pct=float(initial),
        planner_demand_charge=planner_demand_charge,
    )


def run_figures(run: RunResult, scenario: Scenario) -> dict[str, Any]:
    """The table's figures of one run, from its ground truth."""
    usable = None if scenario.battery is None else scenario.battery.usable_kwh
    storage = storage_totals(run.truth, usable, scenario.tariff.lowest_price_per_kwh)
    totals = _totals(run)
    violations = totals["violations_s"]
    return {
        "energy_cost": totals["energy_cost"],
        "export_revenue": storage["export_revenue"],
        "demand_charge": totals["demand_charge"],
        "net_cost": storage["net_cost"],
        "battery_stored_kwh": storage["battery_stored_kwh"],
        "net_cost_soc_adjusted": storage["net_cost_soc_adjusted"],
        "peak_demand_kw": totals["peak_demand_kw"],
        "import_kwh": storage["import_kwh"],
        "export_kwh": storage["export_kwh"],
        "battery_throughput_kwh": storage["battery_throughput_kwh"],
        "soc_outside_limits_s": storage["soc_outside_limits_s"],
        "tank_below_minimum_s": violations["heated_tank_below_minimum"],
        "ev_energy_short_kwh": totals["ev_energy_short_kwh"],
        "production_lost_s": violations["production_lost"],
        "other_violations_s": sum(
            v
            for k, v in violations.items()
            if k not in ("heated_tank_below_minimum", "production_lost")
        ),
        "plans": len(run.plans),
        "wall_s": totals["wall_s"],
    }


def _violations(figures: Mapping[str, Any]) -> float:
    return float(
        figures["soc_outside_limits_s"]
        + figures["tank_below_minimum_s"]
        + figures["production_lost_s"]
        + figures["other_violations_s"]
    )


def compare_scheduler(
    runs: SchedulerRuns,
    bound: Bound | None,
    scenario: Scenario,
    planner_bound: Bound | None = None,
) -> dict[str, Any]:
    """The three runs and the bounds side by side, the savings and issue 16's targets. Costs
    are compared with the energy left in the battery credited at the off-peak price
    (`net_cost_soc_adjusted`, as the storage report does). `bound`: the bill's optimum;
    `planner_bound`: the scheduler's own objective's. The target "within 10 % of perfect
    foresight" is judged on the bill's optimum (decided: the same LP as the scheduler's, on
    what the bill charges; the planner's objective's optimum is shown beside it, and judging
    on it would forgive an objective that prices the wrong thing)."""
    figures = {label: run_figures(run, scenario) for label, run in runs.by_label().items()}
    return compare_figures(
        figures,
        bound,
        scenario,
        planner_bound,
        seed=runs.baseline.truth["seed"],
        hours=runs.baseline.hours,
    )


def compare_figures(
    figures: Mapping[str, Mapping[str, Any]],
    bound: Bound | None,
    scenario: Scenario,
    planner_bound: Bound | None = None,
    *,
    seed: object,
    hours: float,
) -> dict[str, Any]:
    """`compare_scheduler` on the runs' figures (`run_figures` of each of RUNS)."""
    key = "net_cost_soc_adjusted"
    base = figures["baseline"]
    saved = {
        label: {
            "cost_pct": _pct(base[key], f[key]),
            "peak_pct": _pct(base["peak_demand_kw"], f["peak_demand_kw"]),
            "cost": round(base[key] - f[key], 2),
        }
        for label, f in figures.items()
        if label != "baseline"
    }
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": seed,
        "hours": hours,
        "currency": scenario.tariff.currency,
        "demand_window_s": scenario.tariff.demand_window,
        "runs": {label: dict(f) for label, f in figures.items()},
        "saved": saved,
        "bound": None,
        "bound_share_pct": None,
        "bound_planner": None,
        "bound_planner_share_pct": None,
    }
    sched, reactive = figures["scheduler"], figures["reactive"]
    for name, value in (("bound", bound), ("bound_planner", planner_bound)):
        if value is None:
            continue
        report[name] = value.as_dict()
        bound_saving = base[key] - value.net_cost_soc_adjusted
        report["saved"][name] = {
            "cost_pct": _pct(base[key], value.net_cost_soc_adjusted),
            "peak_pct": _pct(base["peak_demand_kw"], value.peak_demand_kw),
            "cost": round(bound_saving, 2),
        }
        if bound_saving > 0:
            report[f"{name}_share_pct"] = round(
                100.0 * saved["scheduler"]["cost"] / bound_saving, 1
            )
    share = report["bound_share_pct"]
    report["targets"] = {
        "cost_20pct_below_baseline": (saved["scheduler"]["cost_pct"] or 0) >= 20,
        "peak_20pct_below_baseline": (saved["scheduler"]["peak_pct"] or 0) >= 20,
        "scheduler_beats_reactive_on_cost": sched[key] < reactive[key],
        "saving_within_10pct_of_perfect_foresight": share is not None and share >= 90,
        "zero_violations": _violations(sched) == 0
        and sched["ev_energy_short_kwh"] <= base["ev_energy_short_kwh"] + 0.01,
        "no_worse_than_reactive": sched[key] <= reactive[key] + 0.005,
    }
    return report


# (label, key, unit: "" money, or a unit)
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("energy cost (import bill)", "energy_cost", ""),
    ("export revenue", "export_revenue", ""),
    ("demand charge (prorated)", "demand_charge", ""),
    ("net cost (import - export + demand charge)", "net_cost", ""),
    ("energy left in the battery at the end", "battery_stored_kwh", "kWh"),
    ("net cost, stored energy credited", "net_cost_soc_adjusted", ""),
    ("peak {window} demand", "peak_demand_kw", "kW"),
    ("grid import / export", "import_export", "kWh"),
    ("SoC outside its limits", "soc_outside_limits_s", "s"),
    ("heated tank below its minimum", "tank_below_minimum_s", "s"),
    ("EV energy not delivered", "ev_energy_short_kwh", "kWh"),
    ("production lost", "production_lost_s", "s"),
    ("other constraint violations", "other_violations_s", "s"),
    ("plans published", "plans", ""),
)


def _cell(figures: Mapping[str, Any] | None, key: str, unit: str, currency: str) -> str:
    if figures is None:
        return "n/a"
    if key == "import_export":
        return f"{figures['import_kwh']:,.1f} / {figures['export_kwh']:,.1f} kWh"
    value = figures.get(key)
    if value is None:
        return "0 (a constraint)" if unit in ("s",) or key == "ev_energy_short_kwh" else "n/a"
    if key == "plans":
        return f"{value}"
    return f"{value:,.2f} {unit or currency}".rstrip()


def scheduler_markdown(report: Mapping[str, Any]) -> str:
    currency = report.get("currency", "")
    window = window_label(report.get("demand_window_s", 900.0))
    runs, bound, saved = report["runs"], report.get("bound"), report["saved"]
    planned = report.get("bound_planner")
    header = (
        "| | baseline (vendor program) | reactive rules | rules + scheduler | perfect foresight |"
    )
    rule = "|---|---:|---:|---:|---:|"
    if planned is not None:
        header += " perfect foresight, the scheduler's objective |"
        rule += "---:|"
    lines = [
        f"# edgecell scheduler report: {report['scenario']} (seed {report['seed']}, "
        f"{report['hours']:g} h)",
        "",
        header,
        rule,
    ]
    for label, key, unit in TABLE_ROWS:
        cells = [_cell(runs[r], key, unit, currency) for r in RUNS]
        cells.append(_cell(bound, key, unit, currency))
        if planned is not None:
            cells.append(_cell(planned, key, unit, currency))
        lines.append(f"| {label.format(window=window)} | " + " | ".join(cells) + " |")

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.1f} %"

    lines += ["", "Against the baseline (net cost with the stored energy credited; peak):", ""]
    for label in ("reactive", "scheduler", "bound", "bound_planner"):
        if label in saved:
            s = saved[label]
            lines.append(
                f"- {label}: cost {pct(s['cost_pct'])} ({s['cost']:,.2f} {currency} saved),"
                f" peak {pct(s['peak_pct'])}"
            )
    share = report.get("bound_share_pct")
    planned_share = report.get("bound_planner_share_pct")
    lines += [
        "",
        "The scheduler's saving is "
        + ("n/a" if share is None else f"{share:.1f} %")
        + " of the perfect-foresight saving on the bill (the scheduler's LP over the whole run"
        " with the scheduler run's true load and PV, the demand charge prorated to the run as"
        " billed here: a linear battery never worse than the plant's, no forecast error)"
        + (
            ""
            if planned is None
            else ", and "
            + ("n/a" if planned_share is None else f"{planned_share:.1f} %")
            + " of the saving of the same LP on the scheduler's own objective (the month's demand"
            " charge shared by the days left in the billing period), billed the same way"
        )
        + ".",
        "",
        "Targets: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in report["targets"].items()),
    ]
    return "\n".join(lines) + "\n"


def plan_vs_actual(
    run: RunResult, scenario: Scenario, start_ms: int
) -> dict[str, list[float | None]]:
    """Per step: what the plan in force at the step's start said (battery kW, SoC %, grid kW)
    beside what happened (the step's mean battery kW and grid kW, the SoC at its end)."""
    step_s = step_seconds(scenario)
    battery = step_means(run.times_h, run.series.get("battery.power_kw", []), step_s)
    grid = step_means(run.times_h, run.series["site_meter.active_power_kw"], step_s)
    soc_series = run.series.get("battery.soc_pct", [])
    steps = len(grid)
    out: dict[str, list[float | None]] = {
        "hour": [k * step_s / 3600.0 for k in range(steps)],
        "battery_kw": list(battery) if battery else [None] * steps,
        "grid_kw": list(grid),
        "soc_pct": [None] * steps,
        "plan_battery_kw": [None] * steps,
        "plan_grid_kw": [None] * steps,
        "plan_soc_pct": [None] * steps,
    }
    cycles_per_step = len(run.times_h) / steps if steps else 0
    for k in range(steps):
        end = min(len(soc_series), round((k + 1) * cycles_per_step)) - 1
        if soc_series and end >= 0:
            out["soc_pct"][k] = soc_series[end]
    plans = sorted(run.plans, key=lambda p: p[0])
    for k in range(steps):
        step_start_ms = start_ms + k * step_s * 1000
        in_force = [p for hour, p in plans if hour * 3600.0 <= k * step_s + 1e-6]
        if not in_force:
            continue
        for step in in_force[-1].get("steps", []):
            if int(step.get("start_ms", -1)) == step_start_ms:
                out["plan_battery_kw"][k] = float(step.get("battery_kw", 0.0))
                out["plan_grid_kw"][k] = float(step.get("import_kw", 0.0)) - float(
                    step.get("export_kw", 0.0)
                )
                out["plan_soc_pct"][k] = float(step.get("soc_pct", 0.0))
                break
    return out


def plan_summary(hour: float, plan: Mapping[str, Any]) -> dict[str, Any]:
    """One published plan in a line: its time, reason, planned peak (and the one already
    set), cost, solve time, and its first step and the highest import it expects."""
    steps: list[dict[str, Any]] = plan.get("steps") or []
    first: dict[str, Any] = steps[0] if steps else {}
    empty: dict[str, Any] = {}
    peak_step = max(steps, key=lambda s: float(s.get("import_kw", 0.0)), default=empty)
    return {
        "hour": round(hour, 3),
        "valid": plan.get("valid"),
        "reason": plan.get("reason"),
        "peak_kw": plan.get("peak_kw"),
        "peak_already_kw": plan.get("peak_already_kw"),
        "cost_total": (plan.get("cost") or {}).get("total"),
        "solve_ms": plan.get("solve_ms"),
        "pv_forecast": plan.get("pv_forecast"),
        "first_step": {
            k: first.get(k) for k in ("time", "battery_kw", "soc_pct", "load_kw", "pv_kw")
        },
        "highest_import": {k: peak_step.get(k) for k in ("time", "import_kw", "soc_pct")},
    }


def plot_plan_vs_actual(
    series: Mapping[str, Sequence[float | None]], bound: Bound | None, out: Path
) -> Path:
    """One PNG, three panels: battery kW, SoC, grid power; the plan in force, what happened,
    and the perfect-foresight plan. Needs matplotlib (the `report` extra)."""
    import matplotlib  # noqa: PLC0415  (optional dependency)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    def nan(values: Sequence[float | None]) -> list[float]:
        return [float("nan") if v is None else float(v) for v in values]

    hours = nan(series["hour"])
    panels = (
        ("battery_kw", "battery power, + discharging (kW)"),
        ("soc_pct", "battery state of charge (%)"),
        ("grid_kw", "site grid power, + import (kW)"),
    )
    bound_keys = {"battery_kw": "battery_kw", "soc_pct": "soc_pct", "grid_kw": "import_kw"}
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), dpi=100, sharex=True)
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.step(hours, nan(series[f"plan_{key}"]), where="post", label="plan in force", lw=1.0)
        ax.step(hours, nan(series[key]), where="post", label="actual", lw=1.0, alpha=0.8)
        if bound is not None:
            values = bound.series[bound_keys[key]][: len(hours)]
            ax.step(hours[: len(values)], values, where="post", label="perfect foresight",
                    lw=0.8, ls="--", alpha=0.8)  # fmt: skip
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("simulated hours")
    fig.tight_layout()
    path = out / "plan_vs_actual.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def write_scheduler_report(
    runs: SchedulerRuns,
    bound: Bound | None,
    scenario: Scenario,
    out: Path,
    *,
    plots: bool = True,
    planner_bound: Bound | None = None,
) -> dict[str, Any]:
    """Write scheduler.json, scheduler.md and (with matplotlib) plan_vs_actual.png."""
    from datetime import UTC  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    report = compare_scheduler(runs, bound, scenario, planner_bound)
    if bound is not None:
        plan = bound.plan
        report["bound_inputs"] = {  # the true load and PV per step, to solve it again
            "base_load_kw": [round(s.load_kw, 3) for s in plan.steps],
            "pv_kw": [round(s.pv_kw, 3) for s in plan.steps],
        }
    start_ms = int(scenario.start.replace(tzinfo=UTC).timestamp() * 1000)
    series = plan_vs_actual(runs.scheduler, scenario, start_ms)
    report["plan_vs_actual"] = series
    # Every plan the scheduler published, in short: when, why, what peak it planned for and
    # what it expected of the hours ahead (the trace of a missed target).
    report["plans"] = [plan_summary(hour, plan) for hour, plan in runs.scheduler.plans]
    report["plots"] = [plot_plan_vs_actual(series, bound, out).name] if plots else []
    (out / "scheduler.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "scheduler.md").write_text(scheduler_markdown(report), encoding="utf-8")
    return report

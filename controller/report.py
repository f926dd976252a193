"""`edgecell report`: what the rules save, measured on the simulated cell.

The same scenario and seed run twice in lock-step co-simulation through the real Modbus and
OPC UA stacks: once as the baseline (no controller: every PLC on its local defaults) and once
with the configured rules. The plant's ground truth (never seen by the controller) gives the
energy, water, cost and constraint figures; the controller's own alarms are scored against the
scenario's true leak starts. Writes report.json, report.md and PNG plots.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from controller.alarmscore import leak_scores, other_alarms
from controller.cellcheck import Finding
from controller.config import Config
from controller.configtypes import format_duration
from controller.cosim import CoSimulation
from drivers.sim.scenario import Scenario

log = structlog.get_logger(__name__)

# Series sampled from the plant every cycle for the plots: points every simulated cell has,
# whatever its equipment is called (the labels, some of which depend on the cell:
# series_labels()).
SERIES: tuple[str, ...] = (
    "site_meter.active_power_kw",
    "site_meter.demand_kw",
    "compressor.pressure_bar",
    "air.far_end_pressure_bar",
    "water_meter.flow_m3_h",
    "tower.conductivity_us_cm",
    "rinse.conductivity_us_cm",
    "chiller.supply_temp_c",
)
STANDBY_STATE = 1  # drivers/sim/plant: 0 off, 1 standby, 2 idle, 3 producing


def window_label(seconds: float) -> str:
    """A demand window as people say it: 900 s is `15-min`, 1800 s `30-min`."""
    if seconds % 60 == 0:
        return f"{round(seconds / 60)}-min"
    return format_duration(seconds)


# Series of a cell with PV and a battery (scenario `pv:` / `battery:`), sampled and plotted too.
STORAGE_SERIES: dict[str, str] = {
    "pv.power_kw": "PV power (kW)",
    "battery.power_kw": "battery power, + discharging (kW)",
    "battery.soc_pct": "battery state of charge (%)",
}


def storage_series(scenario: Scenario) -> dict[str, str]:
    """The storage series this scenario's plant has (point -> label)."""
    return {
        point: label
        for point, label in STORAGE_SERIES.items()
        if (point.startswith("pv.") and scenario.pv is not None)
        or (point.startswith("battery.") and scenario.battery is not None)
    }


def billing_label(alignment: str) -> str:
    """How the tariff lays its billing windows, as the report says it."""
    return "sliding billing window" if alignment == "sliding" else "clock-aligned billing windows"


def series_labels(scenario: Scenario) -> dict[str, str]:
    """The plots' axis labels (plant point -> label). The site meter's demand is its own sliding
    window (site.meter.demand_window), not a utility's clock-aligned billing window."""
    window = window_label(scenario.site.meter.demand_window)
    return {
        "site_meter.active_power_kw": "site power (kW)",
        "site_meter.demand_kw": f"site meter demand, sliding {window} (kW)",
        "compressor.pressure_bar": "header pressure (bar)",
        "air.far_end_pressure_bar": "far-end pressure (bar)",
        "water_meter.flow_m3_h": "main water flow (m3/h)",
        "tower.conductivity_us_cm": "tower conductivity (uS/cm)",
        "rinse.conductivity_us_cm": "rinse conductivity (uS/cm)",
        "chiller.supply_temp_c": "chilled water supply (degC)",
        **storage_series(scenario),
    }


def start_points(scenario: Scenario) -> dict[str, str]:
    """Equipment whose starts are counted, and the plant point that says it runs: the
    compressor (`running`), and every machine of the scenario (its state above standby)."""
    return {
        "compressor": "compressor.running",
        **{machine.name: f"{machine.name}.state" for machine in scenario.machines},
    }


def _running(point: str, value: float) -> bool:
    if point.endswith(".state"):
        return value > STANDBY_STATE
    return bool(value)


@dataclass
class RunResult:
    """One co-simulated run: the ground truth, the series, and what the controller said."""

    label: str
    truth: dict[str, Any]
    hours: float
    series: dict[str, list[float]] = field(default_factory=dict)
    times_h: list[float] = field(default_factory=list)
    writes: int = 0
    # Values already in place written again (actuation.outputs refresh): device writes too.
    refreshes: int = 0
    starts: int = 0
    starts_by_equipment: dict[str, int] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    # Each plan the controller published retained on `{base}/plan` (a scheduler run), with the
    # simulated hour it came: the plan-vs-actual plot's plans.
    plans: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


def _progress(label: str, done: int, total: int, started: float) -> None:
    """A bar on a terminal; a line every 10 % otherwise (CI logs, pipes)."""
    if not sys.stderr.isatty():
        if done * 10 // total != (done - 1) * 10 // total:
            elapsed = time.perf_counter() - started
            sys.stderr.write(f"{label}: {done / total:4.0%} ({elapsed:.0f} s)\n")
        return
    width = 30
    filled = int(width * done / total)
    elapsed = time.perf_counter() - started
    sys.stderr.write(
        f"\r{label:>9} [{'#' * filled}{'.' * (width - filled)}] {done / total:4.0%} {elapsed:5.0f}s"
    )
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def run_once(
    scenario: Scenario,
    config: Config,
    *,
    rules: bool,
    hours: float,
    cycle: float,
    seed: int | None,
    progress: bool = True,
    label: str | None = None,
    extra_points: Sequence[str] = (),
) -> RunResult:
    """One co-simulated run of `hours`, baseline (`rules=False`) or with the rules;
    `extra_points` are sampled every cycle beside the plotted series."""
    label = label or ("edgecell" if rules else "baseline")
    result = RunResult(label=label, truth={}, hours=hours)
    result.series = {
        point: [] for point in dict.fromkeys((*SERIES, *storage_series(scenario), *extra_points))
    }
    watched = start_points(scenario)
    result.starts_by_equipment = dict.fromkeys(watched, 0)
    cycles = max(1, round(hours * 3600 / cycle))
    started = time.perf_counter()
    previous_running: dict[str, bool] = {}
    async with CoSimulation(scenario, config, cycle=cycle, seed=seed, rules=rules) as sim:
        plant = sim.plant
        plan_topic = f"{sim.config.base_topic}/plan"
        last_plan: dict[str, Any] | None = None
        for i in range(cycles):
            await sim.step()
            result.times_h.append(plant.time_s / 3600)
            plan = sim.events.retained.get(plan_topic)
            if plan is not None and plan is not last_plan:
                result.plans.append((plant.time_s / 3600, plan))
                last_plan = plan
            for point, values in result.series.items():
                values.append(float(plant.read_point(point)))
            for name, point in watched.items():
                running = _running(point, float(plant.read_point(point)))
                if previous_running.get(name) is False and running:
                    result.starts += 1
                    result.starts_by_equipment[name] += 1
                previous_running[name] = running
            if progress and ((i + 1) % max(1, cycles // 100) == 0 or i + 1 == cycles):
                _progress(label, i + 1, cycles, started)
        result.truth = plant.ground_truth().as_dict()
        result.writes = sum(1 for w in sim.events.writes() if w.get("outcome") == "written")
        result.refreshes = sim.actuator.stats.refreshes if sim.actuator is not None else 0
        # Every finding of every alarm: the first publication of each (alarm, raised_count,
        # steps): its raise, and each step of its estimate by another leak.
        episodes: dict[tuple[str, int, int], dict[str, Any]] = {}
        for topic, payload in sim.events.retained_history:
            key = (topic, int(payload.get("raised_count", 1)), int(payload.get("steps") or 0))
            episodes.setdefault(key, {"topic": topic, **payload})
        result.alarms = list(episodes.values())
    result.wall_s = time.perf_counter() - started
    return result


def _pct(baseline: float, value: float) -> float | None:
    return None if baseline == 0 else round(100.0 * (baseline - value) / baseline, 1)


# What the site draws from the mains (the others are parts of these: tower makeup =
# evaporation + drift + blowdown + tower leaks).
DRAWN_WATER = ("tower_makeup", "rinse_fresh", "rinse_regeneration", "domestic", "main_leak")


def storage_totals(
    truth: Mapping[str, Any], usable_kwh: float | None, stored_price: float
) -> dict[str, Any]:
    """The storage figures of a run from the plant's ground truth (docs/simulator.md): grid
    import and export, how much of the PV the site used and how much of its use the site
    covered itself, the battery's throughput, cycles and losses, the cost net of export with
    the demand charge, and the SoC and setpoint limits it was held to.

    Loads = import - export + PV + battery discharged - battery charged (the meter's balance);
    self-consumption = (PV - export) / PV; self-sufficiency = (loads - import) / loads;
    equivalent full cycles = (charged + discharged) / (2 x usable kWh). The energy left in the
    battery at the end differs between runs (the vendor program empties it overnight, a peak
    shaver refills it): `net_cost_soc_adjusted` credits the stored kWh at `stored_price` (the
    off-peak price it would cost to put back) so the two days compare."""
    imported, exported = truth["site_import_kwh"], truth.get("site_export_kwh", 0.0)
    pv = truth.get("pv_kwh", 0.0)
    charged = truth.get("battery_charged_kwh", 0.0)
    discharged = truth.get("battery_discharged_kwh", 0.0)
    loads = imported - exported + pv + discharged - charged
    throughput = charged + discharged
    net_cost = (
        truth["energy_cost"] - truth.get("export_revenue", 0.0) + truth["demand_charge_prorated"]
    )
    initial, final = truth.get("battery_initial_soc_pct"), truth.get("battery_final_soc_pct")
    stored_kwh = (
        0.0
        if usable_kwh is None or initial is None or final is None
        else (final - initial) / 100.0 * usable_kwh
    )
    return {
        "import_kwh": round(imported, 2),
        "export_kwh": round(exported, 2),
        "pv_kwh": round(pv, 2),
        "pv_clipped_kwh": round(truth.get("pv_clipped_kwh", 0.0), 2),
        "pv_self_consumption_pct": round(100.0 * max(0.0, pv - exported) / pv, 1) if pv else None,
        "self_sufficiency_pct": round(100.0 * max(0.0, loads - imported) / loads, 1)
        if loads > 0
        else None,
        "battery_charged_kwh": round(charged, 2),
        "battery_discharged_kwh": round(discharged, 2),
        "battery_throughput_kwh": round(throughput, 2),
        "battery_equivalent_full_cycles": round(throughput / (2.0 * usable_kwh), 3)
        if usable_kwh
        else None,
        "battery_loss_kwh": round(truth.get("battery_loss_kwh", 0.0), 2),
        "battery_soc_min_pct": truth.get("battery_soc_min_pct"),
        "battery_soc_max_pct": truth.get("battery_soc_max_pct"),
        "battery_final_soc_pct": truth.get("battery_final_soc_pct"),
        "battery_initial_soc_pct": truth.get("battery_initial_soc_pct"),
        "soc_outside_limits_s": truth.get("seconds_soc_outside_limits", 0.0),
        "battery_setpoint_curtailed_kwh": round(truth.get("battery_curtailed_kwh", 0.0), 3),
        "export_revenue": round(truth.get("export_revenue", 0.0), 2),
        "net_cost": round(net_cost, 2),
        "battery_stored_kwh": round(stored_kwh, 2),
        "net_cost_soc_adjusted": round(net_cost - stored_kwh * stored_price, 2),
    }


def _totals(run: RunResult) -> dict[str, Any]:
    truth = run.truth
    water = sum(truth["water_m3"].get(use, 0.0) for use in DRAWN_WATER)
    return {
        "energy_kwh": round(truth["site_import_kwh"], 2),
        # What the utility bills: the tariff's window (clock-aligned when it is fixed).
        "peak_demand_kw": round(truth["billing_demand_kw"], 2),
        # The site meter's own sliding window, as its display shows it: not what is billed.
        "meter_peak_demand_kw": round(truth["max_demand_kw"], 2),
        "energy_cost": round(truth["energy_cost"], 2),
        "demand_charge": round(truth["demand_charge_prorated"], 2),
        "water_m3": round(water, 3),
        "water_cost": round(truth["water_cost"], 2),
        "energy_kwh_by_component": {k: round(v, 2) for k, v in truth["energy_kwh"].items()},
        "water_m3_by_use": {k: round(v, 3) for k, v in truth["water_m3"].items()},
        "violations_s": {
            "far_end_pressure_below_minimum": truth["seconds_far_end_below_critical"],
            "process_temperature_above_limit": truth["seconds_process_above_limit"],
            "rinse_conductivity_above_limit": truth["seconds_rinse_above_limit"],
            "tower_conductivity_above_limit": truth.get("seconds_tower_above_limit", 0.0),
            "production_lost": sum(truth.get("seconds_production_lost", {}).values()),
            "heated_tank_below_minimum": sum(truth.get("seconds_tank_below_min", {}).values()),
        },
        # Energy a car wanted and left without: a deferred load that was deferred too long.
        "ev_energy_short_kwh": round(sum(truth.get("ev_energy_short_kwh", {}).values()), 2),
        "machine_restarts": sum(truth.get("machine_restarts", {}).values()),
        "writes_per_hour": round(run.writes / run.hours, 1),
        "refreshes_per_hour": round(run.refreshes / run.hours, 1),
        "equipment_starts_per_hour": round(run.starts / run.hours, 2),
        "plc_fallbacks": truth["plc_fallbacks"],
        "wall_s": round(run.wall_s, 1),
    }


def compare(baseline: RunResult, edgecell: RunResult, scenario: Scenario) -> dict[str, Any]:
    base, ours = _totals(baseline), _totals(edgecell)
    leaks, false_alarms = leak_scores(edgecell.truth, edgecell.alarms)
    savings = {
        key: _pct(base[key], ours[key])
        for key in ("energy_kwh", "peak_demand_kw", "energy_cost", "water_m3")
    }
    by_component = {
        name: _pct(base["energy_kwh_by_component"][name], kwh)
        for name, kwh in ours["energy_kwh_by_component"].items()
        if name in base["energy_kwh_by_component"]
    }
    by_use = {
        name: _pct(base["water_m3_by_use"][name], m3)
        for name, m3 in ours["water_m3_by_use"].items()
        if name in base["water_m3_by_use"]
    }
    storage: dict[str, Any] | None = None
    targets: dict[str, bool] = {}
    if scenario.pv is not None or scenario.battery is not None:
        usable = None if scenario.battery is None else scenario.battery.usable_kwh
        price = scenario.tariff.lowest_price_per_kwh
        storage = {
            "baseline": storage_totals(baseline.truth, usable, price),
            "edgecell": storage_totals(edgecell.truth, usable, price),
        }
        storage["net_cost_saved_pct"] = _pct(
            storage["baseline"]["net_cost"], storage["edgecell"]["net_cost"]
        )
        storage["net_cost_soc_adjusted_saved_pct"] = _pct(
            storage["baseline"]["net_cost_soc_adjusted"],
            storage["edgecell"]["net_cost_soc_adjusted"],
        )
        targets = {
            "net_cost_15pct_lower": (storage["net_cost_soc_adjusted_saved_pct"] or 0) >= 15,
            "zero_soc_violations": storage["edgecell"]["soc_outside_limits_s"] == 0,
        }
    return {
        "scenario": scenario.name,
        "seed": baseline.truth["seed"],
        "storage": storage,
        "hours": baseline.hours,
        "baseline": base,
        "edgecell": ours,
        "savings_pct": savings,
        "energy_savings_pct_by_component": by_component,
        "water_savings_pct_by_use": by_use,
        "constraint_violations_s": sum(ours["violations_s"].values()),
        "constraint_violations": {k: v for k, v in ours["violations_s"].items() if v > 0},
        "leaks": leaks,
        "false_alarms": false_alarms,
        # Raises of alarms that indicate no leak, by kind: not leak findings, not false ones.
        "other_alarms": other_alarms(edgecell.truth, edgecell.alarms),
        "alarms": edgecell.alarms,
        # The peak is the tariff's billing window (tariff.demand_window, clock-aligned unless
        # the tariff bills a sliding window); the meter's own sliding window is shown beside it.
        "demand_window_s": scenario.tariff.demand_window,
        "demand_window_alignment": scenario.tariff.demand_alignment,
        "meter_demand_window_s": scenario.site.meter.demand_window,
        "equipment": {
            "machines": [m.name for m in scenario.machines],
            "heated_tanks": [t.name for t in scenario.heated_tanks],
            "ev_chargers": [c.name for c in scenario.ev_chargers],
        },
        "equipment_starts": {
            "baseline": baseline.starts_by_equipment,
            "edgecell": edgecell.starts_by_equipment,
        },
        "targets": {
            "peak_demand_15pct_lower": (savings["peak_demand_kw"] or 0) >= 15,
            "energy_10pct_lower": (savings["energy_kwh"] or 0) >= 10,
            "water_30pct_lower": (savings["water_m3"] or 0) >= 30,
            "zero_constraint_violations": (
                sum(ours["violations_s"].values()) == 0
                and ours["ev_energy_short_kwh"] <= base["ev_energy_short_kwh"] + 0.01
            ),
            "no_false_alarm": false_alarms == 0,
            "leaks_alarmed_within_30_min": all(
                leak["detected_after_min"] is not None and leak["detected_after_min"] <= 30
                for leak in leaks
            ),
            **targets,
        },
    }


def markdown(report: dict[str, Any]) -> str:
    base, ours, pct = report["baseline"], report["edgecell"], report["savings_pct"]
    currency = report.get("currency", "")
    window = window_label(report.get("demand_window_s", 900.0))
    billed = billing_label(report.get("demand_window_alignment", "fixed"))
    meter_window = window_label(report.get("meter_demand_window_s", 900.0))

    def row(label: str, key: str, unit: str = "") -> str:
        saving = pct.get(key)
        shown = "" if saving is None else f"{saving:+.1f} %"
        return f"| {label} | {base[key]:,.2f} {unit} | {ours[key]:,.2f} {unit} | {shown} |"

    lines = [
        f"# edgecell savings report: {report['scenario']} (seed {report['seed']}, "
        f"{report['hours']:g} h)",
        "",
        "| | baseline | edgecell | saved |",
        "|---|---:|---:|---:|",
        row("energy", "energy_kwh", "kWh"),
        row(f"peak {window} demand ({billed})", "peak_demand_kw", "kW"),
        f"| meter peak, sliding {meter_window} (not billed) | {base['meter_peak_demand_kw']:,.2f}"
        f" kW | {ours['meter_peak_demand_kw']:,.2f} kW | |",
        row("energy cost", "energy_cost", currency),
        f"| demand charge (prorated) | {base['demand_charge']:,.2f} | "
        f"{ours['demand_charge']:,.2f} | |",
        row("water", "water_m3", "m3"),
        f"| constraint violations | {sum(base['violations_s'].values()):,.0f} s | "
        f"{sum(ours['violations_s'].values()):,.0f} s | |",
        f"| EV energy not delivered | {base['ev_energy_short_kwh']} kWh | "
        f"{ours['ev_energy_short_kwh']} kWh | |",
        f"| writes per hour | {base['writes_per_hour']} | {ours['writes_per_hour']} | |",
        f"| held values written again per hour (refresh) | {base['refreshes_per_hour']} | "
        f"{ours['refreshes_per_hour']} | |",
        f"| equipment starts per hour | {base['equipment_starts_per_hour']} | "
        f"{ours['equipment_starts_per_hour']} | |",
        "",
        f"Peak demand: the highest {window} average over the tariff's {billed}, what the"
        f" demand charge is billed on; the meter's own display is a sliding {meter_window}"
        " average, shown beside it and not billed.",
        "",
        "Energy saved by component: "
        + ", ".join(
            f"{k} {v:+.1f} %"
            for k, v in report["energy_savings_pct_by_component"].items()
            if v is not None
        ),
        "",
        "Water saved by use: "
        + ", ".join(
            f"{k} {v:+.1f} %"
            for k, v in report["water_savings_pct_by_use"].items()
            if v is not None
        ),
        "",
        "Leaks: "
        + (
            ", ".join(
                f"{leak['leak']} ({leak['kind']}): "
                + (
                    f"alarmed after {leak['detected_after_min']} min"
                    if leak["detected_after_min"] is not None
                    else "not alarmed"
                )
                for leak in report["leaks"]
            )
            or "none in this scenario"
        )
        + f"; false alarms: {report['false_alarms']}"
        + "".join(
            f"; {kind} alarms: {count}"
            for kind, count in sorted(report.get("other_alarms", {}).items())
        ),
        "",
        "Targets: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in report["targets"].items()),
    ]
    if report.get("storage"):
        lines += ["", *storage_markdown(report["storage"], currency, window)]
    findings = report.get("config_findings") or []
    if findings:
        lines += ["", "## Config and scenario disagree", ""]
        lines += [f"- {Finding(**finding).line()}" for finding in findings]
    return "\n".join(lines) + "\n"


# The storage table's rows: (label, key in storage_totals or a two-value row, unit).
STORAGE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("grid import", "import_kwh", "kWh"),
    ("grid export", "export_kwh", "kWh"),
    ("PV energy", "pv_kwh", "kWh"),
    ("PV self-consumption", "pv_self_consumption_pct", "%"),
    ("self-sufficiency", "self_sufficiency_pct", "%"),
    ("battery charged / discharged", "charged_discharged", "kWh"),
    ("battery throughput", "battery_throughput_kwh", "kWh"),
    ("equivalent full cycles", "battery_equivalent_full_cycles", ""),
    ("battery losses", "battery_loss_kwh", "kWh"),
    ("SoC min / max", "soc_range", "%"),
    ("SoC outside its limits", "soc_outside_limits_s", "s"),
    ("setpoint beyond a limit (curtailed)", "battery_setpoint_curtailed_kwh", "kWh"),
    ("export revenue", "export_revenue", ""),
    ("net cost (import - export + demand charge)", "net_cost", ""),
    ("energy left in the battery at the end", "battery_stored_kwh", "kWh"),
    ("net cost, stored energy credited", "net_cost_soc_adjusted", ""),
)


def storage_markdown(storage: dict[str, Any], currency: str, window: str) -> list[str]:
    """The storage table of a cell with PV or a battery: baseline (the battery in its vendor
    self-consumption program) beside edgecell."""
    base, ours = storage["baseline"], storage["edgecell"]

    def shown(totals: dict[str, Any], key: str, unit: str) -> str:
        if key == "charged_discharged":
            return (
                f"{totals['battery_charged_kwh']:,.2f} / {totals['battery_discharged_kwh']:,.2f}"
                " kWh"
            )
        if key == "soc_range":
            low, high = totals["battery_soc_min_pct"], totals["battery_soc_max_pct"]
            return "n/a" if low is None or high is None else f"{low:.1f} / {high:.1f} %"
        value = totals[key]
        if value is None:
            return "n/a"
        unit = unit or (currency if key.startswith(("export_revenue", "net_cost")) else "")
        return f"{value:,.2f} {unit}".rstrip()

    saved = storage.get("net_cost_saved_pct")
    adjusted = storage.get("net_cost_soc_adjusted_saved_pct")
    lines = [
        "## Storage and sun",
        "",
        "| | baseline (vendor self-consumption) | edgecell |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {label} | {shown(base, key, unit)} | {shown(ours, key, unit)} |"
        for label, key, unit in STORAGE_ROWS
    ]
    lines += [
        "",
        f"Net cost saved: {'n/a' if saved is None else f'{saved:+.1f} %'} (the import bill, less"
        f" the export revenue, plus the demand charge prorated on the peak {window} demand);"
        f" with the energy left in the battery credited at the off-peak price:"
        f" {'n/a' if adjusted is None else f'{adjusted:+.1f} %'}.",
    ]
    return lines


def plot(baseline: RunResult, edgecell: RunResult, out: Path, scenario: Scenario) -> list[Path]:
    """One PNG per series, baseline beside edgecell. Needs matplotlib (the `report` extra)."""
    import matplotlib  # noqa: PLC0415  (optional dependency)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written: list[Path] = []
    for point, label in series_labels(scenario).items():
        fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
        ax.plot(baseline.times_h, baseline.series[point], label="baseline", lw=0.8, alpha=0.8)
        ax.plot(edgecell.times_h, edgecell.series[point], label="edgecell", lw=0.8, alpha=0.8)
        ax.set_xlabel("simulated hours")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
        fig.tight_layout()
        path = out / f"{point.replace('.', '_')}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


async def run_pair(
    scenario: Scenario,
    config: Config,
    *,
    hours: float | None = None,
    cycle: float = 5.0,
    seed: int | None = None,
    progress: bool = True,
) -> tuple[RunResult, RunResult]:
    """The baseline and the edgecell run of the same scenario and seed."""
    hours = hours if hours is not None else scenario.duration / 3600
    runs = [
        await run_once(
            scenario, config, rules=rules, hours=hours, cycle=cycle, seed=seed, progress=progress
        )
        for rules in (False, True)
    ]
    baseline, edgecell = runs
    return baseline, edgecell


def write_report(
    baseline: RunResult,
    edgecell: RunResult,
    scenario: Scenario,
    out: Path,
    *,
    plots: bool = True,
    findings: Sequence[Finding] = (),
) -> dict[str, Any]:
    """Compare the two runs; write report.json, report.md and (with matplotlib) the plots.
    `findings`: where the config and the scenario disagree (controller/cellcheck.py)."""
    out.mkdir(parents=True, exist_ok=True)
    report = compare(baseline, edgecell, scenario)
    report["config_findings"] = [finding.as_dict() for finding in findings]
    report["currency"] = scenario.tariff.currency
    report["wall_s"] = round(baseline.wall_s + edgecell.wall_s, 1)
    report["plots"] = [p.name for p in plot(baseline, edgecell, out, scenario)] if plots else []
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return report

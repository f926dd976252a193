"""The battery rules alone on the plant, without protocols: a quick way to size and tune them.

`python -m bench.battery_rules --scenario solar-day [--set pv_self_consumption.reserve_pct=90]`
steps the simulated plant through a day twice: once alone (the battery in its vendor
self-consumption program: the report's baseline), once with the battery rules of
configs/cosim-storage.yaml (and only those: no other rule, no Modbus) writing the battery's
setpoint every cycle, the higher-priority rule first, as the engine arbitrates. It prints the
peak 15-min demand, the net cost (import - export + demand charge, the energy left in the
battery credited at the off-peak price), the battery's throughput and losses and its lowest
SoC. The peak is the billed one (clock-aligned windows, as the report's); the meter's sliding
peak beside it. `edgecell report` is the measurement (through the SunSpec device, with every
rule); this is the seconds-long estimate beside it (bench/README.md, "Battery rules").
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import TypeAdapter

from controller.model import Quality, Sample
from controller.rules.catalog import build_domain_rule
from controller.rules.config import RuleConfig
from controller.rules.energy.battery import BatteryRule
from controller.rules.rule import Now
from controller.scheduler.config import TariffConfig
from drivers.sim.plant import Plant
from drivers.sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("battery_peak_shaving", "pv_self_consumption")


@dataclass
class DayFigures:
    peak_kw: float  # billed: the highest clock-aligned window average (the report's peak)
    meter_peak_kw: float  # the meter's sliding-window peak (not billed)
    net_cost: float
    import_kwh: float
    discharged_kwh: float
    loss_kwh: float
    soc_min_pct: float | None
    soc_outside_s: float


def battery_rules(config: Path, changes: list[str]) -> list[BatteryRule]:
    """The battery rules of `config`, with `kind.key=value` changes, highest priority first."""
    data: dict[str, Any] = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings = [rule for rule in data["rules"] if rule["kind"] in KINDS]
    for change in changes:
        target, value = change.split("=", 1)
        kind, key = target.split(".", 1)
        for rule in settings:
            if rule["kind"] == kind:
                rule[key] = yaml.safe_load(value)
    adapter: TypeAdapter[Any] = TypeAdapter(RuleConfig)
    # The config's one tariff: battery_peak_shaving's prices (dear_recharge_soc_pct).
    tariff = TariffConfig.model_validate(data["tariff"]) if "tariff" in data else None
    rules = [
        build_domain_rule(adapter.validate_python(rule), tariff=tariff) for rule in settings
    ]
    battery = [rule for rule in rules if isinstance(rule, BatteryRule)]
    return sorted(battery, key=lambda rule: -rule.priority)


def run_day(
    scenario: Scenario, rules: list[BatteryRule], *, hours: float = 24.0, dt: float = 5.0
) -> DayFigures:
    plant = Plant(scenario)
    battery = scenario.battery
    assert battery is not None, "the scenario has no battery"
    t = 0.0
    while plant.time_s < hours * 3600.0 - 1e-9:
        plant.step(dt)
        t += dt
        if not rules:
            continue
        cfg = rules[0].config
        values = {
            cfg.power: plant.read_point("site_meter.active_power_kw"),
            cfg.battery_power: plant.read_point("battery.power_kw"),
            cfg.soc: plant.read_point("battery.soc_pct"),
        }
        snapshot = {
            tag: Sample(tag.split(".", 1)[0], tag.split(".", 1)[1], value, Quality.GOOD, 0, 0)
            for tag, value in values.items()
        }
        now = Now(t, round(t * 1000))
        for rule in rules:
            proposals = rule.evaluate(snapshot, now)
            if proposals:
                pct = float(proposals[0].value)
                limit = rule.config.max_discharge_kw if pct >= 0 else rule.config.max_charge_kw
                plant.write_point("battery.setpoint_kw", pct / 100.0 * limit)
                break
    truth = plant.ground_truth().as_dict()
    stored_kwh = (
        (truth["battery_final_soc_pct"] - truth["battery_initial_soc_pct"])
        / 100.0
        * battery.usable_kwh
    )
    net = (
        truth["energy_cost"]
        - truth["export_revenue"]
        + truth["demand_charge_prorated"]
        - stored_kwh * scenario.tariff.lowest_price_per_kwh
    )
    return DayFigures(
        peak_kw=truth["billing_demand_kw"],
        meter_peak_kw=truth["max_demand_kw"],
        net_cost=net,
        import_kwh=truth["site_import_kwh"],
        discharged_kwh=truth["battery_discharged_kwh"],
        loss_kwh=truth["battery_loss_kwh"],
        soc_min_pct=truth["battery_soc_min_pct"],
        soc_outside_s=truth["seconds_soc_outside_limits"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--scenario", default="solar-day")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cosim-storage.yaml")
    parser.add_argument("--set", action="append", default=[], help="kind.key=value")
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    scenario = load_scenario(args.scenario)
    base = run_day(scenario, [], hours=args.hours)
    ours = run_day(scenario, battery_rules(args.config, args.set), hours=args.hours)
    for label, day in (("baseline (vendor program)", base), ("battery rules", ours)):
        soc = "n/a" if day.soc_min_pct is None else f"{day.soc_min_pct:.1f} %"
        line = (
            f"{label:>26}: peak {day.peak_kw:6.1f} kW (meter {day.meter_peak_kw:.1f}),"
            f" net cost {day.net_cost:7.2f},"
            f" import {day.import_kwh:7.1f} kWh, discharged {day.discharged_kwh:6.1f} kWh,"
            f" losses {day.loss_kwh:5.1f} kWh, SoC min {soc}, SoC outside {day.soc_outside_s:g} s"
        )
        print(line)
    peak = 100.0 * (base.peak_kw - ours.peak_kw) / base.peak_kw
    cost = 100.0 * (base.net_cost - ours.net_cost) / base.net_cost
    print(f"peak saved {peak:.1f} %, net cost saved {cost:.1f} % (stored energy credited)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

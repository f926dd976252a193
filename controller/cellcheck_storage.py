"""Where the battery and PV a config repeats by hand disagree with the scenario's plant: the
scheduler's battery and array, the battery rules' power limits and billing windows.

Found on cells the scheduler was not built on (session 8): every number here is copied from a
data sheet into the config, and a copy from the shipped example survives unnoticed. A battery
rule writes its rate as a % of its `max_discharge_kw` / `max_charge_kw` (SunSpec 124 OutWRte,
% of the battery's limit): another figure than the battery's scales every rate it writes. A
plan made on another capacity, reserve or array, or on a clock in another zone, plans another
cell. A rule that holds a 15-min average where the utility bills 30-min windows holds another
peak than the billed one. Part of controller/cellcheck.py's `check_cell`; pure, like it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from controller.rules.energy.battery import BatteryControlConfig
from controller.rules.energy.battery_peak_shaving import BatteryPeakShavingConfig
from controller.rules.energy.battery_schedule import BatteryScheduleConfig

if TYPE_CHECKING:
    from controller.cellcheck import Finding
    from controller.config import Config
    from drivers.sim.scenario import Scenario


def storage_findings(config: Config, scenario: Scenario) -> list[Finding]:
    """The scheduler's battery and PV, and every battery rule's limits and window, against the
    scenario's battery, array and tariff."""
    findings: list[Finding] = []
    for rule in config.rules:
        if isinstance(rule, BatteryControlConfig):
            findings += _rule(rule, scenario)
    scheduler = config.scheduler
    if scheduler is None:
        return findings
    if scheduler.battery is not None and scenario.battery is not None:
        plan, plant = scheduler.battery, scenario.battery
        for ours, theirs, key, why in (
            (plan.capacity_kwh, plant.usable_kwh, "capacity_kwh", "usable_kwh"),
            (plan.max_charge_kw, plant.max_charge_kw, "max_charge_kw", "max_charge_kw"),
            (plan.max_discharge_kw, plant.max_discharge_kw, "max_discharge_kw", "max_discharge_kw"),
        ):
            findings += _differs(
                f"scheduler.battery.{key}",
                f"battery.{why}",
                ours,
                theirs,
                "the plan is made for another battery than the cell's",
            )
        if plan.reserve_pct < plant.soc_min_pct:
            findings.append(
                _finding(
                    "scheduler.battery.reserve_pct",
                    "battery.soc_min_pct",
                    plan.reserve_pct,
                    plant.soc_min_pct,
                    "below the battery's own floor: the plan counts on energy the BMS keeps",
                )
            )
        if plan.soc_max_pct > plant.soc_max_pct:
            findings.append(
                _finding(
                    "scheduler.battery.soc_max_pct",
                    "battery.soc_max_pct",
                    plan.soc_max_pct,
                    plant.soc_max_pct,
                    "above the battery's own ceiling: the plan stores what the BMS refuses",
                )
            )
    if scheduler.pv is not None and scenario.pv is not None:
        ours_pv, array = scheduler.pv, scenario.pv
        for key, ours_value, theirs_value in (
            ("kwp", ours_pv.kwp, array.kwp),
            ("latitude", ours_pv.latitude, array.latitude),
            ("longitude", ours_pv.longitude, array.longitude),
            ("tilt_deg", ours_pv.tilt_deg, array.tilt_deg),
            ("azimuth_deg", ours_pv.azimuth_deg, array.azimuth_deg),
            ("inverter_kw", ours_pv.inverter_ac_kw, array.inverter_ac_kw),
        ):
            findings += _differs(
                f"scheduler.pv.{key}",
                f"pv.{key}",
                ours_value,
                theirs_value,
                "the plan's clear sky is another array's",
            )
        start = scenario.start
        ours_offset = start.replace(tzinfo=ZoneInfo(ours_pv.wall_clock_zone)).utcoffset()
        theirs_offset = start.replace(tzinfo=ZoneInfo(array.timezone)).utcoffset()
        if ours_offset != theirs_offset:
            findings.append(
                _finding(
                    "scheduler.pv.wall_clock_zone",
                    "pv.timezone",
                    ours_pv.wall_clock_zone,
                    array.timezone,
                    "the co-simulation's clock is the scenario's local time: read in another"
                    " zone, the plan's sun rises at another hour",
                )
            )
    return findings


def _rule(rule: BatteryControlConfig, scenario: Scenario) -> list[Finding]:
    findings: list[Finding] = []
    plant = scenario.battery
    if plant is not None:
        for key, ours, theirs in (
            ("max_charge_kw", rule.max_charge_kw, plant.max_charge_kw),
            ("max_discharge_kw", rule.max_discharge_kw, plant.max_discharge_kw),
        ):
            findings += _differs(
                f"rules[{rule.name}].{key}",
                f"battery.{key}",
                ours,
                theirs,
                "the rate is written as a % of this: every kW the rule asks is scaled by the ratio",
            )
    if isinstance(rule, BatteryPeakShavingConfig | BatteryScheduleConfig):
        findings += _differs(
            f"rules[{rule.name}].window",
            "tariff.demand_window",
            rule.window,
            scenario.tariff.demand_window,
            "the rule keeps another window than the one the tariff bills: the billed peak is"
            " not the one held",
        )
    return findings


def _finding(config: str, scenario: str, ours: object, theirs: object, why: str) -> Finding:
    from controller.cellcheck import Finding  # noqa: PLC0415  (cellcheck imports this module)

    return Finding("warning", config, scenario, ours, theirs, why)


def _differs(
    config: str, scenario: str, ours: float | None, theirs: float, why: str
) -> list[Finding]:
    """The finding, unless the two agree (or the config leaves the value out)."""
    if ours is None or abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)):
        return []
    return [_finding(config, scenario, ours, theirs, why)]

"""Where a controller config and the simulated cell's scenario disagree about the plant.

A config describes the cell by hand (devices, machines, the shift plan, the water's chemistry
limits, the compressor's rated flow); the scenario describes the same cell to the simulator. When
the two drift apart, a savings report measures a controller tuned for another cell, and nothing
says so. `check_cell(config, scenario)` compares what can be compared and returns findings; it
changes nothing (`edgecell report` prints them before running and keeps them in the report).

Config tags are resolved to plant points through the scenario's own protocol faces: a Modbus tag
by (device, table, address), an OPC UA tag by its string node id. A machine is the one whose
`<machine>.state` point a tag reads. Times: the co-simulation's clock reads the scenario's local
times as UTC (controller/cosim.py), so schedules are evaluated at those instants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controller.cellcheck_storage import storage_findings
from controller.config import Config
from controller.rules.energy.chiller_reset import ChillerResetConfig
from controller.rules.energy.compressed_air import CompressedAirConfig
from controller.rules.energy.idle_standby import IdleStandbyConfig
from controller.rules.energy.peak_shaving import PeakShavingConfig
from controller.rules.energy.requirement import Requirement
from controller.rules.schedule import Schedule, ScheduleConfig
from controller.rules.water.cooling_tower_blowdown import BlowdownConfig
from controller.rules.water.rinse_reuse import RinseReuseConfig
from controller.rules.water.tower_balance import TowerBalanceConfig
from controller.rules.water.water_leak import WaterLeakConfig
from drivers.sim.scenario import WEEKDAYS, Scenario, seconds_of_day

Severity = Literal["warning", "info"]
_WEEK_MIN = 7 * 24 * 60
_SHOWN_STRETCHES = 4  # stretches of a schedule mismatch named in one finding


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement: the config's path and value, the scenario's field and value."""

    severity: Severity
    config: str  # e.g. `rules[tower_blowdown].limit_us_cm`, `devices[meter-2]`
    scenario: str  # e.g. `cooling_tower.max_conductivity_us_cm`
    config_value: Any
    scenario_value: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.severity}: {self.config} = {self.config_value!r} vs scenario {self.scenario}"
            f" = {self.scenario_value!r}: {self.message}"
        )


def check_cell(config: Config, scenario: Scenario) -> list[Finding]:
    """Every disagreement between the config and the scenario that the schemas let us see."""
    points = _tag_points(config, scenario)
    findings = _devices(config, scenario) + _tags(config, scenario, points)
    for rule in config.rules:
        if isinstance(rule, IdleStandbyConfig):
            findings += _machines(rule, scenario, points)
            findings += _production(rule, scenario)
        elif isinstance(rule, WaterLeakConfig):
            findings += _quiet_hours(rule, scenario)
        elif isinstance(rule, BlowdownConfig):
            findings += _tower(rule, scenario)
        elif isinstance(rule, TowerBalanceConfig):
            findings += _tower_balance(rule, scenario)
        elif isinstance(rule, RinseReuseConfig):
            findings += _rinse(rule, scenario)
        elif isinstance(rule, CompressedAirConfig):
            findings += _compressor(rule, scenario)
            findings += _laxer(rule.name, "critical", rule.critical, points, scenario)
        elif isinstance(rule, ChillerResetConfig):
            findings += _laxer(rule.name, "process", rule.process, points, scenario)
        elif isinstance(rule, PeakShavingConfig):
            findings += _billing_window(rule, scenario)
    findings += _tariff(config, scenario)
    findings += storage_findings(config, scenario)
    covered = {
        points.get(machine.state)
        for rule in config.rules
        if isinstance(rule, IdleStandbyConfig)
        for machine in rule.machines
    }
    for machine in scenario.machines:
        if f"{machine.name}.state" not in covered:
            findings.append(
                Finding(
                    "info",
                    "rules[kind=idle_standby].machines",
                    f"machines[{machine.name}]",
                    None,
                    machine.name,
                    "no idle_standby machine reads this machine's state: it is never put to"
                    " standby",
                )
            )
    return findings


# --- devices and tags -------------------------------------------------------------------------


def tag_points(config: Config, scenario: Scenario) -> dict[str, str]:
    """`device.tag` of the config -> the plant point the scenario serves at that place (the
    scheduler report finds the chargers and tanks the scheduler plans this way)."""
    return _tag_points(config, scenario)


def _tag_points(config: Config, scenario: Scenario) -> dict[str, str]:
    """`device.tag` of the config -> the plant point the scenario serves at that place."""
    modbus = {
        (device.name, reg.table.value, reg.address): reg.point
        for device in scenario.modbus_devices
        for reg in device.registers
    }
    opcua = {
        (device.name, spec.node): point
        for device in scenario.opcua_devices
        for obj in device.objects
        for point, spec in obj.points.items()
    }
    resolved: dict[str, str] = {}
    for device in config.devices:
        for tag in getattr(device, "tags", []):
            point: str | None = None
            if device.driver == "modbus":
                point = modbus.get((device.name, tag.table.value, tag.address))
            elif device.driver == "opcua" and tag.node is not None:
                point = opcua.get((device.name, tag.node.rsplit("s=", 1)[-1]))
            if point is not None:
                resolved[f"{device.name}.{tag.name}"] = point
    return resolved


def _devices(config: Config, scenario: Scenario) -> list[Finding]:
    # SunSpec devices (the PV inverter, the battery) are served over Modbus TCP too.
    served = (
        {d.name: "modbus" for d in scenario.modbus_devices}
        | {d.name: "opcua" for d in scenario.opcua_devices}
        | {d.name: "modbus" for d in scenario.sunspec_devices}
    )
    polled = {d.name: d.driver for d in config.devices}
    findings = [
        Finding(
            "warning",
            f"devices[{name}]",
            "modbus_devices/opcua_devices",
            driver,
            served.get(name),
            "the scenario serves no such device: it stays unreachable in the co-simulation"
            if name not in served
            else f"the scenario serves it over {served[name]}",
        )
        for name, driver in polled.items()
        if served.get(name) != driver
    ]
    findings += [
        Finding(
            "info",
            "devices",
            f"{driver}_devices[{name}]",
            None,
            name,
            "the config does not poll this simulated device",
        )
        for name, driver in served.items()
        if name not in polled
    ]
    return findings


def _tags(config: Config, scenario: Scenario, points: dict[str, str]) -> list[Finding]:
    """Tags of a served device at a place (table and address, or node) the scenario does not
    serve: they would read nothing."""
    served = {d.name for d in scenario.modbus_devices} | {d.name for d in scenario.opcua_devices}
    findings: list[Finding] = []
    for device in config.devices:
        if device.name not in served:
            continue  # the device itself is a finding
        for tag in getattr(device, "tags", []):
            key = f"{device.name}.{tag.name}"
            if key in points:
                continue
            where = f"{tag.table.value} {tag.address}" if device.driver == "modbus" else tag.node
            findings.append(
                Finding(
                    "warning",
                    f"devices[{device.name}].tags[{tag.name}]",
                    f"devices[{device.name}]",
                    where,
                    None,
                    "the simulated device serves no point there",
                )
            )
    return findings


def _machines(rule: IdleStandbyConfig, scenario: Scenario, points: dict[str, str]) -> list[Finding]:
    machines = {f"{m.name}.state" for m in scenario.machines}
    return [
        Finding(
            "warning",
            f"rules[{rule.name}].machines[{machine.name}].state",
            "machines",
            machine.state,
            points.get(machine.state),
            "the tag reads no machine's state in the scenario",
        )
        for machine in rule.machines
        if points.get(machine.state) not in machines
    ]


# --- shifts -----------------------------------------------------------------------------------


def _monday(scenario: Scenario) -> datetime:
    start = scenario.start.replace(hour=0, minute=0, second=0, microsecond=0)
    return start - timedelta(days=start.weekday())


def _scenario_minutes(scenario: Scenario, *, on_site: bool) -> list[bool]:
    """Each minute of the scenario's week: producing (shifts less breaks and idle periods), or
    with `on_site` people and services on site (shifts and the warm-up before them)."""
    week = [False] * _WEEK_MIN
    schedule = scenario.schedule
    lead = round(schedule.warmup / 60) if on_site else 0
    for shift in schedule.shifts:
        begin, end = round(seconds_of_day(shift.start) / 60), round(seconds_of_day(shift.end) / 60)
        for day in shift.days:
            offset = WEEKDAYS.index(day) * 1440
            for minute in range(begin - lead, end):
                week[(offset + minute) % _WEEK_MIN] = True
    if on_site:
        return week
    for pause in [*schedule.breaks, *schedule.idle]:
        begin = round(seconds_of_day(pause.start) / 60)
        for day in pause.days:
            offset = WEEKDAYS.index(day) * 1440
            for minute in range(begin, begin + round(pause.duration / 60)):
                week[(offset + minute) % _WEEK_MIN] = False
    return week


def _config_minutes(schedule: ScheduleConfig, periods: list[str], scenario: Scenario) -> list[bool]:
    clock = Schedule(schedule)
    monday = _monday(scenario)
    # The co-simulation's clock: the scenario's local time read as UTC.
    base_ms = int(monday.replace(tzinfo=UTC).timestamp() * 1000)
    return [clock.period_at(base_ms + m * 60_000) in periods for m in range(_WEEK_MIN)]


def _stretches(flags: list[bool]) -> list[str]:
    """`mon 05:30-06:00` for each run of True minutes in a week."""
    out: list[str] = []
    minute = 0
    while minute < _WEEK_MIN:
        if not flags[minute]:
            minute += 1
            continue
        end = minute
        while end < _WEEK_MIN and flags[end]:
            end += 1
        day, begin = divmod(minute, 1440)
        last = (end - day * 1440) if end - day * 1440 <= 1440 else 1440
        out.append(
            f"{WEEKDAYS[day]} {begin // 60:02d}:{begin % 60:02d}-{last // 60:02d}:{last % 60:02d}"
        )
        minute = end
    return out


def _summary(stretches: list[str]) -> str:
    shown = ", ".join(stretches[:_SHOWN_STRETCHES])
    more = len(stretches) - _SHOWN_STRETCHES
    return shown + (f" and {more} more" if more > 0 else "")


def _production(rule: IdleStandbyConfig, scenario: Scenario) -> list[Finding]:
    ours = _config_minutes(rule.schedule, rule.production_periods, scenario)
    theirs = _scenario_minutes(scenario, on_site=False)
    findings: list[Finding] = []
    for flags, what in (
        ([a and not b for a, b in zip(ours, theirs, strict=True)], "production in the config only"),
        (
            [b and not a for a, b in zip(ours, theirs, strict=True)],
            "production in the scenario only",
        ),
    ):
        stretches = _stretches(flags)
        if stretches:
            findings.append(
                Finding(
                    "warning",
                    f"rules[{rule.name}].schedule",
                    "schedule.shifts/breaks/idle",
                    rule.production_periods,
                    [s.name for s in scenario.schedule.shifts],
                    f"{what}: {_summary(stretches)}",
                )
            )
    return findings


def _quiet_hours(rule: WaterLeakConfig, scenario: Scenario) -> list[Finding]:
    if rule.quiet_hours is None:
        return []
    quiet = _config_minutes(rule.quiet_hours.schedule, rule.quiet_hours.periods, scenario)
    on_site = _scenario_minutes(scenario, on_site=True)
    stretches = _stretches([a and b for a, b in zip(quiet, on_site, strict=True)])
    if not stretches:
        return []
    return [
        Finding(
            "warning",
            f"rules[{rule.name}].quiet_hours",
            "schedule.shifts (with warmup)",
            rule.quiet_hours.periods,
            [s.name for s in scenario.schedule.shifts],
            f"quiet hours while the scenario's site is occupied: {_summary(stretches)}",
        )
    ]


# --- chemistry and the compressor --------------------------------------------------------------


def _differs(finding: Finding) -> list[Finding]:
    """The finding, unless its two values agree (or the config leaves the value out)."""
    ours, theirs = finding.config_value, finding.scenario_value
    if ours is None or abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)):
        return []
    return [finding]


def _tower(rule: BlowdownConfig, scenario: Scenario) -> list[Finding]:
    tower = scenario.cooling_tower
    limit = tower.max_conductivity_us_cm
    laxer = rule.limit_us_cm > limit
    return _differs(
        Finding(
            "warning" if laxer else "info",
            f"rules[{rule.name}].limit_us_cm",
            "cooling_tower.max_conductivity_us_cm",
            rule.limit_us_cm,
            limit,
            "above the water's chemistry limit: the tower is run into scale"
            if laxer
            else "below the water's chemistry limit: more blowdown than the chemistry needs",
        )
    ) + _makeup_differs(rule.name, rule.makeup_us_cm, scenario, "")


def _makeup_differs(
    rule: str, makeup_us_cm: float | None, scenario: Scenario, why: str
) -> list[Finding]:
    """A tower rule's `makeup_us_cm` against the scenario's makeup water (blowdown and balance)."""
    return _differs(
        Finding(
            "warning",
            f"rules[{rule}].makeup_us_cm",
            "cooling_tower.makeup_conductivity_us_cm",
            makeup_us_cm,
            scenario.cooling_tower.makeup_conductivity_us_cm,
            f"the makeup water's conductivity differs{why}",
        )
    )


def _tower_balance(rule: TowerBalanceConfig, scenario: Scenario) -> list[Finding]:
    tower = scenario.cooling_tower
    return _makeup_differs(
        rule.name, rule.makeup_us_cm, scenario, ": the cycles and the balance are off"
    ) + _differs(
        Finding(
            "warning",
            f"rules[{rule.name}].volume_m3",
            "cooling_tower.system_volume_m3",
            rule.volume_m3,
            tower.system_volume_m3,
            "the system volume differs: the stored solids are misjudged",
        )
    )


def _rinse(rule: RinseReuseConfig, scenario: Scenario) -> list[Finding]:
    rinse = scenario.rinse
    limit = rinse.quality_limit_us_cm
    laxer = rule.limit_us_cm > limit
    return _differs(
        Finding(
            "warning" if laxer else "info",
            f"rules[{rule.name}].limit_us_cm",
            "rinse.quality_limit_us_cm",
            rule.limit_us_cm,
            limit,
            "above the rinse's quality limit: parts rinsed out of spec"
            if laxer
            else "below the rinse's quality limit: more fresh water than the quality needs",
        )
    ) + _differs(
        Finding(
            "warning",
            f"rules[{rule.name}].mains_us_cm",
            "rinse.fresh_conductivity_us_cm",
            rule.mains_us_cm,
            rinse.fresh_conductivity_us_cm,
            "the mains water's conductivity differs",
        )
    )


def _compressor(rule: CompressedAirConfig, scenario: Scenario) -> list[Finding]:
    if rule.leak_test is None:
        return []
    return _differs(
        Finding(
            "warning",
            f"rules[{rule.name}].leak_test.rated_flow_m3_min",
            "compressed_air.rated_flow_m3_min",
            rule.leak_test.rated_flow_m3_min,
            scenario.compressed_air.rated_flow_m3_min,
            "the compressor's rated flow differs: the leak estimate in m3/min is scaled wrong",
        )
    )


def _billing_window(rule: PeakShavingConfig, scenario: Scenario) -> list[Finding]:
    """Peak shaving must keep the windows the utility bills: their length and alignment."""
    tariff = scenario.tariff
    findings = _differs(
        Finding(
            "warning",
            f"rules[{rule.name}].window",
            "tariff.demand_window",
            rule.window,
            tariff.demand_window,
            "the rule keeps another window than the one the tariff bills: the billed peak is"
            " not the one shaved",
        )
    )
    if rule.alignment != tariff.demand_alignment:
        findings.append(
            Finding(
                "warning",
                f"rules[{rule.name}].alignment",
                "tariff.demand_alignment",
                rule.alignment,
                tariff.demand_alignment,
                "the rule lays its windows otherwise than the tariff bills them",
            )
        )
    return findings


def _tariff(config: Config, scenario: Scenario) -> list[Finding]:
    """The controller's tariff (the scheduler's prices) is the scenario's: one schema
    (controller/tariff.py), compared key by key; its zone is the co-simulation's (UTC)."""
    tariff = config.tariff
    if tariff is None:
        return []
    findings = []
    theirs = scenario.tariff.model_dump()
    for key, ours in tariff.model_dump(exclude={"timezone"}).items():
        if ours != theirs[key]:
            findings.append(
                Finding(
                    "warning",
                    f"tariff.{key}",
                    f"tariff.{key}",
                    ours,
                    theirs[key],
                    "the scheduler plans against other prices than the cell is billed",
                )
            )
    if tariff.timezone != "UTC":
        findings.append(
            Finding(
                "warning",
                "tariff.timezone",
                "start",
                tariff.timezone,
                "UTC",
                "the co-simulation's clock reads the scenario's local time as UTC: the tariff's"
                " periods would fall at other hours",
            )
        )
    return findings


def _laxer(
    name: str, key: str, requirements: list[Requirement], points: dict[str, str], scenario: Scenario
) -> list[Finding]:
    """A process requirement on a point whose limit the scenario knows, set laxer than that limit
    (a stricter one is the usual guard band and is not reported)."""
    limits = {
        "chiller.return_temp_c": (
            "max",
            "chilled_water.process_limit_c",
            scenario.chilled_water.process_limit_c,
        ),
        "air.far_end_pressure_bar": (
            "min",
            "compressed_air.critical_min_bar",
            scenario.compressed_air.critical_min_bar,
        ),
    }
    findings: list[Finding] = []
    for index, requirement in enumerate(requirements):
        known = limits.get(points.get(requirement.tag, ""))
        if known is None:
            continue
        side, field, limit = known
        value = requirement.max if side == "max" else requirement.min
        if value is None or (value <= limit if side == "max" else value >= limit):
            continue
        findings.append(
            Finding(
                "warning",
                f"rules[{name}].{key}[{index}].{side}",
                field,
                value,
                limit,
                "laxer than the process limit: the rule lets the process break it",
            )
        )
    return findings

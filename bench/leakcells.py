"""`python -m bench.leakcells`: the water-leak rules (water_leak, tower_balance) alone on
generated cells (bench/cellgen.py), each against its cell's plant in lock-step with no protocol
and no other rule, scored as `edgecell report` scores them (controller/alarmscore.py): a day in
seconds instead of a co-simulation's minutes, to check leak detection over many cells.

The plant runs on its own controls (the baseline's: no idle_standby, no peak shaving), so the
machines' states are the shift plan's; the leak rules write nothing (no isolation valve in the
generated configs), and what they read (the main meter, the tower and rinse submeters, the
machines' states, the tower's conductivity and bleed) does not depend on the other rules but
through those states. The figures of record stay `python -m bench --cells` (bench/cells.py).

    .venv/bin/python -m bench.leakcells [--seed 1] [--first 0] [--cells 30] [--hours 24]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from bench.cellgen import generate
from controller.alarmscore import (
    WATER_LEAK_KINDS,
    detection_limits,
    leak_scores,
    under_detection_limit,
)
from controller.logs import configure_logging
from controller.model import Quality, Sample, Value
from controller.rules.domain import DomainRule
from controller.rules.rule import Now
from controller.rules.water.tower_balance import TowerBalance, TowerBalanceConfig
from controller.rules.water.water_leak import WaterLeak, WaterLeakConfig
from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import Scenario

CYCLE = 5.0  # the co-simulation's cycle (bench/cells.py's default)
LATE_MIN = 30.0


def tag_points(scenario: Scenario, config: dict[str, Any]) -> dict[str, str]:
    """`device.tag` of the config -> the plant point its Modbus register serves."""
    served = {
        device.name: {register.address: register.point for register in device.registers}
        for device in scenario.modbus_devices
    }
    points: dict[str, str] = {}
    for device in config["devices"]:
        registers = served.get(device["name"], {})
        for tag in device.get("tags", []):
            point = registers.get(tag.get("address"))
            if point is not None:
                points[f"{device['name']}.{tag['name']}"] = point
    return points


def leak_configs(config: dict[str, Any]) -> list[WaterLeakConfig | TowerBalanceConfig]:
    """The config's water_leak and tower_balance rules, validated."""
    configs: list[WaterLeakConfig | TowerBalanceConfig] = []
    for settings in config["rules"]:
        if settings["kind"] == "water_leak":
            configs.append(WaterLeakConfig.model_validate(settings))
        elif settings["kind"] == "tower_balance":
            configs.append(TowerBalanceConfig.model_validate(settings))
    return configs


def leak_rule(config: WaterLeakConfig | TowerBalanceConfig) -> DomainRule:
    if isinstance(config, WaterLeakConfig):
        return WaterLeak(config)
    return TowerBalance(config)


def _sample(tag: str, value: Value, ts_ms: int) -> Sample:
    device, name = tag.split(".", 1)
    return Sample(device, name, value, Quality.GOOD, ts_ms, ts_ms)


@dataclass
class _Episode:
    """One alarm's present episode as the report sees it from the retained publications."""

    raised_count: int = 0
    active: bool = False
    first_ms: int = 0
    steps: int = 0


class Findings:
    """The alarm publications `edgecell report` would keep: each raise and each step."""

    def __init__(self) -> None:
        self.alarms: list[dict[str, Any]] = []
        self._episodes: dict[str, _Episode] = {}

    def observe(self, rule: DomainRule, wall_ms: int) -> None:
        for condition in rule.alarm_conditions():
            if condition.indicates != "water_leak":
                continue
            episode = self._episodes.setdefault(condition.name, _Episode())
            base = {
                "topic": f"cell/alarms/{condition.name}",
                "indicates": condition.indicates,
                "location": condition.location,
            }
            if condition.active and not episode.active:
                episode.raised_count += 1
                episode.active, episode.first_ms, episode.steps = True, wall_ms, 0
                self.alarms.append(
                    base | {"first": wall_ms, "steps": 0, "raised_count": episode.raised_count}
                )
            elif condition.active and condition.steps > episode.steps:
                episode.steps = condition.steps
                self.alarms.append(
                    base
                    | {
                        "first": episode.first_ms,
                        "steps": condition.steps,
                        "stepped_at": wall_ms,
                        "raised_count": episode.raised_count,
                    }
                )
            elif not condition.active:
                episode.active = False


def leak_day(seed: int, index: int, hours: float = 24.0) -> dict[str, Any]:
    """The water leaks of generated cell (seed, index) and how the leak rules found them."""
    cell = generate(seed, index)
    scenario = Scenario.model_validate(cell.scenario)
    points = tag_points(scenario, cell.config)
    configs = leak_configs(cell.config)
    rules = [leak_rule(config) for config in configs]
    tags = sorted({tag for config in configs for _, tag in config.input_tags()})
    unserved = [tag for tag in tags if tag not in points]
    if unserved:
        raise ValueError(f"{cell.name}: no plant point serves {unserved}")
    plant = Plant(scenario)
    findings = Findings()
    for cycle in range(round(hours * 3600 / CYCLE)):
        plant.step(CYCLE)
        now = Now(plant.time_s, round(plant.now.replace(tzinfo=UTC).timestamp() * 1000))
        snap = {tag: _sample(tag, plant.read_point(points[tag]), now.wall_ms) for tag in tags}
        for rule in rules:
            if cycle == 0:
                rule.restart(snap, now)
            rule.evaluate(snap, now)
            findings.observe(rule, now.wall_ms)
    truth = plant.ground_truth().as_dict()
    scored, false_alarms = leak_scores(truth, findings.alarms)
    watched = set(WATER_LEAK_KINDS.values())
    under = under_detection_limit(scenario.events.leaks, detection_limits(configs))
    rates = {leak.name: getattr(leak, "m3_h", None) for leak in scenario.events.leaks}
    leaks = [
        entry
        | {
            "m3_h": rates[entry["leak"]],
            "under_detection_limit": entry["leak"] in under,
            # Started with less than LATE_MIN of the run left and not alarmed yet: not due.
            "due": entry["detected_after_min"] is not None
            or entry["true_start_s"] <= hours * 3600 - LATE_MIN * 60,
        }
        for entry in scored
        if entry["kind"] == "water"
        and entry["location"] in watched
        and entry["true_start_s"] is not None
    ]
    return {"cell": cell.name, "false_alarms": false_alarms, "leaks": leaks}


def row(result: dict[str, Any]) -> str:
    def delay(leak: dict[str, Any]) -> str:
        at = leak["true_start_s"] / 60
        found = leak["detected_after_min"]
        text = "missed" if found is None else f"{found}"
        if leak["under_detection_limit"]:
            text += ", under the detection limit"
        if not leak["due"]:
            text += ", not due"
        return (
            f"{leak['location']} {leak['m3_h']:g} m3/h at {int(at // 60):02d}:{int(at % 60):02d}:"
            f" {text}"
        )

    leaks = "; ".join(delay(leak) for leak in result["leaks"]) or "-"
    return f"| {result['cell']} | {result['false_alarms']} | {leaks} |"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leakcells", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args(argv)
    configure_logging("warning")
    print("| cell | false water-leak alarms | water leaks: delay (min) |")
    print("|---|---:|---|")
    for index in range(args.first, args.first + args.cells):
        print(row(leak_day(args.seed, index, args.hours)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m bench.air_alarms`: the compressed_air rule's leak alarms on generated cells, fast.

The co-simulation (`python -m bench --cells`) runs every rule against the cell's real Modbus
and OPC UA servers, twice, 3-8 min a cell. The air alarms depend on the compressed_air rule and
on what puts the machines in standby (idle_standby: the states that make production modes and
the nights), so this runs those two rules of the cell's own config in lock-step with its plant,
no servers, the other rules off (about 1 min a simulated day), and scores the air alarms as
`edgecell report` does (controller/alarmscore.py). Per cell: false alarms, each air leak's
delay, and the production detection limit: `rise_sigmas` times the median robust spread of
the production windows (at least `rise_above`), as a share of the compressor, m3/min and the
hole that leaks it at the cell's design pressure. bench/README.md, "Session 5: air alarms".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from bench.cellgen import Cell, generate
from controller.alarmscore import leak_scores
from controller.model import Quality, Sample
from controller.rules.energy.compressed_air import CompressedAir, CompressedAirConfig
from controller.rules.energy.idle_standby import IdleStandbyConfig
from controller.rules.kinds import build_rule
from controller.rules.rule import Now, Rule
from drivers.sim.plant.air import orifice_free_air_m3_min_per_bar_abs
from drivers.sim.plant.noise import Disturbance, seeded
from drivers.sim.plant.plant import Plant
from drivers.sim.plant.schedule import Activity
from drivers.sim.scenario import Scenario

_POLL_S = 5.0
_SHARP_EDGED = 0.61  # discharge coefficient of a sharp-edged hole (CAC)
_HEARTBEATS = ("compressor", "chiller", "water", "process")


def modbus_points(cell: Cell) -> dict[str, str]:
    """The config's Modbus tags (`device.tag`) -> the plant points behind their registers."""
    devices = {d["name"]: d for d in cell.scenario["modbus_devices"]}
    points: dict[str, str] = {}
    for device in cell.config["devices"]:
        served = devices.get(device["name"])
        if device.get("driver") != "modbus" or served is None:
            continue
        by_address: dict[int, str] = {}
        for register in served["registers"]:
            by_address.setdefault(register["address"], register["point"])
        for tag in device["tags"]:
            if tag["address"] in by_address:
                points[f"{device['name']}.{tag['name']}"] = by_address[tag["address"]]
    return points


def _rule_config(cell: Cell, kind: str) -> dict[str, Any]:
    configs: list[dict[str, Any]] = [r for r in cell.config["rules"] if r["kind"] == kind]
    return configs[0]


def _snapshot(plant: Plant, points: Mapping[str, str], ms: int) -> dict[str, Sample]:
    snap: dict[str, Sample] = {}
    for tag, point in points.items():
        device, name = tag.split(".", 1)
        snap[tag] = Sample(device, name, plant.read_point(point), Quality.GOOD, ms, ms)
    return snap


class Unexplained:
    """Air the machines use that their power does not show (`--unexplained`): each producing
    machine's air wanders on its own by `share` (a standard deviation of its producing air,
    90 s correlation, as the simulator's work wander) on top of what the plant draws. The
    simulator's air and power follow one work signal exactly; a site's do not."""

    def __init__(self, plant: Plant, share: float) -> None:
        self.plant = plant
        self.wander = [
            Disturbance(seeded(plant.seed, f"unexplained:{m.name}"), share, tau=90.0)
            for m in plant.machines
        ]

    def flow_m3_min(self, dt: float) -> float:
        extra = 0.0
        for machine, wander in zip(self.plant.machines, self.wander, strict=True):
            value = wander.step(dt)
            if machine.activity is Activity.PRODUCING:
                extra += machine.spec.air_m3_min.producing * value
        return extra


def run_cell(cell: Cell, hours: float, unexplained: float = 0.0) -> dict[str, Any]:
    """The two rules on the cell's plant for `hours` (with `unexplained`: air the machines'
    power does not show added to the flow meter); the air alarms scored."""
    plant = Plant(Scenario.model_validate(cell.scenario))
    air_config = CompressedAirConfig.model_validate(_rule_config(cell, "compressed_air"))
    air = CompressedAir(air_config)
    standby = build_rule(IdleStandbyConfig.model_validate(_rule_config(cell, "idle_standby")))
    rules: list[Rule] = [air, standby]
    # What the rules read, required or not (the machines' power is no required input).
    tags = (
        {air_config.setpoint}
        | {tag for _, tag in air_config.input_tags()}
        | {tag for rule in rules for tag in (*rule.inputs, *rule.outputs)}
    )
    points = {tag: point for tag, point in modbus_points(cell).items() if tag in tags}
    start_ms = round(plant.now.replace(tzinfo=UTC).timestamp() * 1000)
    alarms: list[dict[str, Any]] = []
    raised = 0
    last: tuple[bool, int] = (False, 0)
    spreads: list[float] = []
    extra = Unexplained(plant, unexplained) if unexplained > 0 else None
    test = air_config.leak_test
    flow_tag = test.flow if test is not None else None
    for beat in range(1, round(hours * 3600 / _POLL_S) + 1):
        for name in _HEARTBEATS:
            plant.write_point(f"{name}.heartbeat", beat % 30000)
        plant.step(_POLL_S)
        ms = start_ms + round(plant.time_s * 1000)
        now = Now(plant.time_s, ms)
        snap = _snapshot(plant, points, ms)
        if extra is not None and flow_tag is not None:
            read = snap[flow_tag]
            measured = read.value if isinstance(read.value, int | float) else 0.0
            value = measured + extra.flow_m3_min(_POLL_S)
            snap[flow_tag] = Sample(read.device, read.tag, value, read.quality, ms, ms)
        for rule in rules:
            if beat == 1:
                rule.restart(snap, now)
            for proposal in rule.evaluate(snap, now):
                plant.write_point(points[proposal.tag], float(proposal.value))
        estimate = air.air_use.estimate
        if estimate is not None and estimate["state"] == "production" and beat % 12 == 0:
            spreads.append(estimate["spread"])
        (condition,) = [c for c in air.alarm_conditions() if c.name.endswith(".air_leak")]
        state = (condition.active, condition.steps)
        if condition.active and state != last:
            raised += 0 if last[0] else 1
            alarms.append(
                {
                    "topic": f"cell/alarms/{condition.name}",
                    "indicates": condition.indicates,
                    "location": condition.location,
                    "first": ms,
                    "raised_count": raised,
                    "steps": condition.steps,
                    "stepped_at": ms if condition.steps else None,
                    "estimate": dict(condition.estimate),
                }
            )
        last = state
    truth = plant.ground_truth().as_dict()
    truth["leaks"] = [leak for leak in truth["leaks"] if leak["kind"] == "air"]
    scored, false = leak_scores(truth, alarms)
    return {
        "cell": cell.name,
        "false_alarms": false,
        "leaks": [
            {"leak": e["leak"], "start_s": e["true_start_s"], "after_min": e["detected_after_min"]}
            for e in scored
        ],
        "air_leak_findings": [
            {
                "at_h": round((a["first"] - start_ms) / 3_600_000, 2),
                "steps": a["steps"],
                "state": a["estimate"].get("state"),
                "rise": a["estimate"].get("rise"),
                "rise_above": a["estimate"].get("rise_above"),
            }
            for a in alarms
        ],
        "limit": _limit(cell, air_config, spreads),
    }


def _limit(cell: Cell, config: CompressedAirConfig, spreads: list[float]) -> dict[str, Any]:
    """The least production leak the rise can tell from the wander, as a meter's limit."""
    test = config.leak_test
    if not spreads or test is None or test.rise_above is None:
        return {}
    floor = test.rise_above
    if test.explained_by and test.explained_rise_above is not None:
        floor = test.explained_rise_above  # what the machines' work explains is off the flow
    share = max(floor, test.rise_sigmas * statistics.median(spreads))
    compressor = cell.scenario["compressed_air"]
    flow = share * compressor["rated_flow_m3_min"]
    bar_abs = compressor["setpoint_bar"]["default"] + 1.01325
    per_mm2 = orifice_free_air_m3_min_per_bar_abs(1.0, _SHARP_EDGED) * bar_abs
    return {
        "share": round(share, 3),
        "m3_min": round(flow, 3),
        "hole_mm": round((flow / per_mm2) ** 0.5, 2),
        "spread": round(statistics.median(spreads), 4),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.air_alarms", description=__doc__)
    parser.add_argument("cells", nargs="+", help="SEED:INDEX of generated cells (1:3 2:17)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (24)")
    parser.add_argument(
        "--unexplained",
        type=float,
        default=0.0,
        help="air the machines' power does not show: each producing machine's air wanders on"
        " its own by this share (0.04: half the simulator's work wander)",
    )
    args = parser.parse_args(argv)
    for spec in args.cells:
        seed, _, index = spec.partition(":")
        if not (seed.isdigit() and index.isdigit()):
            parser.error(f"{spec!r}: give SEED:INDEX, e.g. 1:3")
        result = run_cell(generate(int(seed), int(index)), args.hours, args.unexplained)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

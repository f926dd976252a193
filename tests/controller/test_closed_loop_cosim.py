"""The closed loop against the simulated cell, in lock-step, through the real Modbus servers.

A PID rule holds the far-end air pressure through a demand step; shadow mode leaves the plant
alone; a dead meter stops the rule that needs it and its output goes back to the fallback; the
simulated PLC returns to local control when the controller's heartbeat stops.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from controller.config import Config, load_config, parse_config
from controller.cosim import CoSimulation
from drivers.sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]

COMPRESSOR = """
gateway: {id: cosim}
devices:
  - name: compressor
    driver: modbus
    link: {transport: tcp, host: 127.0.0.1, port: 5022}
    poll_interval: 5s
    timeout: 500ms
    tags:
      - {name: pressure_bar, address: 0, type: float32}
      - {name: far_end_pressure_bar, address: 6, type: float32}
      - {name: remote, address: 11, type: uint16}
      - name: pressure_setpoint_bar
        address: 100
        type: float32
        writable: true
        min: 6.0
        max: 8.0
        max_step: 0.1
        fallback: 7.5
      - {name: heartbeat, address: 110, type: uint16, writable: true}
  - name: site-meter
    driver: modbus
    link: {transport: tcp, host: 127.0.0.1, port: 5020}
    poll_interval: 5s
    timeout: 300ms
    tags:
      - {name: power_kw, table: input, address: 52, type: float32, scale: 0.001}
actuation:
  cycle: 5s
  verify_timeout: 12s
  heartbeat: {tag: compressor.heartbeat, period: 5s}
rules:
"""

PID_RULE = """
  - kind: pid
    name: far-end-pressure
    mode: {mode}
    measurement: compressor.far_end_pressure_bar
    setpoint: 6.6
    output: compressor.pressure_setpoint_bar
    max_age: 15s
    pid: {{kp: 0.5, ti: 60s, out_min: 6.0, out_max: 8.0}}
"""

# Lower the air pressure while the site draws little power; its input is the site meter.
THRESHOLD_RULE = """
  - kind: threshold
    name: low-load-setback
    when: {tag: site-meter.power_kw, below: 1000, release: 1100}
    for: 10s
    set: {compressor.pressure_setpoint_bar: 6.8}
"""


def _config(rules: str) -> Config:
    return parse_config(COMPRESSOR + rules, "test.yaml")


def _scenario(hour: int, minute: int) -> Scenario:
    """normal-day, started at the given time of its Monday (the plant's schedule follows)."""
    scenario = load_scenario("normal-day")
    start = scenario.start.replace(hour=hour, minute=minute)  # naive: the site's local time
    return scenario.model_copy(update={"start": start})


def _mean(rows: list[tuple[float, Any, Any]], start_h: float, end_h: float, column: int) -> float:
    return statistics.fmean(float(r[column]) for r in rows if start_h <= r[0] < end_h)


async def test_pid_holds_far_end_pressure_through_the_production_start() -> None:
    rows: list[tuple[float, Any, Any]] = []

    def record(sim: CoSimulation) -> None:
        hours = 5.5 + sim.plant.time_s / 3600
        rows.append(
            (
                hours,
                sim.plant.read_point("air.far_end_pressure_bar"),
                sim.plant.read_point("compressor.pressure_setpoint_bar"),
            )
        )

    config = _config(PID_RULE.format(mode="auto"))
    async with CoSimulation(_scenario(5, 30), config, cycle=5.0, opcua=False) as sim:
        await sim.advance(1.5 * 3600, record)  # 05:30 to 07:00; production starts at 06:00
        writes = sim.events.writes()
    # Held at 6.6 bar on average (the compressor's own load/unload band makes it a sawtooth)
    # before and after the demand step, once the loop has settled.
    assert _mean(rows, 5.75, 6.0, 1) == pytest.approx(6.6, abs=0.15)
    assert _mean(rows, 6.33, 7.0, 1) == pytest.approx(6.6, abs=0.15)
    # The demand step needed a higher header setpoint, and the loop found it.
    assert _mean(rows, 6.33, 7.0, 2) > _mean(rows, 5.75, 6.0, 2) + 0.1
    # Every write kept the tag's limits.
    written = [w for w in writes if w["outcome"] == "written" and w["tag"].endswith("setpoint_bar")]
    assert written
    assert all(6.0 <= w["new"] <= 8.0 for w in written)
    assert all(abs(w["new"] - w["old"]) <= 0.1 + 1e-6 for w in written)


async def test_shadow_mode_publishes_what_it_would_write_and_leaves_the_plant_alone() -> None:
    config = _config(PID_RULE.format(mode="shadow"))
    async with CoSimulation(_scenario(6, 0), config, cycle=5.0, opcua=False) as sim:
        default = sim.plant.read_point("compressor.pressure_setpoint_bar")
        await sim.advance(600)
        shadow = [w for w in sim.events.writes() if w["tag"].endswith("setpoint_bar")]
        assert shadow
        assert {w["outcome"] for w in shadow} == {"shadow"}
        assert sim.plant.read_point("compressor.pressure_setpoint_bar") == default
        state = sim.events.retained["edgecell/cosim/rules/far-end-pressure/state"]
        assert state["mode"] == "shadow"


async def test_dead_meter_stops_its_rule_and_the_output_returns_to_its_fallback() -> None:
    config = _config(THRESHOLD_RULE)
    async with CoSimulation(_scenario(2, 0), config, cycle=5.0, opcua=False) as sim:
        await sim.advance(300)  # night: low load, the setback applies
        assert sim.plant.read_point("compressor.pressure_setpoint_bar") == pytest.approx(6.8)
        await sim.cell.stop_device("site-meter")
        await sim.advance(120)
        assert sim.plant.read_point("compressor.pressure_setpoint_bar") == pytest.approx(7.5)
        state = sim.events.retained["edgecell/cosim/rules/low-load-setback/state"]
        assert "site-meter.power_kw" in state["reason"]
        fallback = [
            w for w in sim.events.writes() if w["tag"].endswith("setpoint_bar") and w["new"] == 7.5
        ]
        assert fallback
        assert "site-meter.power_kw" in fallback[-1]["reason"]


async def test_plc_returns_to_local_control_when_the_heartbeat_stops() -> None:
    config = _config(THRESHOLD_RULE)
    async with CoSimulation(_scenario(2, 0), config, cycle=5.0, opcua=False) as sim:
        await sim.advance(120)
        assert sim.plant.read_point("compressor.remote") in (1, True)
        assert sim.plant.read_point("compressor.pressure_setpoint_bar") == pytest.approx(6.8)
        # The controller dies: the plant goes on, nobody polls or writes any more.
        sim.rules_enabled = False
        for _ in range(12):  # 60 s of plant time, past the PLC's 30 s heartbeat timeout
            await sim.cell.step(5.0)
        assert sim.plant.read_point("compressor.remote") in (0, False)
        assert sim.plant.read_point("compressor.pressure_setpoint_bar") == pytest.approx(7.5)


async def test_same_seed_gives_the_same_day_bit_for_bit_through_the_co_simulation() -> None:
    """Determinism through the real protocol stacks: plant, polls, rules and writes."""
    config = load_config(ROOT / "configs" / "cosim.yaml").config
    truths = []
    for _ in range(2):
        async with CoSimulation(_scenario(5, 45), config, cycle=5.0, seed=7) as sim:
            await sim.advance(1800)
            truths.append((sim.plant.ground_truth().as_dict(), sim.events.writes()))
    (truth_a, writes_a), (truth_b, writes_b) = truths
    assert writes_a  # the rules acted, so the comparison covers the closed loop
    assert truth_a == truth_b
    assert writes_a == writes_b


async def test_dead_site_meter_releases_every_shed_load() -> None:
    """Peak shaving on the co-simulated cell: with the site meter gone, nothing stays shed."""
    config = load_config(ROOT / "configs" / "cosim.yaml").config
    rules = [r for r in config.rules if r.kind == "peak_shaving"]
    # Sheds in production, and reachable with the loads (120 kW is not: the rule would say
    # so and shed nothing).
    limit = rules[0].model_copy(update={"limit_kw": 165.0})
    config = config.model_copy(update={"rules": [limit]})
    async with CoSimulation(_scenario(8, 30), config, cycle=5.0, opcua=False) as sim:
        await sim.advance(900)
        shed = [w for w in sim.events.writes() if w["outcome"] == "written" and w["new"] == 0]
        assert shed, "production at 08:30 is above 165 kW: the rule must shed"
        await sim.cell.stop_device("site-meter")
        await sim.advance(60)
        assert sim.plant.read_point("ev-charger.enable") in (1, True)
        assert sim.plant.read_point("wash-tank.heater_enable") in (1, True)
        state = sim.events.retained["edgecell/sim-cell/rules/peak_shaving/state"]
        assert "site-meter" in state["reason"]

"""The battery rules on the co-simulated solar-day cell, over the battery's real SunSpec Modbus
face (configs/cosim-storage.yaml): the rate reaches the plant, a dead meter sends the fallback
and the device's revert timer hands the battery back to its local program, shadow mode writes
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import Config, load_config
from controller.cosim import CoSimulation
from drivers.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
RATE = "bess-1.storage_outwrte"


def storage_config(**rule_changes: Any) -> Config:
    """configs/cosim-storage.yaml with only its battery rules (fast: nothing else polls a rule)."""
    config = load_config(ROOT / "configs" / "cosim-storage.yaml").config
    rules = [
        rule.model_copy(update=rule_changes)
        for rule in config.rules
        if rule.kind in ("battery_peak_shaving", "pv_self_consumption")
    ]
    return config.model_copy(update={"rules": rules})


def battery_writes(sim: CoSimulation) -> list[dict[str, Any]]:
    return [w for w in sim.events.writes() if w["tag"] == RATE]


async def test_the_night_recharge_reaches_the_battery_over_sunspec() -> None:
    """00:00, the site draws ~69 kW, below recharge_kw: the battery charges the difference, at
    least recharge_min_kw (50 kW, the inverter's efficient region)."""
    config = storage_config()
    [peak] = [r for r in config.rules if r.kind == "battery_peak_shaving"]
    async with CoSimulation(load_scenario("solar-day"), config, cycle=5.0, opcua=False) as sim:
        await sim.advance(120)
        plant = sim.plant
        assert plant.read_point("battery.following_setpoint") in (1, True)
        written = [w for w in battery_writes(sim) if w["outcome"] == "written"]
        assert written
        # The last rate written (% of the 100 kW charge limit) is the battery's setpoint.
        assert plant.read_point("battery.setpoint_kw") == pytest.approx(written[-1]["new"])
        # The gap to recharge_kw is 10-40 kW (the site draws 60-90 kW at night): the block.
        charging = -plant.read_point("battery.power_kw")
        assert charging == pytest.approx(peak.recharge_min_kw, abs=0.5)
        # Held for 5 min: the actuator's refresh keeps the revert timer (30 s) from expiring.
        await sim.advance(300)
        assert plant.read_point("battery.following_setpoint") in (1, True)
        assert plant.ground_truth().plc_fallbacks.get("battery", 0) == 0


async def test_a_constant_rate_held_past_the_revert_timer_keeps_the_battery_remote() -> None:
    """recharge_kw 300 kW: at night (60-90 kW) the rule wants more than max_charge_kw, so it
    holds -100 % unchanged for 5 min, ten times the battery's 30 s revert timer. The actuator's
    refresh (actuation.outputs, 10 s) writes the same rate again over SunSpec: the battery stays
    in remote mode, every rate written is the rule's own (no nudged value), and the rewrites are
    counted, not published."""
    config = storage_config(limit_kw=400.0, recharge_kw=300.0)
    async with CoSimulation(load_scenario("solar-day"), config, cycle=5.0, opcua=False) as sim:
        await sim.advance(60)  # ramped to -100 % at max_step 25 % per write
        assert sim.plant.read_point("battery.setpoint_kw") == pytest.approx(-100.0)
        assert sim.actuator is not None
        before = len(battery_writes(sim)), sim.actuator.stats.refreshes
        await sim.advance(300)
        assert sim.plant.read_point("battery.following_setpoint") in (1, True)
        assert sim.plant.read_point("battery.setpoint_kw") == pytest.approx(-100.0)
        assert sim.plant.ground_truth().plc_fallbacks.get("battery", 0) == 0
        written = [w["new"] for w in battery_writes(sim) if w["outcome"] == "written"]
        assert written == [-25.0, -50.0, -75.0, -100.0]
        assert len(battery_writes(sim)) == before[0]  # nothing new published in 5 min
        assert 28 <= sim.actuator.stats.refreshes - before[1] <= 31  # every 10 s


async def test_a_dead_meter_sends_the_fallback_then_the_battery_reverts_to_local() -> None:
    async with CoSimulation(
        load_scenario("solar-day"), storage_config(), cycle=5.0, opcua=False
    ) as sim:
        await sim.advance(60)
        assert sim.plant.read_point("battery.setpoint_kw") < -5.0  # recharging
        await sim.cell.stop_device("site-meter")
        await sim.advance(30)
        fallbacks = [w for w in battery_writes(sim) if w["source"].startswith("fallback:")]
        assert fallbacks
        assert fallbacks[-1]["new"] == 0
        await sim.advance(60)  # past the 30 s revert timer: no more writes renew it
        assert sim.plant.read_point("battery.following_setpoint") in (0, False)


async def test_shadow_mode_writes_nothing_to_the_battery() -> None:
    async with CoSimulation(
        load_scenario("solar-day"), storage_config(mode="shadow"), cycle=5.0, opcua=False
    ) as sim:
        await sim.advance(120)
        assert not [w for w in battery_writes(sim) if w["outcome"] == "written"]
        assert sim.plant.read_point("battery.following_setpoint") in (0, False)
        state = sim.events.retained["edgecell/sim-cell/rules/battery_peak_shaving/state"]
        assert state["detail"]["state"] == "recharging"


async def test_the_baseline_battery_runs_its_vendor_self_consumption_program() -> None:
    """The report's baseline (no rule engine) is the same hardware in its local program, not an
    idle battery: at night it covers the site's import from its charge."""
    async with CoSimulation(
        load_scenario("solar-day"), storage_config(), cycle=5.0, rules=False, opcua=False
    ) as sim:
        await sim.advance(60)
        assert sim.plant.read_point("battery.following_setpoint") in (0, False)
        assert sim.plant.read_point("battery.power_kw") > 50.0  # the night's ~69 kW, covered
        assert sim.plant.read_point("site_meter.active_power_kw") < 20.0


def test_the_storage_config_is_cosim_yaml_plus_the_battery() -> None:
    """configs/cosim-storage.yaml repeats configs/cosim.yaml by hand: it must stay in step."""
    plain = yaml.safe_load((ROOT / "configs" / "cosim.yaml").read_text("utf-8"))
    storage = yaml.safe_load((ROOT / "configs" / "cosim-storage.yaml").read_text("utf-8"))
    added = {"pv-inverter", "bess-1"}
    storage["devices"] = [d for d in storage["devices"] if d["name"] not in added]
    battery_kinds = ("battery_peak_shaving", "pv_self_consumption")
    storage["rules"] = [r for r in storage["rules"] if r["kind"] not in battery_kinds]
    outputs = storage["actuation"]["outputs"]
    storage["actuation"]["outputs"] = {
        tag: value for tag, value in outputs.items() if tag.split(".")[0] not in added
    }
    assert storage == plain


def test_the_scheduler_config_is_the_storage_config_plus_the_scheduler() -> None:
    """configs/cosim-scheduler.yaml repeats configs/cosim-storage.yaml by hand and adds the
    tariff, the scheduler and the battery_schedule and load_schedule rules, and hands the loads
    load_schedule plans to it while peak_shaving does not shed them (no restore_value): it
    must stay in step."""
    storage = yaml.safe_load((ROOT / "configs" / "cosim-storage.yaml").read_text("utf-8"))
    planned = yaml.safe_load((ROOT / "configs" / "cosim-scheduler.yaml").read_text("utf-8"))
    assert planned.pop("tariff")["timezone"] == "UTC"
    assert planned.pop("scheduler")["battery"]["power"] == "bess-1.inverter_w"
    following = [r for r in planned["rules"] if r["kind"] in ("battery_schedule", "load_schedule")]
    assert [r["kind"] for r in following] == ["battery_schedule", "load_schedule"]
    planned["rules"] = [r for r in planned["rules"] if r not in following]
    loads = {load["tag"] for load in following[1]["loads"]}
    shed = next(r for r in planned["rules"] if r["kind"] == "peak_shaving")
    for load in shed["loads"]:
        if load["tag"] in loads:
            assert load["restore_value"] is None
            load["restore_value"] = 1
    assert planned == storage
    load_config(ROOT / "configs" / "cosim-scheduler.yaml")  # and it validates

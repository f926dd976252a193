"""`edgecell report` warns where the controller config and the scenario disagree about the plant
(issue #14, item 6): devices, machines, the shift plan and quiet hours, the water's chemistry
limits, the compressor's rated flow. Each finding names the config path, the scenario field and
both values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.cellcheck import Finding, check_cell
from controller.cli import EXIT_OK, main, report_config_for
from controller.config import Config, load_config
from controller.report import RunResult, write_report
from drivers.sim.plant.truth import GroundTruth
from drivers.sim.scenario import SCENARIO_DIR, Scenario, load_scenario, scenario_names

ROOT = Path(__file__).parents[2]


def shipped_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "configs/cosim.yaml").read_text("utf-8"))
    return data


def rule(config: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in config["rules"] if r["kind"] == kind)
    return found


def normal_day() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SCENARIO_DIR / "normal-day.yaml").read_text("utf-8"))
    return data


def pairs(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.severity, f.config, f.scenario) for f in findings}


@pytest.mark.parametrize("name", scenario_names())
def test_the_shipped_config_agrees_with_every_shipped_scenario(name: str) -> None:
    """Each scenario against the config `edgecell report` takes for it (configs/cosim.yaml, or
    configs/cosim-storage.yaml for a cell with a battery, whose SunSpec devices it polls)."""
    scenario = load_scenario(name)
    config = load_config(report_config_for(scenario)).config
    assert check_cell(config, scenario) == []


def disagreeing() -> tuple[Config, Scenario]:
    """A cell whose scenario was changed on every point the config repeats by hand."""
    data = shipped_config()
    standby = rule(data, "idle_standby")
    standby["machines"][2]["state"] = "process-plc.ambient_c"  # a tag that is no machine state
    data["devices"][2]["tags"].append({"name": "spare_bar", "address": 300, "type": "float32"})
    config = Config.model_validate(data)

    cell = normal_day()
    cell["modbus_devices"][1]["name"] = "flow-meter"  # the config polls `water-meter`
    cell["machines"].append({**cell["machines"][2], "name": "saw-9"})  # no rule covers it
    cell["schedule"]["shifts"][0]["start"] = "05:00"  # early shift an hour earlier
    cell["schedule"]["shifts"][1]["end"] = "21:00"  # late shift an hour shorter
    cell["cooling_tower"]["max_conductivity_us_cm"] = 2000.0  # harder on scale than the config
    cell["cooling_tower"]["makeup_conductivity_us_cm"] = 500.0
    cell["cooling_tower"]["system_volume_m3"] = 1.5
    cell["rinse"]["quality_limit_us_cm"] = 1000.0  # laxer than the config's 900
    cell["rinse"]["fresh_conductivity_us_cm"] = 700.0  # hard mains water
    cell["compressed_air"]["rated_flow_m3_min"] = 7.0
    cell["compressed_air"]["critical_min_bar"] = 6.4  # the config holds 6.2
    cell["chilled_water"]["process_limit_c"] = 15.0  # the config allows 16
    return config, Scenario.model_validate(cell)


def test_each_disagreement_is_named_with_both_values() -> None:
    config, scenario = disagreeing()

    findings = check_cell(config, scenario)

    assert pairs(findings) == {
        ("warning", "devices[water-meter]", "modbus_devices/opcua_devices"),
        ("info", "devices", "modbus_devices[flow-meter]"),
        ("warning", "devices[compressor].tags[spare_bar]", "devices[compressor]"),
        ("warning", "rules[idle_standby].machines[cnc-2].state", "machines"),
        # cnc-2's state is no longer read by the rule, and saw-9 never was
        ("info", "rules[kind=idle_standby].machines", "machines[cnc-2]"),
        ("info", "rules[kind=idle_standby].machines", "machines[saw-9]"),
        ("warning", "rules[idle_standby].schedule", "schedule.shifts/breaks/idle"),
        ("warning", "rules[water_leak].quiet_hours", "schedule.shifts (with warmup)"),
        ("warning", "rules[tower_blowdown].limit_us_cm", "cooling_tower.max_conductivity_us_cm"),
        (
            "warning",
            "rules[tower_blowdown].makeup_us_cm",
            "cooling_tower.makeup_conductivity_us_cm",
        ),
        (
            "warning",
            "rules[tower_balance].makeup_us_cm",
            "cooling_tower.makeup_conductivity_us_cm",
        ),
        ("warning", "rules[tower_balance].volume_m3", "cooling_tower.system_volume_m3"),
        ("info", "rules[rinse_reuse].limit_us_cm", "rinse.quality_limit_us_cm"),
        ("warning", "rules[rinse_reuse].mains_us_cm", "rinse.fresh_conductivity_us_cm"),
        (
            "warning",
            "rules[compressed_air].leak_test.rated_flow_m3_min",
            "compressed_air.rated_flow_m3_min",
        ),
        ("warning", "rules[compressed_air].critical[0].min", "compressed_air.critical_min_bar"),
        ("warning", "rules[chiller_reset].process[0].max", "chilled_water.process_limit_c"),
    }
    by_config = {f.config: f for f in findings if f.config.startswith("rules[")}
    limit = by_config["rules[tower_blowdown].limit_us_cm"]
    assert (limit.config_value, limit.scenario_value) == (2400, 2000.0)
    flow = by_config["rules[compressed_air].leak_test.rated_flow_m3_min"]
    assert (flow.config_value, flow.scenario_value) == (5.2, 7.0)
    assert by_config["rules[idle_standby].machines[cnc-2].state"].scenario_value == (
        "ambient.dry_bulb_c"
    )
    # The stretches where the shift plan and the config's production periods part.
    plan = [f.message for f in findings if f.config == "rules[idle_standby].schedule"]
    assert plan == [
        "production in the config only: mon 21:00-22:00, tue 21:00-22:00, wed 21:00-22:00,"
        " thu 21:00-22:00 and 1 more",
        "production in the scenario only: mon 05:00-06:00, tue 05:00-06:00, wed 05:00-06:00,"
        " thu 05:00-06:00 and 1 more",
    ]
    quiet = by_config["rules[water_leak].quiet_hours"]
    assert quiet.message.startswith(
        "quiet hours while the scenario's site is occupied: mon 04:30-05:30, tue 04:30-05:30"
    )


def test_the_report_keeps_the_findings(tmp_path: Path) -> None:
    config, scenario = disagreeing()
    findings = check_cell(config, scenario)
    truth = GroundTruth(scenario=scenario.name, seed=1, start="2024-06-03T00:00:00").as_dict()
    base = RunResult("baseline", truth, hours=1.0)
    ours = RunResult("edgecell", truth, hours=1.0)

    write_report(base, ours, scenario, tmp_path, plots=False, findings=findings)

    stored = json.loads((tmp_path / "report.json").read_text("utf-8"))["config_findings"]
    assert len(stored) == len(findings)
    assert stored[0] == findings[0].as_dict()
    text = (tmp_path / "report.md").read_text("utf-8")
    assert "## Config and scenario disagree" in text
    assert (
        "- warning: rules[compressed_air].leak_test.rated_flow_m3_min = 5.2 vs scenario"
        " compressed_air.rated_flow_m3_min = 7.0" in text
    )


def test_edgecell_report_warns_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = shipped_config()
    rule(data, "compressed_air")["leak_test"]["rated_flow_m3_min"] = 6.5
    config = tmp_path / "cell.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "report"

    argv = ["report", "--config", str(config), "--hours", "0.05", "--no-plots", "--out", str(out)]
    assert main(argv) == EXIT_OK

    warning = (
        "warning: rules[compressed_air].leak_test.rated_flow_m3_min = 6.5 vs scenario"
        " compressed_air.rated_flow_m3_min = 5.2"
    )
    assert warning in capsys.readouterr().err
    stored = json.loads((out / "report.json").read_text("utf-8"))["config_findings"]
    assert [f["config"] for f in stored] == ["rules[compressed_air].leak_test.rated_flow_m3_min"]


def test_a_peak_shaving_window_other_than_the_tariff_s_is_warned() -> None:
    """The rule must shave the window the utility bills (issue #14, item 4)."""
    config = Config.model_validate(shipped_config())
    cell = normal_day()
    cell["tariff"]["demand_window"] = "30min"
    assert pairs(check_cell(config, Scenario.model_validate(cell))) == {
        ("warning", "rules[peak_shaving].window", "tariff.demand_window")
    }
    cell["tariff"]["demand_window"] = "15min"
    cell["tariff"]["demand_alignment"] = "sliding"
    findings = check_cell(config, Scenario.model_validate(cell))
    assert pairs(findings) == {
        ("warning", "rules[peak_shaving].alignment", "tariff.demand_alignment")
    }
    assert (findings[0].config_value, findings[0].scenario_value) == ("fixed", "sliding")


def test_a_controller_tariff_other_than_the_scenario_s_is_warned() -> None:
    """The scheduler's prices are the config's `tariff:`, the cell is billed by the scenario's:
    one schema, compared key by key (issue #16)."""
    data = shipped_config()
    cell = normal_day()
    data["tariff"] = {**cell["tariff"], "timezone": "UTC"}
    config = Config.model_validate(data)
    assert pairs(check_cell(config, Scenario.model_validate(cell))) == set()
    data["tariff"]["export_price_per_kwh"] = 0.12
    data["tariff"]["periods"] = []
    data["tariff"]["timezone"] = "Europe/Berlin"
    findings = check_cell(Config.model_validate(data), Scenario.model_validate(cell))
    assert pairs(findings) == {
        ("warning", "tariff.export_price_per_kwh", "tariff.export_price_per_kwh"),
        ("warning", "tariff.periods", "tariff.periods"),
        ("warning", "tariff.timezone", "start"),
    }


def scheduler_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (ROOT / "configs/cosim-scheduler.yaml").read_text("utf-8")
    )
    return data


def solar_day() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SCENARIO_DIR / "solar-day.yaml").read_text("utf-8"))
    base = normal_day()
    base.update(data)
    base.pop("base")
    return base


def test_the_shipped_scheduler_config_agrees_with_solar_day() -> None:
    scenario = load_scenario("solar-day")
    assert check_cell(Config.model_validate(scheduler_config()), scenario) == []


def test_a_battery_pv_or_billing_window_the_scheduler_config_repeats_wrongly_is_warned() -> None:
    """The scheduler's battery and PV and the battery rules' limits and windows repeat the
    plant by hand (session 8, the cells the scheduler was not built on): a rule's rate is a %
    of its max kW, so a max kW other than the battery's scales every rate it writes; a plan
    on another capacity, reserve or array, or on the wrong clock, plans another cell; a
    battery rule keeping 15-min windows where the utility bills 30-min ones holds another
    peak than the billed one."""
    data = scheduler_config()
    data["tariff"]["demand_window"] = "30min"
    rule(data, "peak_shaving")["window"] = "30min"
    cell = solar_day()
    cell["tariff"]["demand_window"] = "30min"
    cell["battery"].update(usable_kwh=300, max_discharge_kw=150, soc_min_pct=20)
    cell["pv"].update(kwp=200, latitude=52.5, timezone="Europe/London")
    findings = check_cell(Config.model_validate(data), Scenario.model_validate(cell))
    assert pairs(findings) == {
        ("warning", "scheduler.battery.capacity_kwh", "battery.usable_kwh"),
        ("warning", "scheduler.battery.max_discharge_kw", "battery.max_discharge_kw"),
        ("warning", "scheduler.battery.reserve_pct", "battery.soc_min_pct"),
        ("warning", "scheduler.pv.kwp", "pv.kwp"),
        ("warning", "scheduler.pv.inverter_kw", "pv.inverter_kw"),  # 200 / 1.2 on the roof
        ("warning", "scheduler.pv.latitude", "pv.latitude"),
        ("warning", "scheduler.pv.wall_clock_zone", "pv.timezone"),
        ("warning", "rules[battery_peak_shaving].max_discharge_kw", "battery.max_discharge_kw"),
        ("warning", "rules[pv_self_consumption].max_discharge_kw", "battery.max_discharge_kw"),
        ("warning", "rules[battery_schedule].max_discharge_kw", "battery.max_discharge_kw"),
        ("warning", "rules[battery_peak_shaving].window", "tariff.demand_window"),
        ("warning", "rules[battery_schedule].window", "tariff.demand_window"),
    }
    window = next(f for f in findings if f.config == "rules[battery_schedule].window")
    assert (window.config_value, window.scenario_value) == (900.0, 1800.0)
    zone = next(f for f in findings if f.config == "scheduler.pv.wall_clock_zone")
    assert (zone.config_value, zone.scenario_value) == ("Europe/Berlin", "Europe/London")
    # The same offset on the run's day is the same clock (Madrid's and Berlin's).
    cell["pv"]["timezone"] = "Europe/Madrid"
    findings = check_cell(Config.model_validate(data), Scenario.model_validate(cell))
    assert ("warning", "scheduler.pv.wall_clock_zone", "pv.timezone") not in pairs(findings)

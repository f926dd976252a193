"""Scenarios: every shipped one validates, derived ones override their base, and mistakes are
refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.sim.scenario import ScenarioError, load_scenario, scenario_names

SHIPPED = ("normal-day", "leak", "heatwave", "demand-spike", "weekend")


def test_the_shipped_scenarios_are_there() -> None:
    assert set(SHIPPED) <= set(scenario_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_validates(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.modbus_devices


def test_derived_scenario_overrides_its_base_key_by_key() -> None:
    base, heat = load_scenario("normal-day"), load_scenario("heatwave")
    assert heat.ambient.max_c > base.ambient.max_c
    assert heat.machines == base.machines
    assert heat.compressed_air == base.compressed_air


def test_scenario_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("base: normal-day\nname: mine\nseed: 7\n")
    scenario = load_scenario(path)
    assert (scenario.name, scenario.seed) == ("mine", 7)


def test_unknown_key_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("base: normal-day\nname: typo\ncompressed_air:\n  reciever_m3: 3\n")
    with pytest.raises(ScenarioError, match=r"compressed_air\.reciever_m3: Extra inputs"):
        load_scenario(path)


def test_unquoted_time_of_day_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "clock.yaml"
    path.write_text(
        "base: normal-day\nname: clock\nevents:\n  loads:\n"
        "    - {name: x, start: {at: 10:30}, duration: 1h, kw: 10}\n"
    )
    with pytest.raises(ScenarioError, match="in quotes"):
        load_scenario(path)


def test_unknown_scenario_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match="normal-day"):
        load_scenario("no-such-day")


def test_setpoint_default_outside_its_limits_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        "base: normal-day\nname: limits\ncompressed_air:\n"
        "  setpoint_bar: {default: 9.0, min: 6.0, max: 8.0}\n"
    )
    with pytest.raises(ScenarioError, match=r"outside 6\.0\.\.8\.0"):
        load_scenario(path)


def test_base_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: ./b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: ./a.yaml\nname: b\n")
    with pytest.raises(ScenarioError, match="loop"):
        load_scenario(tmp_path / "a.yaml")

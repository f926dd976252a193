"""Scenarios: every shipped one validates, derived ones override their base, and mistakes are
refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.config import DataType
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


@pytest.mark.parametrize("name", SHIPPED)
def test_process_plc_serves_the_standby_requests_at_46_to_49(name: str) -> None:
    scenario = load_scenario(name)
    plc = next(d for d in scenario.modbus_devices if d.name == "process-plc")
    served = {r.address: (r.point, r.type) for r in plc.registers}
    for address, machine in zip(
        range(46, 50), ("press-1", "cnc-1", "cnc-2", "washer-1"), strict=True
    ):
        assert served[address] == (f"{machine}.standby_request", DataType.UINT16)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_leave_machines_idle_between_shifts(name: str) -> None:
    assert load_scenario(name).schedule.between_shifts == "idle"


def _with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "variant.yaml"
    path.write_text("base: normal-day\nname: variant\n" + text)
    return path


def test_restart_energy_without_a_wake_up_time_is_refused(tmp_path: Path) -> None:
    path = _with(
        tmp_path,
        "machines:\n  - {name: m, power_kw: {standby: 1, idle: 2, producing: 3}, restart_kwh: 1}\n"
        "rinse: {machine: m}\n",
    )
    with pytest.raises(ScenarioError, match="wake_up"):
        load_scenario(path)


def test_tank_minimum_above_its_thermostat_is_refused(tmp_path: Path) -> None:
    path = _with(
        tmp_path,
        "heated_tanks:\n  - {name: t, machine: washer-1, volume_m3: 1, heater_kw: 10,\n"
        "     setpoint_c: 60, differential_k: 3, min_c: 58, initial_c: 59,\n"
        "     draw_kw: {producing: 5}, loss_kw_per_k: 0.01}\n",
    )
    with pytest.raises(ScenarioError, match="switch-on"):
        load_scenario(path)


def test_tank_of_an_unknown_machine_is_refused(tmp_path: Path) -> None:
    path = _with(
        tmp_path,
        "heated_tanks:\n  - {name: t, machine: nobody, volume_m3: 1, heater_kw: 10,\n"
        "     setpoint_c: 60, min_c: 50, initial_c: 59, draw_kw: {producing: 5},\n"
        "     loss_kw_per_k: 0.01}\n",
    )
    with pytest.raises(ScenarioError, match="'nobody' is not a machine"):
        load_scenario(path)


def test_overlapping_charging_sessions_are_refused(tmp_path: Path) -> None:
    path = _with(
        tmp_path,
        "ev_chargers:\n  - name: c\n    kw: 11\n    sessions:\n"
        '      - {arrive: "08:00", depart: "12:00", kwh: 10}\n'
        '      - {arrive: "11:00", depart: "15:00", kwh: 10}\n',
    )
    with pytest.raises(ScenarioError, match="overlap"):
        load_scenario(path)


def test_a_tank_named_like_a_machine_is_refused(tmp_path: Path) -> None:
    path = _with(
        tmp_path,
        "heated_tanks:\n  - {name: cnc-1, machine: washer-1, volume_m3: 1, heater_kw: 10,\n"
        "     setpoint_c: 60, min_c: 50, initial_c: 59, draw_kw: {producing: 5},\n"
        "     loss_kw_per_k: 0.01}\n",
    )
    with pytest.raises(ScenarioError, match="names repeat"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ("pv: {latitude: 48, longitude: 9, kwp: 480, inverter_kw: 400}\n", "pv-inverter"),
        ("battery: {usable_kwh: 800, max_charge_kw: 400, max_discharge_kw: 400}\n", "bess-1"),
    ],
)
def test_a_sunspec_device_too_large_for_its_w_register_is_refused(
    tmp_path: Path, section: str, match: str
) -> None:
    """Model 103's W is an int16 at W_SF 1 (10 W steps): 327.67 kW at most. A larger array or
    battery behind a SunSpec face would read clipped at 327.67 kW, the controller none the
    wiser (session 8: a user's 400 kW cell)."""
    path = tmp_path / "big.yaml"
    path.write_text("base: solar-day\nname: big\n" + section)
    with pytest.raises(ScenarioError, match=rf"{match}.*327\.67 kW"):
        load_scenario(path)

"""The heated wash tank: a thermostat band, the heat balance, a disabled heater deferring its
energy while the water cools at the draw rate, the minimum counted when it is broken, and the
PLC's watchdog enabling the heater again."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.chiller import CP_WATER, RHO_WATER
from drivers.sim.plant.plc import Setpoint
from drivers.sim.plant.schedule import Activity
from drivers.sim.plant.tank import HeatedTank
from drivers.sim.scenario import HeatedTankSpec, Scenario

TANK = "wash-tank"


def spec(scenario: Scenario, **changes: float) -> HeatedTankSpec:
    tank = next(t for t in scenario.heated_tanks if t.name == TANK)
    return tank.model_copy(update=changes)


def enabled() -> Setpoint:
    return Setpoint(default=1.0, min=0.0, max=1.0)


def run(plant: Plant, until_hour: float, beat: bool = True) -> None:
    while plant.time_s < until_hour * 3600 - 1e-9:
        if beat:
            plant.write_point("process.heartbeat", int(plant.time_s) % 30000 + 1)
        plant.step(5.0)


def test_thermostat_keeps_the_tank_in_its_band_over_a_day(normal_day: Scenario) -> None:
    tank_spec = spec(normal_day)
    plant = Plant(normal_day)
    low, high = tank_spec.initial_c, tank_spec.initial_c
    while plant.time_s < 86400:
        plant.step(5.0)
        temperature = float(plant.read_point(f"{TANK}.temperature_c"))
        low, high = min(low, temperature), max(high, temperature)
    assert low >= tank_spec.setpoint_c - tank_spec.differential_k - 1e-9
    assert high <= tank_spec.setpoint_c + 1e-9
    assert plant.ground_truth().seconds_tank_below_min[TANK] == 0.0


def test_heater_energy_is_the_heat_drawn_plus_the_stored_heat(normal_day: Scenario) -> None:
    tank_spec = spec(normal_day, loss_kw_per_k=0.0)
    tank = HeatedTank(tank_spec, enabled())
    heater_kwh = 0.0
    for _ in range(720):  # an hour of production
        heater_kwh += tank.step(5.0, Activity.PRODUCING)
    capacity_kwh_k = tank_spec.volume_m3 * RHO_WATER * CP_WATER / 3600
    stored = capacity_kwh_k * (tank.temperature_c - tank_spec.initial_c)
    assert heater_kwh == pytest.approx(tank_spec.draw_kw.producing * 1.0 + stored, rel=1e-9)


def test_switch_points_do_not_depend_on_the_step_size(normal_day: Scenario) -> None:
    def energy(dt: float) -> float:
        tank = HeatedTank(spec(normal_day), enabled())
        return sum(tank.step(dt, Activity.PRODUCING) for _ in range(round(7200 / dt)))

    assert energy(1.0) == pytest.approx(energy(60.0), rel=1e-9)


def test_disabled_heater_lets_the_tank_cool_at_its_draw_and_losses(normal_day: Scenario) -> None:
    tank_spec = spec(normal_day)
    tank = HeatedTank(tank_spec, Setpoint(default=0.0, min=0.0, max=1.0))
    start = tank.temperature_c
    heater_kwh = sum(tank.step(5.0, Activity.PRODUCING) for _ in range(180))  # 15 minutes
    capacity_kwh_k = tank_spec.volume_m3 * RHO_WATER * CP_WATER / 3600
    loss_kw = tank_spec.loss_kw_per_k * ((start + tank.temperature_c) / 2 - tank_spec.room_c)
    assert heater_kwh == 0.0
    assert start - tank.temperature_c == pytest.approx(
        (tank_spec.draw_kw.producing + loss_kw) * 0.25 / capacity_kwh_k, rel=1e-3
    )
    # The storage is worth the window: 15 minutes off from the switch-on point stays above min.
    assert tank_spec.setpoint_c - tank_spec.differential_k - (start - tank.temperature_c) > (
        tank_spec.min_c
    )


def test_heater_starts_at_once_when_enabled_again(normal_day: Scenario) -> None:
    tank_spec = spec(normal_day)
    enable = Setpoint(default=0.0, min=0.0, max=1.0)
    tank = HeatedTank(tank_spec, enable)
    for _ in range(180):
        tank.step(5.0, Activity.PRODUCING)
    assert tank.calling
    assert not tank.heater_on
    enable.value = 1.0
    tank.step(5.0, Activity.PRODUCING)
    assert tank.heater_on
    assert tank.power_kw == tank_spec.heater_kw


def test_heater_off_too_long_in_production_breaks_the_minimum(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    run(plant, 7.0)
    plant.write_point(f"{TANK}.heater_enable", 0)
    run(plant, 8.5)
    truth = plant.ground_truth()
    assert float(plant.read_point(f"{TANK}.temperature_c")) < spec(normal_day).min_c
    assert truth.seconds_tank_below_min[TANK] > 0
    # Its energy was deferred, not lost: enabled again, it heats at full power.
    plant.write_point(f"{TANK}.heater_enable", 1)
    run(plant, 8.6)
    assert float(plant.read_point(f"{TANK}.heater_power_kw")) == spec(normal_day).heater_kw


def test_lost_heartbeat_enables_the_heater_again(normal_day: Scenario) -> None:
    timeout = normal_day.plcs.process.heartbeat_timeout
    assert timeout is not None
    plant = Plant(normal_day)
    run(plant, 7.0)
    plant.write_point(f"{TANK}.heater_enable", 0)
    run(plant, 7.1)
    assert plant.read_point(f"{TANK}.heater_enable") == 0
    run(plant, 7.1 + (timeout + 10) / 3600, beat=False)
    assert plant.read_point(f"{TANK}.heater_enable") == 1
    assert plant.read_point("process.remote") is False


def test_tank_of_a_machine_switched_off_is_not_heated(normal_day: Scenario) -> None:
    tank_spec = spec(normal_day)
    tank = HeatedTank(tank_spec, enabled())
    heater_kwh = sum(tank.step(60.0, Activity.OFF) for _ in range(240))  # four hours
    assert heater_kwh == 0.0
    assert tank.temperature_c < tank_spec.initial_c
    assert not tank.heater_on

"""PLC behaviour: setpoints within the device's limits, and the heartbeat watchdog that reverts
to local defaults when the controller goes quiet."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.scenario import Scenario

SETPOINT = "compressor.pressure_setpoint_bar"


def _run(plant: Plant, seconds: float, beat_every: float | None = None) -> None:
    end = plant.time_s + seconds
    beats = int(plant.read_point("compressor.heartbeat"))
    while plant.time_s < end:
        if beat_every is not None and plant.time_s % beat_every == 0:
            beats += 1
            plant.write_point("compressor.heartbeat", beats)
        plant.step(5.0)


def test_setpoint_holds_while_the_heartbeat_changes(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    plant.write_point("compressor.heartbeat", 1)
    plant.write_point(SETPOINT, 6.8)
    _run(plant, 600, beat_every=10)
    assert plant.read_point(SETPOINT) == 6.8
    assert plant.read_point("compressor.remote") is True


def test_setpoint_reverts_to_the_local_default_when_the_heartbeat_stops(
    normal_day: Scenario,
) -> None:
    timeout = normal_day.plcs.compressor.heartbeat_timeout
    assert timeout is not None
    plant = Plant(normal_day)
    plant.write_point("compressor.heartbeat", 1)
    plant.write_point(SETPOINT, 6.8)
    _run(plant, timeout - 10)
    assert plant.read_point(SETPOINT) == 6.8
    _run(plant, 20)
    assert plant.read_point(SETPOINT) == normal_day.compressed_air.setpoint_bar.default
    assert plant.read_point("compressor.remote") is False
    assert plant.ground_truth().plc_fallbacks["compressor"] == 1


def test_writes_are_ignored_until_the_heartbeat_resumes(normal_day: Scenario) -> None:
    timeout = normal_day.plcs.compressor.heartbeat_timeout
    assert timeout is not None
    plant = Plant(normal_day)
    _run(plant, timeout + 10)
    plant.write_point(SETPOINT, 6.8)
    assert plant.read_point(SETPOINT) == normal_day.compressed_air.setpoint_bar.default
    plant.write_point("compressor.heartbeat", 42)
    plant.write_point(SETPOINT, 6.8)
    assert plant.read_point(SETPOINT) == 6.8


def test_setpoints_are_clamped_to_the_device_limits(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    plant.write_point(SETPOINT, 12.0)
    assert plant.read_point(SETPOINT) == normal_day.compressed_air.setpoint_bar.max
    plant.write_point(SETPOINT, 1.0)
    assert plant.read_point(SETPOINT) == normal_day.compressed_air.setpoint_bar.min


def test_a_measurement_cannot_be_written(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    with pytest.raises(PermissionError):
        plant.write_point("site_meter.active_power_kw", 1.0)


def test_an_unknown_point_is_a_key_error(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    with pytest.raises(KeyError):
        plant.read_point("nowhere.nothing")


def test_forced_blowdown_returns_to_conductivity_control_on_fallback(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    plant.write_point("water.heartbeat", 1)
    plant.write_point("tower.blowdown_valve_pct", 100.0)
    plant.step(5.0)
    assert (
        plant.read_point("tower.blowdown_flow_m3_h") == normal_day.cooling_tower.blowdown_max_m3_h
    )
    while plant.read_point("water.remote"):
        plant.step(5.0)
    plant.step(5.0)
    # Conductivity starts below the local setpoint, so the PLC's own control keeps it shut.
    assert plant.read_point("tower.blowdown_valve_pct") == 0.0

"""Shared fixtures of the simulated-cell tests: the scenarios and a plant some hours into a day."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.scenario import ModbusDeviceSpec, Scenario, load_scenario


@pytest.fixture(scope="session")
def normal_day() -> Scenario:
    return load_scenario("normal-day")


@pytest.fixture
def plant_mid_shift(normal_day: Scenario) -> Plant:
    """A plant at 10:00 on a working day: machines producing, meters moving."""
    plant = Plant(normal_day)
    while plant.time_s < 10 * 3600:
        plant.step(5.0)
    return plant


def device(scenario: Scenario, name: str) -> ModbusDeviceSpec:
    return next(d for d in scenario.modbus_devices if d.name == name)

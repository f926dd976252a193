"""Machine standby on request (PROFIenergy style): standby power and no air while requested,
the wake-up time and restart energy on release, production lost when a machine is not ready in
production time, and the PLC's watchdog releasing the request."""

from __future__ import annotations

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.machines import Machine
from drivers.sim.plant.schedule import Activity
from drivers.sim.scenario import MachineSpec, Scenario

PRESS = "press-1"


class Cell:
    """A plant whose process PLC hears a heartbeat every step (unless told to stop)."""

    def __init__(self, scenario: Scenario) -> None:
        self.plant = Plant(scenario)
        self.beat = 0
        self.beating = True

    def run_until(self, hour: float, dt: float = 5.0) -> None:
        while self.plant.time_s < hour * 3600 - 1e-9:
            if self.beating:
                self.beat += 1
                self.plant.write_point("process.heartbeat", self.beat)
            self.plant.step(dt)

    def request(self, machine: str, standby: bool) -> None:
        self.plant.write_point("process.heartbeat", self.beat + 1)
        self.beat += 1
        self.plant.write_point(f"{machine}.standby_request", int(standby))


def machine(plant: Plant) -> Machine:
    return next(m for m in plant.machines if m.name == PRESS)


def press(scenario: Scenario) -> MachineSpec:
    return next(m for m in scenario.machines if m.name == PRESS)


def test_requested_standby_draws_standby_power_and_no_air(normal_day: Scenario) -> None:
    cell = Cell(normal_day)
    cell.run_until(3.0)  # between shifts: idle in the baseline
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.IDLE
    cell.request(PRESS, standby=True)
    cell.run_until(3.1)
    press_1 = machine(cell.plant)
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.STANDBY
    assert cell.plant.read_point(f"{PRESS}.standby_request") == 1
    assert press_1.power_kw == press(normal_day).power_kw.standby
    assert press_1.air_m3_min == 0.0


def test_release_wakes_the_machine_with_its_restart_energy(normal_day: Scenario) -> None:
    spec = press(normal_day)
    cell = Cell(normal_day)
    cell.run_until(3.0)
    cell.request(PRESS, standby=True)
    cell.run_until(4.0)
    cell.request(PRESS, standby=False)
    before = cell.plant.ground_truth().energy_kwh[PRESS]
    cell.run_until(4.0 + (spec.wake_up - 5.0) / 3600)
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.IDLE  # still waking
    assert machine(cell.plant).waking_s > 0
    cell.run_until(4.5)
    truth = cell.plant.ground_truth()
    assert machine(cell.plant).waking_s == 0
    assert truth.machine_restarts[PRESS] == 1
    assert truth.restart_kwh[PRESS] == pytest.approx(spec.restart_kwh)
    # Half an hour at idle power, plus the restart energy: it is in the machine's own energy.
    assert truth.energy_kwh[PRESS] - before == pytest.approx(
        spec.power_kw.idle * 0.5 + spec.restart_kwh
    )
    assert truth.seconds_production_lost[PRESS] == 0.0  # nothing was due at night


def test_standby_in_production_time_is_lost_production(normal_day: Scenario) -> None:
    spec = press(normal_day)
    cell = Cell(normal_day)
    cell.run_until(7.0)
    cell.request(PRESS, standby=True)
    cell.run_until(7.25)
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.STANDBY
    cell.request(PRESS, standby=False)
    cell.run_until(8.0)
    lost = cell.plant.ground_truth().seconds_production_lost
    # 15 minutes in standby, then its wake-up before it could produce again.
    assert lost[PRESS] == pytest.approx(15 * 60 + spec.wake_up)
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.PRODUCING
    assert all(lost[m.name] == 0.0 for m in normal_day.machines if m.name != PRESS)


def test_woken_a_wake_up_time_before_the_shift_loses_nothing(normal_day: Scenario) -> None:
    spec = press(normal_day)
    cell = Cell(normal_day)
    cell.run_until(3.0)
    cell.request(PRESS, standby=True)
    cell.run_until(6.0 - spec.wake_up / 3600)
    cell.request(PRESS, standby=False)
    cell.run_until(7.0)
    assert cell.plant.ground_truth().seconds_production_lost[PRESS] == 0.0


def test_woken_at_the_shift_start_loses_its_wake_up_time(normal_day: Scenario) -> None:
    spec = press(normal_day)
    cell = Cell(normal_day)
    cell.run_until(3.0)
    cell.request(PRESS, standby=True)
    cell.run_until(6.0)
    cell.request(PRESS, standby=False)
    cell.run_until(7.0)
    assert cell.plant.ground_truth().seconds_production_lost[PRESS] == pytest.approx(spec.wake_up)


def test_lost_heartbeat_releases_the_standby_request(normal_day: Scenario) -> None:
    timeout = normal_day.plcs.process.heartbeat_timeout
    assert timeout is not None
    cell = Cell(normal_day)
    cell.run_until(3.0)
    cell.request(PRESS, standby=True)
    cell.run_until(3.5)
    cell.beating = False
    cell.run_until(3.5 + (timeout + 10) / 3600)
    assert cell.plant.read_point("process.remote") is False
    assert cell.plant.read_point(f"{PRESS}.standby_request") == 0
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.IDLE  # waking, then idle
    assert cell.plant.ground_truth().plc_fallbacks["process"] == 1


def test_request_on_a_day_without_shifts_leaves_the_machine_off(normal_day: Scenario) -> None:
    saturday = normal_day.model_copy(update={"start": normal_day.start.replace(day=8)})
    cell = Cell(saturday)
    cell.request(PRESS, standby=True)
    cell.run_until(1.0)
    cell.request(PRESS, standby=False)
    cell.run_until(2.0)
    assert cell.plant.read_point(f"{PRESS}.state") == Activity.OFF
    assert cell.plant.ground_truth().machine_restarts[PRESS] == 0


def test_standby_request_reads_back_as_zero_or_one(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    plant.write_point(f"{PRESS}.standby_request", 0.7)
    assert plant.read_point(f"{PRESS}.standby_request") == 1
    plant.write_point(f"{PRESS}.standby_request", 0.2)
    assert plant.read_point(f"{PRESS}.standby_request") == 0

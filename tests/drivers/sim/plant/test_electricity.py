"""The site meter: phases add up, power factor and currents are consistent, and the rolling
demand is the mean power over its window."""

from __future__ import annotations

import math

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.electricity import RollingDemand
from drivers.sim.scenario import Scenario, load_scenario


def test_phase_powers_add_up_to_the_total(plant_mid_shift: Plant) -> None:
    total = float(plant_mid_shift.read_point("site_meter.active_power_kw"))
    phases = [
        float(plant_mid_shift.read_point(f"site_meter.active_power_l{n}_kw")) for n in (1, 2, 3)
    ]
    assert sum(phases) == pytest.approx(total)


def test_current_is_apparent_power_over_voltage(plant_mid_shift: Plant) -> None:
    p = plant_mid_shift
    pf = float(p.read_point("site_meter.power_factor"))
    for n in (1, 2, 3):
        kw = float(p.read_point(f"site_meter.active_power_l{n}_kw"))
        volts = float(p.read_point(f"site_meter.voltage_l{n}_v"))
        assert float(p.read_point(f"site_meter.current_l{n}_a")) == pytest.approx(
            kw / pf * 1000 / volts, rel=1e-6
        )


def test_power_factor_is_active_over_apparent(plant_mid_shift: Plant) -> None:
    p = plant_mid_shift
    kw = float(p.read_point("site_meter.active_power_kw"))
    kvar = float(p.read_point("site_meter.reactive_power_kvar"))
    assert float(p.read_point("site_meter.power_factor")) == pytest.approx(
        kw / math.hypot(kw, kvar)
    )
    assert 0.8 < float(p.read_point("site_meter.power_factor")) < 1.0


def test_voltage_and_frequency_stay_near_nominal(
    plant_mid_shift: Plant, normal_day: Scenario
) -> None:
    meter = normal_day.site.meter
    for n in (1, 2, 3):
        volts = float(plant_mid_shift.read_point(f"site_meter.voltage_l{n}_v"))
        assert volts == pytest.approx(meter.nominal_voltage_v, rel=0.03)
    assert float(plant_mid_shift.read_point("site_meter.frequency_hz")) == pytest.approx(
        meter.frequency_hz, abs=0.1
    )


def test_rolling_demand_is_the_mean_power_over_the_window() -> None:
    demand = RollingDemand(900.0)
    for _ in range(180):  # 15 min at 100 kW
        demand.add(5.0, 100.0 * 5 / 3600)
    assert demand.kw == pytest.approx(100.0)
    for _ in range(90):  # 7.5 min at 200 kW
        demand.add(5.0, 200.0 * 5 / 3600)
    assert demand.kw == pytest.approx(150.0)
    for _ in range(90):
        demand.add(5.0, 200.0 * 5 / 3600)
    assert demand.kw == pytest.approx(200.0)


def test_demand_spike_raises_the_peak_demand(normal_day: Scenario) -> None:
    def peak(scenario: Scenario) -> float:
        plant = Plant(scenario)
        while plant.time_s < 15 * 3600:
            plant.step(5.0)
        return float(plant.read_point("site_meter.max_demand_kw"))

    assert peak(load_scenario("demand-spike")) > peak(normal_day) + 50.0


def test_energy_cost_follows_the_time_of_use_tariff(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    while plant.time_s < 86400.0:
        plant.step(5.0)
    truth = plant.ground_truth()
    assert set(truth.energy_cost_by_period) == {"default", "peak"}
    assert truth.energy_cost == pytest.approx(sum(truth.energy_cost_by_period.values()))
    assert truth.demand_charge_prorated == pytest.approx(
        truth.billing_demand_kw * normal_day.tariff.demand_charge_per_kw_month / 30
    )

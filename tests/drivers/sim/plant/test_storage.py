"""PV and a battery behind the site meter: pvlib's array, the battery's limits, efficiency curve,
local self-consumption, remote setpoint with its watchdog, and the meter's import and export.
Today's scenarios have neither, and their figures do not move."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pvlib  # the `sim` extra; scripts/setup installs it
import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.pv import PvArray
from drivers.sim.scenario import (
    MPS_100_EFFICIENCY,
    BatterySpec,
    PvSpec,
    Scenario,
    ScenarioError,
    load_scenario,
)

# A site in Stuttgart: 48.78 N, 9.18 E, 245 m.
SITE: dict[str, Any] = {"latitude": 48.78, "longitude": 9.18, "altitude_m": 245.0}


def with_storage(
    pv: dict[str, Any] | None = None, battery: dict[str, Any] | None = None, **tariff: Any
) -> Scenario:
    base = load_scenario("normal-day")
    update: dict[str, Any] = {}
    if pv is not None:
        update["pv"] = PvSpec.model_validate({**SITE, **pv})
    if battery is not None:
        update["battery"] = BatterySpec.model_validate(battery)
    if tariff:
        update["tariff"] = base.tariff.model_copy(update=tariff)
    return base.model_copy(update=update)


def run_until(plant: Plant, hour: float, dt: float = 5.0) -> Plant:
    while plant.time_s < hour * 3600.0 - 1e-9:
        plant.step(dt)
    return plant


def test_todays_scenarios_keep_their_figures() -> None:
    """normal-day has no PV and no battery: its day is the one measured before they existed
    (figures from the plant at 7e4cbd9, dt 5 s)."""
    plant = run_until(Plant(load_scenario("normal-day")), 24.0)
    truth = plant.ground_truth()
    assert truth.site_import_kwh == pytest.approx(3536.5730496625974, rel=1e-12)
    assert truth.energy_cost == pytest.approx(740.6382541301632, rel=1e-12)
    assert truth.max_demand_kw == pytest.approx(218.92293739374566, rel=1e-12)
    assert truth.site_export_kwh == 0.0
    assert "pv.power_kw" not in plant.point_names()
    assert "battery.soc_pct" not in plant.point_names()


def test_the_battery_efficiency_curve_is_the_cec_test_of_a_commercial_pcs() -> None:
    """The default curve is the Sandia model of the Dynapower MPS-100 in pvlib's CEC library."""
    params = pvlib.pvsystem.retrieve_sam("CECInverter")["DYNAPOWER_COMPANY_LLC__MPS_100__480_"]
    for fraction, efficiency in MPS_100_EFFICIENCY:
        dc = fraction * params["Pdco"]
        ac = float(pvlib.inverter.sandia(params["Vdco"], dc, params))
        assert ac / dc == pytest.approx(efficiency, abs=5e-4), fraction


JUNE_3 = datetime(2024, 6, 3)  # noqa: DTZ001  (site time is naive) normal-day, a Monday


def pv_day(ambient_c: float = 25.0, dt: float = 60.0, **spec: Any) -> tuple[PvArray, float]:
    """One day of an array alone: (the array, its peak AC kW)."""
    array = PvArray(PvSpec.model_validate({**SITE, "kwp": 100.0, **spec}))
    peak = 0.0
    for k in range(int(86400 / dt)):
        peak = max(peak, array.step(JUNE_3 + timedelta(seconds=k * dt), dt, ambient_c).ac_kw)
    return array, peak


def test_pv_follows_the_sun_the_clouds_and_the_module_temperature() -> None:
    clear, peak = pv_day()
    # A clear June day at 48.8 N on a 15 degree south roof: 5-7 kWh per kWp after 14 % losses.
    assert 500.0 < clear.energy_kwh < 700.0
    assert 55.0 < peak <= 100.0 / 1.2
    assert clear.step(JUNE_3 + timedelta(hours=2), 60.0, 15.0).ac_kw == 0.0
    noon = clear.step(JUNE_3 + timedelta(hours=13, minutes=30), 60.0, 25.0).ac_kw  # CEST
    morning = clear.step(JUNE_3 + timedelta(hours=8), 60.0, 25.0).ac_kw
    assert noon > 1.5 * morning > 0.0
    cloudy, _ = pv_day(clouds=[{"at": "00:00", "factor": 0.3}, {"at": "24:00", "factor": 0.3}])
    assert cloudy.energy_kwh == pytest.approx(0.3 * clear.energy_kwh, rel=0.08)
    hot, _ = pv_day(ambient_c=40.0)
    # 15 K hotter cells at about -0.37 %/K of DC power.
    assert hot.energy_kwh == pytest.approx(clear.energy_kwh * (1 - 15 * 0.0037), rel=0.02)


def test_an_undersized_inverter_clips_and_the_truth_says_how_much() -> None:
    plant = Plant(with_storage(pv={"kwp": 100.0, "inverter_kw": 40.0}))
    run_until(plant, 13.0, dt=10.0)
    assert float(plant.read_point("pv.power_kw")) == pytest.approx(40.0, rel=1e-6)
    truth = plant.ground_truth()
    assert truth.pv_clipped_kwh > 10.0
    assert truth.pv_kwh == pytest.approx(float(plant.read_point("pv.energy_kwh")), rel=1e-9)


BATTERY: dict[str, Any] = {
    "usable_kwh": 200.0,
    "max_charge_kw": 100.0,
    "max_discharge_kw": 100.0,
    "initial_soc_pct": 50.0,
}


class StorageDay:
    """normal-day with 400 kWp (it out-produces the cell at noon) and a 200 kWh battery in its
    local program, run once for the tests below; each step's meter and battery kept."""

    def __init__(self) -> None:
        self.plant = Plant(
            with_storage(pv={"kwp": 400.0}, battery=BATTERY, export_price_per_kwh=0.07)
        )
        self.steps: list[tuple[float, float]] = []  # (battery kW, site kW)
        while self.plant.time_s < 86400.0:
            self.plant.step(10.0)
            self.steps.append(
                (
                    float(self.plant.read_point("battery.power_kw")),
                    float(self.plant.read_point("site_meter.active_power_kw")),
                )
            )


@pytest.fixture(scope="module")
def storage_day() -> StorageDay:
    return StorageDay()


def test_the_site_meter_is_loads_minus_pv_plus_battery_and_meters_export(
    storage_day: StorageDay,
) -> None:
    plant = storage_day.plant
    truth = plant.ground_truth()
    loads = sum(truth.energy_kwh.values())
    net = loads - truth.pv_kwh + truth.battery_charged_kwh - truth.battery_discharged_kwh
    assert truth.site_import_kwh - truth.site_export_kwh == pytest.approx(net, rel=1e-9)
    assert truth.site_export_kwh > 50.0
    exported = float(plant.read_point("site_meter.export_energy_kwh"))
    assert exported == pytest.approx(truth.site_export_kwh, rel=1e-9)
    assert truth.export_revenue == pytest.approx(0.07 * truth.site_export_kwh, rel=1e-9)


def test_the_local_program_charges_from_surplus_and_discharges_to_cover_import(
    storage_day: StorageDay,
) -> None:
    charging = discharging = 0
    for battery, site in storage_day.steps:
        if battery < -0.2 - 1e-9:  # below the standby draw it takes from the site at its reserve
            charging += 1
            assert site <= 0.2 + 1e-6  # charges from surplus: the site imports at most standby
        elif battery > 0:
            discharging += 1
            assert site >= -1e-6  # covers import, never exports from the battery
    assert charging > 100
    assert discharging > 100
    truth = storage_day.plant.ground_truth()
    assert truth.battery_soc_min_pct is not None
    assert truth.battery_soc_max_pct is not None
    assert truth.battery_soc_min_pct >= 10.0 - 1e-6
    assert truth.battery_soc_max_pct <= 95.0 + 1e-6
    assert truth.seconds_soc_outside_limits == 0.0
    # Losses: the curve's part-load efficiency, the DC round trip and standby.
    assert truth.battery_loss_kwh > 0.04 * truth.battery_charged_kwh


def test_a_remote_setpoint_is_followed_within_limits_until_the_watchdog_fires() -> None:
    plant = Plant(with_storage(battery={**BATTERY, "heartbeat_timeout": "30s"}))
    plant.step(5.0)  # midnight, no PV: the local program discharges to cover the import
    assert plant.read_point("battery.following_setpoint") is False
    assert float(plant.read_point("battery.power_kw")) > 0
    plant.write_point("battery.setpoint_kw", -60.0)
    plant.step(5.0)
    assert plant.read_point("battery.power_kw") == pytest.approx(-60.0)
    assert plant.read_point("battery.following_setpoint") is True
    plant.write_point("battery.setpoint_kw", 500.0)  # beyond the limit: the PLC clamps it
    plant.step(5.0)
    assert plant.read_point("battery.power_kw") == pytest.approx(100.0)
    soc = float(plant.read_point("battery.soc_pct"))
    for _ in range(10):  # 50 s of silence
        plant.step(5.0)
    assert plant.read_point("battery.following_setpoint") is False
    assert plant.ground_truth().plc_fallbacks["battery"] == 1
    assert float(plant.read_point("battery.soc_pct")) < soc
    # A new setpoint takes control back by itself (SunSpec's revert timer restarts).
    plant.write_point("battery.setpoint_kw", 20.0)
    plant.step(5.0)
    assert plant.read_point("battery.power_kw") == pytest.approx(20.0)


def test_the_soc_limits_stop_a_remote_discharge() -> None:
    plant = Plant(with_storage(battery={**BATTERY, "initial_soc_pct": 12.0}))
    plant.write_point("battery.setpoint_kw", 100.0)
    for _ in range(60):
        plant.step(5.0)
        plant.write_point("battery.setpoint_kw", 100.0)
    assert float(plant.read_point("battery.soc_pct")) == pytest.approx(10.0, abs=0.05)
    # Only its standby draw, from the site now that the cells are at their reserve.
    assert plant.read_point("battery.power_kw") == pytest.approx(-0.2)
    truth = plant.ground_truth()
    assert truth.battery_curtailed_kwh > 0.0


def test_part_load_costs_more_than_full_load() -> None:
    """Per kWh through the inverter, 10 kW loses more than 100 kW (the curve, not a constant)."""

    def loss_per_kwh(kw: float) -> float:
        plant = Plant(with_storage(battery=BATTERY))
        plant.write_point("battery.setpoint_kw", kw)
        for _ in range(12):
            plant.step(5.0)
            plant.write_point("battery.setpoint_kw", kw)
        truth = plant.ground_truth()
        return truth.battery_loss_kwh / truth.battery_discharged_kwh

    assert loss_per_kwh(10.0) > 2 * loss_per_kwh(100.0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("battery: {usable_kwh: 100, max_charge_kw: 50, max_discharge_kw: 50, soc_min_pct: 90,"
         " soc_max_pct: 80}", "soc_min_pct is not below"),
        ("battery: {usable_kwh: 100, max_charge_kw: 50, max_discharge_kw: 50,"
         " initial_soc_pct: 5}", "initial_soc_pct is outside"),
        ("battery: {usable_kwh: 0, max_charge_kw: 50, max_discharge_kw: 50}", "usable_kwh"),
        ("battery: {usable_kwh: 100, max_charge_kw: 50, max_discharge_kw: 50, inverter_kw: 10}",
         "inverter_kw is below"),
        ("pv: {latitude: 48, longitude: 9, kwp: 10, clouds: [{at: '12:00', factor: 1},"
         " {at: '10:00', factor: 0.5}]}", "time order"),
        ("pv: {latitude: 95, longitude: 9, kwp: 10}", "pv.latitude"),
        ("pv: {latitude: 48, longitude: 9, kwp: 10, timezone: Mars/Olympus}",
         "not an IANA time zone"),
        ("pv: {latitude: 48, longitude: 9, kwp: 10, clouds: [{at: '12:00', factor: -1}]}",
         "factor"),
        ("ev_chargers: [{name: battery, kw: 11}]\nbattery: {usable_kwh: 100, max_charge_kw: 50,"
         " max_discharge_kw: 50}", "'battery' names the battery section's points"),
    ],
)  # fmt: skip
def test_a_bad_storage_section_is_refused_with_its_path(
    tmp_path: Any, text: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"base: normal-day\nname: bad\n{text}\n")
    with pytest.raises(ScenarioError, match=problem):
        load_scenario(path)


def test_clear_sky_is_computed_once_per_day() -> None:
    plant = Plant(with_storage(pv={"kwp": 10.0}))
    assert plant.pv is not None
    day = date(2024, 6, 3)
    assert plant.pv.clear_sky_poa(day) is plant.pv.clear_sky_poa(day)

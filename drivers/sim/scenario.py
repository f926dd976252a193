"""The simulated cell's scenario: every plant parameter and every protocol face, from YAML.

A scenario is validated by pydantic (unknown keys are errors) and may name a `base:` scenario
whose values it overrides key by key, so `leak.yaml` says only what differs from a normal day.
docs/simulator.md gives the public source of each default number.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from controller.configtypes import Duration, Name, PositiveDuration, StrictModel

# The tariff's schema is the controller's (controller/tariff.py); the plant's modules take the
# calendar helpers from here.
from controller.tariff import WEEKDAYS as WEEKDAYS  # noqa: PLC0414
from controller.tariff import WORKDAYS, ClockTime, TariffSpec, Weekday
from controller.tariff import seconds_of_day as seconds_of_day  # noqa: PLC0414
from drivers.modbus.config import REGISTERS, ByteOrder, DataType, Table

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "configs" / "sim"

# --- production -------------------------------------------------------------------------------


class Shift(StrictModel):
    name: Name
    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ends_after_start(self) -> Shift:
        if self.end <= self.start:
            raise ValueError("a shift ends after it starts on the same day (split night shifts)")
        return self


class Pause(StrictModel):
    """A break or an idle period (changeover, cleaning, a machine waiting for material) during
    which machines stay on but do not produce."""

    name: str
    start: ClockTime
    duration: PositiveDuration
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))


class ScheduleSpec(StrictModel):
    shifts: list[Shift] = Field(min_length=1)
    breaks: list[Pause] = Field(default_factory=list)
    idle: list[Pause] = Field(default_factory=list)
    # Minutes before a shift during which machines warm up (idle) and site services start.
    warmup: Duration = 1800.0
    # What machines do between shifts on a working day when nobody tells them otherwise: stay
    # idle (the baseline: a cell run without edgecell leaves them on) or go to standby by their
    # own program. A standby request from the controller overrides either.
    between_shifts: Literal["idle", "standby"] = "idle"


class MachinePower(StrictModel):
    off: float = Field(0.0, ge=0)
    standby: float = Field(ge=0)
    idle: float = Field(ge=0)
    producing: float = Field(gt=0)


class MachineAir(StrictModel):
    """Compressed air use in free air delivered (m3/min at inlet conditions)."""

    idle: float = Field(0.0, ge=0)
    producing: float = Field(0.0, ge=0)


class MachineSpec(StrictModel):
    name: Name
    power_kw: MachinePower
    power_factor: float = Field(0.85, gt=0, le=1)
    air_m3_min: MachineAir = MachineAir()
    # Share of the electrical power that ends up in the chilled water (motor and process heat).
    heat_to_chilled_water: float = Field(0.0, ge=0, le=1)
    # Fraction of producing power that varies from one cycle to the next (1 sigma).
    variability: float = Field(0.08, ge=0, le=0.5)
    # Days with no shift: off (breakers open) or standby (controls powered).
    weekend_state: Literal["off", "standby"] = "off"
    # Leaving standby (PROFIenergy End_Pause): `wake_up` seconds before the machine can produce
    # (Time_to_operate), during which it draws `restart_kwh` on top of its idle power.
    wake_up: Duration = 0.0
    restart_kwh: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _restart_takes_time(self) -> MachineSpec:
        if self.restart_kwh > 0 and self.wake_up <= 0:
            raise ValueError("restart_kwh is drawn during wake_up: give wake_up a duration")
        return self


# --- site and weather -------------------------------------------------------------------------


class AmbientSpec(StrictModel):
    """Daily dry-bulb curve: a cosine between `min_c` (at sunrise-ish, peak_hour - 12 h) and
    `max_c` at `peak_hour`, plus slow weather noise; relative humidity gives the wet bulb."""

    min_c: float = 14.0
    max_c: float = 26.0
    peak_hour: float = Field(15.0, ge=0, lt=24)
    relative_humidity: float = Field(0.55, gt=0, le=1)
    noise_c: float = Field(0.4, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> AmbientSpec:
        if self.min_c > self.max_c:
            raise ValueError("min_c is above max_c")
        return self


class BaseLoadSpec(StrictModel):
    """Lighting, offices, HVAC, IT: what the site draws that is not modelled one by one."""

    kw: float = Field(ge=0)
    occupied_kw: float = Field(ge=0)
    power_factor: float = Field(0.92, gt=0, le=1)


class DomesticWaterSpec(StrictModel):
    m3_h: float = Field(ge=0)
    occupied_m3_h: float = Field(ge=0)


class SiteMeterSpec(StrictModel):
    nominal_voltage_v: float = Field(230.0, gt=0)  # line to neutral
    frequency_hz: float = Field(50.0, gt=0)
    phase_shares: tuple[float, float, float] = (0.34, 0.335, 0.325)
    source_impedance_ohm: float = Field(0.004, ge=0)  # transformer + cable, per phase
    voltage_noise: float = Field(0.003, ge=0)  # fraction of nominal, 1 sigma
    frequency_noise_hz: float = Field(0.015, ge=0)
    demand_window: PositiveDuration = 900.0
    initial_import_kwh: float = Field(250_000.0, ge=0)

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> SiteMeterSpec:
        if abs(sum(self.phase_shares) - 1.0) > 1e-6:
            raise ValueError(f"phase_shares add up to {sum(self.phase_shares)}, not 1")
        return self


class SiteSpec(StrictModel):
    meter: SiteMeterSpec = SiteMeterSpec()
    base_load: BaseLoadSpec
    domestic_water: DomesticWaterSpec
    initial_water_m3: float = Field(18_000.0, ge=0)
    # Power factor of pumps and fans on variable-speed drives.
    drive_power_factor: float = Field(0.95, gt=0, le=1)


# --- utilities --------------------------------------------------------------------------------


class LimitedSetpoint(StrictModel):
    """A setpoint held by a PLC: its local default and the limits the PLC enforces."""

    default: float
    min: float
    max: float

    @model_validator(mode="after")
    def _default_within(self) -> LimitedSetpoint:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} is outside {self.min}..{self.max}")
        return self


class CompressedAirSpec(StrictModel):
    rated_flow_m3_min: float = Field(gt=0)  # free air delivery at full load
    full_load_kw: float = Field(gt=0)  # package input power at rated pressure
    rated_pressure_bar: float = Field(gt=0)  # gauge
    # DOE: ~1 % more power per 2 psi (0.138 bar) more discharge pressure.
    power_increase_per_bar: float = Field(0.0725, ge=0)
    unloaded_fraction: float = Field(0.25, ge=0, le=1)
    pressure_band_bar: float = Field(0.7, gt=0)  # unload at setpoint, load at setpoint - band
    setpoint_bar: LimitedSetpoint
    receiver_m3: float = Field(gt=0)
    # Leaks as a share of rated flow at rated pressure; they flow like an orifice (~ p_abs).
    leak_fraction: float = Field(0.10, ge=0, lt=1)
    # Treatment + piping drop at rated flow to the far end; it grows with flow squared.
    distribution_drop_bar: float = Field(0.5, ge=0)
    critical_min_bar: float = Field(6.0, gt=0)  # what the far-end machine needs
    power_factor: float = Field(0.86, gt=0, le=1)


class ChilledWaterSpec(StrictModel):
    capacity_kw: float = Field(gt=0)
    carnot_fraction: float = Field(0.55, gt=0, lt=1)
    evaporator_approach_k: float = Field(2.0, ge=0)
    condenser_approach_k: float = Field(2.0, ge=0)
    condenser_range_k: float = Field(5.0, gt=0)
    max_cop: float = Field(9.0, gt=0)
    standby_kw: float = Field(1.0, ge=0)
    supply_setpoint_c: LimitedSetpoint
    loop_flow_m3_h: float = Field(gt=0)
    loop_volume_m3: float = Field(gt=0)
    ambient_gain_kw_per_k: float = Field(1.2, ge=0)  # pipes and process spaces above ambient
    process_limit_c: float  # warmest water the process may get (return temperature)
    pump_kw: float = Field(ge=0)
    power_factor: float = Field(0.9, gt=0, le=1)


class CoolingTowerSpec(StrictModel):
    design_heat_kw: float = Field(gt=0)
    approach_k: float = Field(4.0, ge=0)  # leaving water above wet bulb
    # The fan control holds the water at least this warm: chillers need a minimum entering
    # condenser water temperature.
    min_supply_c: float = 18.0
    latent_fraction: float = Field(0.85, gt=0, le=1)  # share of heat leaving as evaporation
    latent_heat_kj_kg: float = Field(2430.0, gt=0)  # of water near 30 degC
    drift_fraction: float = Field(0.00002, ge=0)  # of the circulating flow
    fan_kw: float = Field(ge=0)  # at design heat; fan on a VFD follows the cube law
    condenser_pump_kw: float = Field(ge=0)
    range_k: float = Field(5.0, gt=0)  # condenser water temperature drop across the tower
    system_volume_m3: float = Field(gt=0)
    makeup_conductivity_us_cm: float = Field(gt=0)
    initial_conductivity_us_cm: float = Field(gt=0)
    # The water chemistry's limit (scale and corrosion): ground truth counts time above it.
    max_conductivity_us_cm: float = Field(gt=0)
    blowdown_max_m3_h: float = Field(gt=0)
    # The PLC's own blowdown control: open above `setpoint`, close below setpoint - hysteresis.
    local_conductivity_setpoint_us_cm: float = Field(gt=0)
    local_hysteresis_us_cm: float = Field(100.0, gt=0)


class RinseSpec(StrictModel):
    tank_m3: float = Field(gt=0)
    fresh_max_m3_h: float = Field(gt=0)
    fresh_valve_pct: LimitedSetpoint
    recirc_max_m3_h: float = Field(gt=0)
    recirc_valve_pct: LimitedSetpoint
    # Ion exchange on the recirculation loop: share of dissolved solids removed per pass.
    recirc_removal: float = Field(0.9, ge=0, le=1)
    # The exchanger (a cation + anion bed pair) holds a limited load of ions, then regenerates
    # off line and draws water to do it (docs/simulator.md, "Rinse line", gives the sources).
    # Defaults: 50 L of anion resin (the limiting bed) at an operating capacity of 0.6 eq/L =
    # 30 eq; two 50 L beds at about 6 bed volumes of water each (backwash, regenerant dilution,
    # slow and fast rinse) = 0.6 m3, 20 L per eq removed (NSF/ANSI 44 softener data sheets: about
    # 15 L/eq for one bed); a regeneration cycle of about 2 h.
    ix_capacity_eq: float = Field(30.0, gt=0)
    ix_regeneration_m3: float = Field(0.6, gt=0)
    ix_regeneration_h: float = Field(2.0, gt=0)
    # Share of the capacity already used when the run starts: a bed is at a random point of its
    # cycle, 0.5 on average (0 would let a one-day run use a fresh bed and never pay for it).
    ix_initial_load: float = Field(0.5, ge=0, lt=1)
    recirc_pump_kw: float = Field(ge=0)
    fresh_conductivity_us_cm: float = Field(ge=0)
    initial_conductivity_us_cm: float = Field(ge=0)
    # Process bath carried into the rinse by parts while producing.
    dragout_l_h: float = Field(ge=0)
    bath_conductivity_us_cm: float = Field(ge=0)
    quality_limit_us_cm: float = Field(gt=0)
    machine: Name  # the machine whose production drives drag-out


# --- deferrable loads ---------------------------------------------------------------------------


class TankDraw(StrictModel):
    """Heat the process takes out of a heated tank (kW) while its machine is idle or producing;
    in standby or off only the tank's own losses remain."""

    idle: float = Field(0.0, ge=0)
    producing: float = Field(0.0, ge=0)


class HeatedTankSpec(StrictModel):
    """A tank of process water held hot by an electric heater on a thermostat. The water is
    thermal storage: the heater may be disabled for a while (its energy is deferred, not lost)
    as long as the water stays above `min_c`; enabled again, it recovers."""

    name: Name
    machine: Name  # the machine that draws heat from it
    volume_m3: float = Field(gt=0)
    heater_kw: float = Field(gt=0)
    power_factor: float = Field(0.99, gt=0, le=1)  # resistive elements
    setpoint_c: float  # the thermostat switches the heater off here...
    differential_k: float = Field(3.0, gt=0)  # ...and on again this far below
    min_c: float  # the process needs the water at least this hot
    initial_c: float
    draw_kw: TankDraw
    loss_kw_per_k: float = Field(ge=0)  # insulated tank and pipes to the room (UA)
    room_c: float = 20.0

    @model_validator(mode="after")
    def _thermostat_above_minimum(self) -> HeatedTankSpec:
        if self.min_c > self.setpoint_c - self.differential_k:
            raise ValueError("min_c is above the thermostat's switch-on temperature")
        if self.room_c >= self.setpoint_c:
            raise ValueError("room_c is not below setpoint_c: nothing to heat")
        return self


class ChargingSession(StrictModel):
    """A car plugged in on the given days from `arrive`, wanting `kwh` before it leaves."""

    arrive: ClockTime
    depart: ClockTime
    kwh: float = Field(gt=0)
    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))

    @model_validator(mode="after")
    def _leaves_after_arriving(self) -> ChargingSession:
        if self.depart <= self.arrive:
            raise ValueError("a car departs after it arrives on the same day")
        return self


class EvChargerSpec(StrictModel):
    """An AC charging point (IEC 61851-1 mode 3): it charges at `kw` while a car wants energy
    and the charger is enabled; disabled, its control pilot pauses the car."""

    name: Name
    kw: float = Field(gt=0)
    power_factor: float = Field(0.99, gt=0, le=1)
    sessions: list[ChargingSession] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_car_at_a_time(self) -> EvChargerSpec:
        for day in WEEKDAYS:
            today = sorted((s.arrive, s.depart) for s in self.sessions if day in s.days)
            for (_, depart), (arrive, _) in itertools.pairwise(today):
                if arrive < depart:
                    raise ValueError(f"sessions overlap on {day}: one car at a time")
        return self


class PlcSpec(StrictModel):
    """A PLC's watchdog: when its heartbeat point stops changing for `heartbeat_timeout`, the
    PLC drops remote setpoints and goes back to its local defaults."""

    heartbeat_timeout: PositiveDuration | None = 30.0  # None: no watchdog


class PlcsSpec(StrictModel):
    compressor: PlcSpec = PlcSpec()
    chiller: PlcSpec = PlcSpec()
    water: PlcSpec = PlcSpec()
    # Machine standby requests and the enables of deferrable loads.
    process: PlcSpec = PlcSpec()


# --- storage and sun (optional: off unless a scenario has `pv:` / `battery:`) ---------------


class CloudPoint(StrictModel):
    """The share of clear-sky irradiance that reaches the array at a time of day."""

    at: ClockTime
    factor: float = Field(ge=0, le=1.2)  # above 1: cloud-edge enhancement, seen up to ~1.2


class PvSpec(StrictModel):
    """A rooftop PV array behind the site meter, modelled with pvlib (docs/simulator.md, "PV
    array"): clear-sky irradiance at the site on the tilted plane, module temperature, PVWatts
    DC and inverter models, times the scenario's cloud profile."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = 0.0
    timezone: str = "Europe/Berlin"  # the scenario's local time is this zone's
    tilt_deg: float = Field(15.0, ge=0, le=90)
    azimuth_deg: float = Field(180.0, ge=0, lt=360)  # 180: facing south
    kwp: float = Field(gt=0)  # DC nameplate at STC
    # Inverter AC rating over the DC nameplate (1 / DC-to-AC ratio); PVWatts default 1/1.2.
    inverter_kw: float | None = Field(None, gt=0)  # None: kwp / 1.2
    inverter_efficiency: float = Field(0.96, gt=0, le=1)  # PVWatts eta_inv_nom
    temperature_coefficient: float = Field(-0.0037, le=0)  # per K, PVWatts "premium" modules
    # pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"] key
    mounting: Literal[
        "open_rack_glass_glass",
        "close_mount_glass_glass",
        "open_rack_glass_polymer",
        "insulated_back_glass_polymer",
    ] = "open_rack_glass_polymer"
    wind_m_s: float = Field(1.0, ge=0)
    # PVWatts' default system losses (soiling, wiring, mismatch, ...): 14 %.
    system_losses: float = Field(0.14, ge=0, lt=1)
    clouds: list[CloudPoint] = Field(default_factory=list)  # none: clear sky all day

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _clouds_in_order(self) -> PvSpec:
        times = [c.at for c in self.clouds]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("clouds: give the points in time order, one per time")
        return self

    @property
    def inverter_ac_kw(self) -> float:
        return self.inverter_kw if self.inverter_kw is not None else self.kwp / 1.2


class EfficiencyPoint(StrictModel):
    """One point of the battery inverter's efficiency curve: at `fraction` of rated power."""

    fraction: float = Field(gt=0, le=1)
    efficiency: float = Field(gt=0, le=1)


# Dynapower MPS-100 (a 100 kW C&I battery PCS), its CEC test data as the Sandia inverter model
# in pvlib's CEC inverter library (DYNAPOWER_COMPANY_LLC__MPS_100__480_), evaluated at Vdco.
# tests/drivers/sim/plant/test_storage.py recomputes these from pvlib.
MPS_100_EFFICIENCY: list[tuple[float, float]] = [
    (0.05, 0.445),
    (0.1, 0.722),
    (0.2, 0.859),
    (0.3, 0.903),
    (0.5, 0.937),
    (0.75, 0.95),
    (1.0, 0.955),
]


class BatterySpec(StrictModel):
    """A stationary battery behind the site meter (docs/simulator.md, "Battery")."""

    usable_kwh: float = Field(gt=0)
    max_charge_kw: float = Field(gt=0)
    max_discharge_kw: float = Field(gt=0)
    # The power conversion system's rating, which the efficiency curve's fractions refer to.
    inverter_kw: float | None = Field(None, gt=0)  # None: the larger of the two limits
    inverter_efficiency: list[EfficiencyPoint] = Field(
        default_factory=lambda: [
            EfficiencyPoint(fraction=f, efficiency=e) for f, e in MPS_100_EFFICIENCY
        ],
        min_length=2,
    )
    # DC round trip of the cells and DC bus (charge then discharge), without the inverter.
    dc_round_trip: float = Field(0.94, gt=0, le=1)
    soc_min_pct: float = Field(10.0, ge=0, lt=100)
    soc_max_pct: float = Field(95.0, gt=0, le=100)
    initial_soc_pct: float = Field(50.0, ge=0, le=100)
    standby_kw: float = Field(0.2, ge=0)  # BMS, controls and thermal management, from the cells
    heartbeat_timeout: PositiveDuration | None = 30.0  # the remote setpoint's watchdog

    @model_validator(mode="after")
    def _consistent(self) -> BatterySpec:
        if self.soc_min_pct >= self.soc_max_pct:
            raise ValueError("soc_min_pct is not below soc_max_pct")
        if not self.soc_min_pct <= self.initial_soc_pct <= self.soc_max_pct:
            raise ValueError("initial_soc_pct is outside soc_min_pct..soc_max_pct")
        fractions = [p.fraction for p in self.inverter_efficiency]
        if fractions != sorted(fractions) or len(set(fractions)) != len(fractions):
            raise ValueError("inverter_efficiency: fractions rise from point to point")
        if self.inverter_kw is not None and self.inverter_kw < max(
            self.max_charge_kw, self.max_discharge_kw
        ):
            raise ValueError("inverter_kw is below a power limit the inverter must carry")
        return self

    @property
    def rated_kw(self) -> float:
        return (
            self.inverter_kw
            if self.inverter_kw is not None
            else max(self.max_charge_kw, self.max_discharge_kw)
        )


# --- tariff: controller/tariff.py (the controller's config holds the same) -------------------


# --- events -----------------------------------------------------------------------------------


class EventTime(StrictModel):
    day: int = Field(0, ge=0)  # days after the scenario start
    at: ClockTime

    def seconds_after(self, start: datetime) -> float:
        start_of_day = seconds_of_day(start.time())
        return self.day * 86400.0 + seconds_of_day(self.at) - start_of_day


class AirLeak(StrictModel):
    kind: Literal["air"]
    name: Name
    start: EventTime
    orifice_mm: float = Field(gt=0)
    discharge_coefficient: float = Field(0.61, gt=0, le=1)


class WaterLeak(StrictModel):
    kind: Literal["water"]
    name: Name
    start: EventTime
    m3_h: float = Field(gt=0)
    # main: a pipe behind the main meter; cooling_tower: the basin (seen in the makeup).
    location: Literal["main", "cooling_tower"] = "main"


Leak = Annotated[AirLeak | WaterLeak, Field(discriminator="kind")]


class ExtraLoad(StrictModel):
    """A load outside the normal schedule (a furnace start, a test run, everything at once)."""

    name: Name
    start: EventTime
    duration: PositiveDuration
    kw: float = Field(gt=0)
    power_factor: float = Field(0.85, gt=0, le=1)


class EventsSpec(StrictModel):
    leaks: list[Leak] = Field(default_factory=list)
    loads: list[ExtraLoad] = Field(default_factory=list)


# --- forecasts the site receives (optional: off unless a scenario has `forecast:`) ------------


# A forecast's points are capped so that a typo (`resolution: 1s` over a week) cannot make the
# simulator build, and the controller parse, a payload of millions of points.
MAX_FORECAST_POINTS = 2016  # a week at 5-min resolution
MAX_FORECAST_HORIZON_S = 7 * 86400.0


class CloudErrorSpec(StrictModel):
    """A seeded error on the true cloud profile: forecast = true factor + `bias` + e(t), e a
    first-order autoregressive (AR(1)) series of standard deviation `sigma` whose successive
    points are correlated over `correlation` (docs/simulator.md, "Forecasts")."""

    bias: float = Field(0.0, ge=-1, le=1)
    sigma: float = Field(ge=0, le=1)
    correlation: PositiveDuration = 10800.0


class ForecastCloudPoint(StrictModel):
    """A forecast's cloud factor at a time of day: 0..1 (an hourly forecast does not forecast
    the cloud-edge enhancement the plant's profile may have)."""

    at: ClockTime
    factor: float = Field(ge=0, le=1)


class CloudForecastIssue(StrictModel):
    """One forecast of the PV's cloud factor (the share of clear-sky irradiance on the array,
    as `pv.clouds`), issued at `issued` for `horizon` ahead, one point every `resolution`.
    Either `clouds` (the forecast as written: times of day, as `pv.clouds`; [] is a clear
    sky) or `error` (the true profile with a seeded error)."""

    issued: EventTime
    horizon: PositiveDuration = 86400.0
    resolution: PositiveDuration = 3600.0
    clouds: list[ForecastCloudPoint] | None = None
    error: CloudErrorSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CloudForecastIssue:
        if (self.clouds is None) == (self.error is None):
            raise ValueError("give exactly one of clouds (the forecast) / error (truth + error)")
        if self.horizon > MAX_FORECAST_HORIZON_S:
            raise ValueError(f"horizon is longer than {MAX_FORECAST_HORIZON_S / 86400:g} days")
        if self.resolution < 60.0 or self.resolution > self.horizon:
            raise ValueError("resolution is at least 1 min and at most the horizon")
        if self.horizon / self.resolution + 1 > MAX_FORECAST_POINTS:
            raise ValueError(f"horizon / resolution gives more than {MAX_FORECAST_POINTS} points")
        if self.clouds is not None:
            times = [c.at for c in self.clouds]
            if times != sorted(times) or len(set(times)) != len(times):
                raise ValueError("clouds: give the points in time order, one per time")
        return self


class ForecastSpec(StrictModel):
    """What a weather service would send the site, with its error: the controller gets these
    payloads at their issue times, never the plant's truth."""

    pv_clouds: list[CloudForecastIssue] = Field(default_factory=list, max_length=96)

    @model_validator(mode="after")
    def _issued_in_order(self) -> ForecastSpec:
        issued = [(f.issued.day, f.issued.at) for f in self.pv_clouds]
        if issued != sorted(issued) or len(set(issued)) != len(issued):
            raise ValueError("pv_clouds: give the issues in time order, one per time")
        return self


# --- protocol faces ---------------------------------------------------------------------------


class RegisterSpec(StrictModel):
    """One plant point at one place in a Modbus device: `register value = point * scale`."""

    point: str
    table: Table = Table.HOLDING
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.FLOAT32
    scale: float = 1.0
    description: str = ""

    @model_validator(mode="after")
    def _fits(self) -> RegisterSpec:
        if self.table.is_bits != (self.type is DataType.BOOL):
            raise ValueError("coils and discrete inputs hold type bool, registers the others")
        if self.type in (DataType.STRING, DataType.BIT):
            raise ValueError(f"type {self.type.value} is not served by the simulator")
        if self.scale == 0:
            raise ValueError("scale 0 would hide the value")
        return self

    @property
    def register_count(self) -> int:
        return 1 if self.type is DataType.BOOL else REGISTERS[self.type]


class ModbusDeviceSpec(StrictModel):
    name: Name
    unit_id: int = Field(1, ge=1, le=247)
    port: int = Field(5020, ge=0, le=65535)  # 0: any free port
    word_order: ByteOrder = ByteOrder.ABCD
    resembles: str = ""  # the real product whose register map this one follows
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusDeviceSpec:
        used: dict[tuple[Table, int], str] = {}
        for reg in self.registers:
            for address in range(reg.address, reg.address + reg.register_count):
                key = (reg.table, address)
                if key in used:
                    raise ValueError(
                        f"{reg.point!r} overlaps {used[key]!r} at {reg.table.value} {address}"
                    )
                used[key] = reg.point
        return self


class SunSpecDeviceSpec(StrictModel):
    """The PV inverter or the battery as a SunSpec device over Modbus TCP: the `SunS` marker at
    `base_address`, model 1, model 103 (the inverter's AC side), for the battery model 124, the
    end model (docs/simulator.md, "SunSpec")."""

    name: Name
    equipment: Literal["pv", "battery"]
    unit_id: int = Field(1, ge=1, le=247)
    port: int = Field(1502, ge=0, le=65535)  # 0: any free port
    base_address: Literal[40000, 0, 50000] = 40000
    manufacturer: str = Field("edgecell-sim", max_length=32)
    model: str = Field("", max_length=32)  # empty: "PV inverter" or "Battery inverter"
    serial: str = Field("0001", max_length=32)
    resembles: str = ""


OpcUaType = Literal[
    "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
    "Float", "Double",
]  # fmt: skip


class OpcUaPointSpec(StrictModel):
    """One plant point as a variable node; `node` is its dotted browse path below Objects
    (`Compressor.Pressure`). The same shape as drivers/sim/opcua_server.py's SimPoint."""

    node: str = Field(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")
    writable: bool = False
    type: OpcUaType = "Double"
    unit: str | None = None
    eu_range: tuple[float, float] | None = None


class OpcUaObjectSpec(StrictModel):
    """One PLC object under Objects and its points (plant point name -> node)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    points: dict[str, OpcUaPointSpec] = Field(min_length=1)


class SimAlarm(StrictModel):
    """An off-normal alarm of one PLC object on one of its points: active above `above` (or
    below `below`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    object: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    point: str
    above: float | None = None
    below: float | None = None
    severity: int = Field(default=700, ge=1, le=1000)
    message: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _one_limit(self) -> SimAlarm:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"alarm {self.name!r}: give exactly one of above / below")
        return self

    def crossed(self, value: float | int | bool) -> bool:
        number = float(value)
        if self.above is not None:
            return number > self.above
        assert self.below is not None
        return number < self.below


class OpcUaDeviceSpec(StrictModel):
    """One OPC UA server of the cell. `namespace` and `objects` are handed to SimOpcUaServer."""

    name: Name
    port: int = Field(4840, ge=0, le=65535)  # 0: any free port
    namespace: str = "urn:edgecell:sim"
    objects: list[OpcUaObjectSpec] = Field(min_length=1)
    # Conditions the PLC raises itself (OPC UA Alarms & Conditions).
    alarms: list[SimAlarm] = Field(default_factory=list)

    @model_validator(mode="after")
    def _alarm_points(self) -> OpcUaDeviceSpec:
        points = {o.name: set(o.points) for o in self.objects}
        for alarm in self.alarms:
            if alarm.point not in points.get(alarm.object, set()):
                raise ValueError(
                    f"alarm {alarm.name!r}: {alarm.point!r} is not a point of {alarm.object!r}"
                )
        return self


# --- the scenario -----------------------------------------------------------------------------


# drivers/sim/sunspec_server.py serves W (and VA, VAr) as int16 at a scale factor of 1 (10 W
# steps): the largest AC power a simulated SunSpec device can show.
SUNSPEC_MAX_KW = 327.67


class Scenario(StrictModel):
    name: str
    description: str = ""
    seed: int = 1
    start: datetime  # local time on site; a naive timestamp
    duration: PositiveDuration = 86400.0  # how long a batch run (co-simulation, tests) lasts
    schedule: ScheduleSpec
    machines: list[MachineSpec] = Field(min_length=1)
    ambient: AmbientSpec = AmbientSpec()
    site: SiteSpec
    compressed_air: CompressedAirSpec
    chilled_water: ChilledWaterSpec
    cooling_tower: CoolingTowerSpec
    rinse: RinseSpec
    heated_tanks: list[HeatedTankSpec] = Field(default_factory=list)
    ev_chargers: list[EvChargerSpec] = Field(default_factory=list)
    plcs: PlcsSpec = PlcsSpec()
    pv: PvSpec | None = None
    battery: BatterySpec | None = None
    forecast: ForecastSpec | None = None
    tariff: TariffSpec
    events: EventsSpec = EventsSpec()
    modbus_devices: list[ModbusDeviceSpec] = Field(default_factory=list)
    opcua_devices: list[OpcUaDeviceSpec] = Field(default_factory=list)
    sunspec_devices: list[SunSpecDeviceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> Scenario:
        machines = [m.name for m in self.machines]
        if len(set(machines)) != len(machines):
            raise ValueError("machine names repeat")
        if self.rinse.machine not in machines:
            raise ValueError(f"rinse.machine {self.rinse.machine!r} is not a machine")
        for tank in self.heated_tanks:
            if tank.machine not in machines:
                raise ValueError(f"heated tank {tank.name!r}: {tank.machine!r} is not a machine")
        # Machines, tanks and chargers name their points: `<name>.state`, `<name>.enable`.
        equipment = (
            machines + [t.name for t in self.heated_tanks] + [c.name for c in self.ev_chargers]
        )
        if len(set(equipment)) != len(equipment):
            raise ValueError("machine, heated tank and charger names repeat")
        for prefix, present in (("pv", self.pv), ("battery", self.battery)):
            if present is not None and prefix in equipment:
                raise ValueError(
                    f"{prefix!r} names the {prefix} section's points: rename the equipment"
                )
        devices = (
            [d.name for d in self.modbus_devices]
            + [d.name for d in self.opcua_devices]
            + [d.name for d in self.sunspec_devices]
        )
        for sunspec in self.sunspec_devices:
            equipment = getattr(self, sunspec.equipment)
            if equipment is None:
                raise ValueError(
                    f"SunSpec device {sunspec.name!r} serves the {sunspec.equipment}, "
                    f"but the scenario has no {sunspec.equipment}: section"
                )
            rating = (
                equipment.inverter_ac_kw if isinstance(equipment, PvSpec) else equipment.rated_kw
            )
            if rating > SUNSPEC_MAX_KW:
                raise ValueError(
                    f"SunSpec device {sunspec.name!r}: the {sunspec.equipment}'s {rating:g} kW"
                    f" AC does not fit model 103's W (an int16 in 10 W steps, W_SF 1): at most"
                    f" {SUNSPEC_MAX_KW:g} kW, or its readings would be clipped there"
                )
        if len(set(devices)) != len(devices):
            raise ValueError("device names repeat")
        if self.forecast is not None and self.forecast.pv_clouds and self.pv is None:
            raise ValueError("forecast.pv_clouds forecasts a PV array, but there is no pv: section")
        leaks = [leak.name for leak in self.events.leaks]
        if len(set(leaks)) != len(leaks):
            raise ValueError("leak names repeat")
        return self


class ScenarioError(Exception):
    """A scenario that cannot be loaded; the message names the file and every problem."""


def scenario_path(name_or_path: str | Path) -> Path:
    """A name such as `normal-day` means configs/sim/normal-day.yaml; anything else is a path."""
    text = str(name_or_path)
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        return SCENARIO_DIR / f"{text}.yaml"
    return Path(text)


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def _merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; anything else (lists too) is replaced by the override."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def _read_data(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path in seen:
        raise ScenarioError(f"{path}: base scenarios form a loop: {' -> '.join(map(str, seen))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        names = ", ".join(scenario_names())
        raise ScenarioError(f"{path}: cannot read the scenario ({exc}); known: {names}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = scenario_path(base)
    if not base_path.is_absolute() and "/" in str(base):
        base_path = path.parent / base_path
    return dict(_merge(_read_data(base_path, (*seen, path)), data))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by name (configs/sim/NAME.yaml) or path."""
    path = scenario_path(name_or_path)
    data = _read_data(path, ())
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ScenarioError("\n".join(problems)) from None

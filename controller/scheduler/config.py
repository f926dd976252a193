"""The `tariff:` and `scheduler:` sections of the config: the prices the plan is made against,
and what the scheduler plans (the battery, the cars, the heated tanks), from which tags it learns
the site, how far ahead and how often it plans, and when a plan or its inputs are too old to use.
docs/configuration.md, "Scheduler", describes every key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from controller.configtypes import Name, PositiveDuration, StrictModel, format_duration
from controller.rules.common import TagKey
from controller.rules.schedule import ScheduleConfig, TimeOfDay, TimeZoneName
from controller.tariff import WEEKDAYS, TariffSpec, Weekday

# Most steps a plan may have: 48 h at 5-min steps (the solve-time bench goes to 288).
MAX_STEPS = 576


class TariffConfig(TariffSpec):
    """The site's tariff (controller/tariff.py, the scenario's schema) and the zone its periods'
    times are in."""

    timezone: TimeZoneName = "UTC"


class SiteConfig(StrictModel):
    """The grid connection: the site meter and its limits."""

    # The site's grid power in kW, + import, the battery's own power in it (the meter).
    power: TagKey
    grid_import_max_kw: float | None = Field(None, gt=0)
    grid_export_max_kw: float | None = Field(None, ge=0)


class BatteryPlanConfig(StrictModel):
    """The battery as the plan models it (one point of its efficiency curve: the LP is linear)."""

    # The battery's AC power in kW, + discharging (SunSpec 103 W).
    power: TagKey
    # State of charge in %.
    soc: TagKey
    capacity_kwh: float = Field(gt=0)
    max_charge_kw: float = Field(gt=0)
    max_discharge_kw: float = Field(gt=0)
    charge_efficiency: float = Field(0.95, gt=0, le=1)
    discharge_efficiency: float = Field(0.95, gt=0, le=1)
    # Cost per kWh of AC throughput (charge + discharge): the cell wear a cycle costs.
    degradation_per_kwh: float = Field(0.0, ge=0)
    standby_loss_kw: float = Field(0.0, ge=0)
    # The plan keeps the SoC between these.
    reserve_pct: float = Field(10.0, ge=0, lt=100)
    soc_max_pct: float = Field(95.0, gt=0, le=100)
    # At the horizon's end at least this (null: the reserve), and what a kWh left is worth
    # (so the plan does not empty the battery because the horizon ends). `auto`: what it
    # displaces at the least, the horizon's cheapest import price less the discharge's wear,
    # times the discharge efficiency (docs/rules.md, "The end of the horizon").
    end_soc_pct: float | None = Field(None, ge=0, le=100)
    end_value_per_kwh: float | Literal["auto"] = "auto"

    @field_validator("end_value_per_kwh")
    @classmethod
    def _end_value(cls, value: float | Literal["auto"]) -> float | Literal["auto"]:
        if value != "auto" and value < 0:
            raise ValueError(f"auto or a number >= 0, got {value!r}")
        return value

    @model_validator(mode="after")
    def _window(self) -> BatteryPlanConfig:
        if self.reserve_pct >= self.soc_max_pct:
            raise ValueError("reserve_pct must be below soc_max_pct: the battery could never move")
        end = self.end_soc_pct
        if end is not None and not self.reserve_pct <= end <= self.soc_max_pct:
            raise ValueError("end_soc_pct must be between reserve_pct and soc_max_pct")
        return self


class LoadForecastConfig(StrictModel):
    """The inflexible load: per period of the production schedule and per time of day within it,
    the power learned from the site's own metering (meter + battery discharge + PV - the planned
    loads), starting from `prior_kw` until a period has been seen; corrected by its recent
    error (controller/scheduler/forecast.py, `LoadForecaster`)."""

    schedule: ScheduleConfig
    # kW per period name of `schedule` (every period and the default), the first day's guess.
    prior_kw: dict[Name, float]
    # The PV's AC power in kW: the meter sees the load less the PV, so it is added back.
    pv_power: TagKey | None = None
    # How far one step's average moves the learned power of its period (0..1].
    learn_weight: float = Field(0.2, gt=0, le=1)
    # Learned powers older than this are forgotten at start (the prior again).
    forget_after: PositiveDuration = 30 * 86400.0
    # The load's recent error against its forecast (per period) is added to the coming steps
    # of its period, all of it at first, none this long after it was measured (linear).
    error_blend: PositiveDuration = 4 * 3600.0

    @model_validator(mode="after")
    def _prior_per_period(self) -> LoadForecastConfig:
        names = {self.schedule.default, *(p.name for p in self.schedule.periods)}
        missing = sorted(names - set(self.prior_kw))
        if missing:
            raise ValueError(f"prior_kw: give a power for every period of the schedule: {missing}")
        unknown = sorted(set(self.prior_kw) - names)
        if unknown:
            raise ValueError(f"prior_kw: the schedule has no period {unknown[0]!r}")
        for name, kw in self.prior_kw.items():
            if kw < 0:
                raise ValueError(f"prior_kw.{name}: {kw:g} kW is negative")
        return self


class PvForecastConfig(StrictModel):
    """The PV array, for a clear-sky forecast (pvlib, in the solver's process) times the cloud
    factor a weather service feeds on `{base}/forecast/pv` (or in `file`)."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = Field(0.0, ge=-500, le=9000)
    tilt_deg: float = Field(15.0, ge=0, le=90)
    azimuth_deg: float = Field(180.0, ge=0, lt=360)  # 180: facing south
    kwp: float = Field(gt=0)
    inverter_kw: float | None = Field(None, gt=0)  # null: kwp / 1.2
    inverter_efficiency: float = Field(0.96, gt=0, le=1)
    system_losses: float = Field(0.14, ge=0, lt=1)
    # The zone whose local time the gateway's wall clock reads: UTC on a real gateway; the
    # co-simulation reads the scenario's local time as UTC, so its config names that zone.
    wall_clock_zone: TimeZoneName = "UTC"
    # A forecast file (the topic's JSON), read at every re-plan, instead of the topic.
    file: Path | None = None
    # A forecast issued longer ago than this is stale: no plan (the reactive rules decide).
    max_age: PositiveDuration = 12 * 3600.0
    # Without any valid forecast: `no_plan` (the reactive rules decide) or `clear_sky`.
    without_forecast: Literal["no_plan", "clear_sky"] = "no_plan"
    # The clear-sky index the PV meter measured over the last step is held for the next steps
    # and blended back to the forecast's cloud factor over this (linear).
    persistence: PositiveDuration = 3 * 3600.0
    # The plan's peak must also hold if the sun beyond what the PV meter measured gives only
    # this share of its forecast (1: the forecast is trusted): the battery keeps what a forecast
    # of too much sun would leave it short of (docs/rules.md, "Scheduler: forecasts").
    forecast_share: float = Field(0.0, ge=0, le=1)

    @property
    def inverter_ac_kw(self) -> float:
        """The inverter's AC limit: `inverter_kw`, or kwp / 1.2 (a usual DC/AC ratio) without it."""
        return self.inverter_kw if self.inverter_kw is not None else self.kwp / 1.2


class EvSessionConfig(StrictModel):
    """A car expected on a charger: plugged in at `arrive`, gone at `depart`, wanting
    `energy_kwh` by then. `connected` says whether a car is there now."""

    name: Name
    connected: TagKey
    # The charger's kW, to count the energy delivered since the car came.
    power: TagKey | None = None
    max_kw: float = Field(gt=0)
    arrive: TimeOfDay
    depart: TimeOfDay
    energy_kwh: float = Field(gt=0)
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)

    @model_validator(mode="after")
    def _departs_after_arrival(self) -> EvSessionConfig:
        if self.depart <= self.arrive:
            raise ValueError("depart must be after arrive on the same day")
        hours = (self.depart - self.arrive) / 3600
        if self.energy_kwh > self.max_kw * hours:
            raise ValueError(
                f"energy_kwh {self.energy_kwh:g} cannot be delivered at {self.max_kw:g} kW in"
                f" {hours:g} h"
            )
        return self


class TankConfig(StrictModel):
    """An electrically heated tank as thermal storage: its temperature band and losses."""

    name: Name
    temperature: TagKey
    # The heater's kW, taken out of the metered load (the plan moves it).
    power: TagKey | None = None
    heater_kw: float = Field(gt=0)
    min_c: float
    max_c: float
    heat_capacity_kwh_per_k: float = Field(gt=0)
    loss_kw_per_k: float = Field(ge=0)
    ambient_c: float = 20.0
    # Heat the process draws, kW per period of the load schedule (a period not listed: 0).
    draw_kw: dict[Name, float] = Field(default_factory=dict)
    efficiency: float = Field(1.0, gt=0, le=1)
    # The heater is on or off for a whole step (a contactor): a mixed-integer plan.
    on_off: bool = False

    @model_validator(mode="after")
    def _band(self) -> TankConfig:
        if self.min_c >= self.max_c:
            raise ValueError("min_c must be below max_c")
        for name, kw in self.draw_kw.items():
            if kw < 0:
                raise ValueError(f"draw_kw.{name}: {kw:g} kW is negative")
        return self


class DisturbanceConfig(StrictModel):
    """When the present breaks the plan enough to plan again before the next quarter hour."""

    # SoC off the plan's trajectory by more than this (percentage points).
    soc_pct: float = Field(10.0, gt=0)
    # The load of the step so far off its forecast by more than this.
    load_kw: float = Field(50.0, gt=0)
    # The PV metered over the last minutes (`hold`, at least) off the plan's by more than this.
    pv_kw: float = Field(30.0, gt=0)
    # A disturbance must hold this long (no re-plan on one noisy sample) ...
    hold: PositiveDuration = 60.0
    # ... and disturbance re-plans come at most this often.
    min_interval: PositiveDuration = 300.0


class SchedulerConfig(StrictModel):
    """The model-predictive scheduler (docs/rules.md, "Scheduler: the runtime")."""

    horizon: PositiveDuration = 86400.0
    step: PositiveDuration = 900.0
    # Re-planned at every multiple of this on the clock (:00, :15, :30, :45 for 15 min).
    replan: PositiveDuration = 900.0
    # HiGHS' time limit for one solve, and the time the solver's process is given for one
    # answer before it is killed (and started again).
    solve_time_limit: PositiveDuration = 2.0
    worker_timeout: PositiveDuration = 20.0
    # The solver's process loads HiGHS and pvlib before it is ready (seconds on a busy gateway).
    worker_start_timeout: PositiveDuration = 60.0
    # A plan older than this is not followed.
    plan_max_age: PositiveDuration = 3600.0
    # A meter or SoC reading older than this: the plan's inputs are stale, no re-plan.
    input_max_age: PositiveDuration = 60.0
    # After a failed re-plan (or the solver's process dying) the next try comes after this,
    # doubling up to `replan`.
    retry: PositiveDuration = 30.0
    site: SiteConfig
    battery: BatteryPlanConfig | None = None
    load: LoadForecastConfig
    pv: PvForecastConfig | None = None
    evs: list[EvSessionConfig] = Field(default_factory=list)
    tanks: list[TankConfig] = Field(default_factory=list)
    disturbance: DisturbanceConfig = DisturbanceConfig()

    @model_validator(mode="after")
    def _timing(self) -> SchedulerConfig:
        step, horizon, replan = self.step, self.horizon, self.replan
        if step < 60 or step != int(step) or 3600 % int(step):
            raise ValueError(
                f"step: {format_duration(step)} does not divide the hour in whole minutes"
                " (5min, 15min, 30min, ...)"
            )
        if horizon % step:
            raise ValueError(f"horizon: {format_duration(horizon)} is not a whole number of steps")
        if horizon / step > MAX_STEPS:
            raise ValueError(f"horizon: {int(horizon / step)} steps, more than {MAX_STEPS}")
        if horizon < 3600:
            raise ValueError("horizon: plan at least one hour ahead")
        if replan % step or (3600 % replan if replan <= 3600 else replan % 3600):
            raise ValueError(
                f"replan: {format_duration(replan)} is not whole steps dividing the hour"
            )
        if self.worker_timeout <= self.solve_time_limit:
            raise ValueError("worker_timeout must be longer than solve_time_limit")
        if self.plan_max_age < replan:
            raise ValueError("plan_max_age is shorter than replan: every plan would go stale")
        if self.pv is not None and self.load.pv_power is None:
            raise ValueError(
                "load: give pv_power with pv: the learned load needs the PV's power added back"
                " (the meter sees the load less the PV)"
            )
        names = [ev.name for ev in self.evs] + [tank.name for tank in self.tanks]
        if len(set(names)) != len(names):
            raise ValueError("evs and tanks: names repeat")
        periods = {self.load.schedule.default, *(p.name for p in self.load.schedule.periods)}
        for i, tank in enumerate(self.tanks):
            for name in tank.draw_kw:
                if name not in periods:
                    raise ValueError(
                        f"tanks[{i}].draw_kw: the load schedule has no period {name!r}"
                    )
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        """(field path, tag) of every tag the scheduler reads, for the config check."""
        tags = [("site.power", self.site.power)]
        if self.battery is not None:
            tags += [("battery.power", self.battery.power), ("battery.soc", self.battery.soc)]
        if self.load.pv_power is not None:
            tags.append(("load.pv_power", self.load.pv_power))
        for i, ev in enumerate(self.evs):
            tags.append((f"evs[{i}].connected", ev.connected))
            if ev.power is not None:
                tags.append((f"evs[{i}].power", ev.power))
        for i, tank in enumerate(self.tanks):
            tags.append((f"tanks[{i}].temperature", tank.temperature))
            if tank.power is not None:
                tags.append((f"tanks[{i}].power", tank.power))
        return tags

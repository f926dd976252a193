"""What crosses the boundary between the daemon and the solver's process, one JSON line each
way: the request (the problem, and the PV array with its cloud factors when there is PV) and the
reply (the plan, or why there is none). Both sides validate everything they read with these
models: finite numbers, one value per step, times in order; a reply that does not pass is no
plan."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from controller.configtypes import StrictModel

# One line of the protocol at most (a 576-step plan with loads is about 300 KB).
MAX_LINE_BYTES = 4 * 1024**2
MAX_STEPS = 2000

Series = list[float]


class BatteryWire(StrictModel):
    capacity_kwh: float = Field(gt=0)
    soc_kwh: float = Field(ge=0)
    soc_min_kwh: float = Field(ge=0)
    soc_max_kwh: float = Field(gt=0)
    max_charge_kw: float = Field(ge=0)
    max_discharge_kw: float = Field(ge=0)
    charge_efficiency: float = Field(gt=0, le=1)
    discharge_efficiency: float = Field(gt=0, le=1)
    degradation_per_kwh: float = Field(0.0, ge=0)
    standby_loss_kw: float = Field(0.0, ge=0)
    end_soc_min_kwh: float | None = Field(None, ge=0)
    end_value_per_kwh: float = Field(0.0, ge=0)


class EvWire(StrictModel):
    name: str = Field(min_length=1, max_length=64)
    max_kw: float = Field(gt=0)
    first_step: int = Field(ge=0)
    depart_step: int = Field(ge=0)
    energy_kwh: float = Field(ge=0)


class TankWire(StrictModel):
    name: str = Field(min_length=1, max_length=64)
    heater_kw: float = Field(gt=0)
    temp_c: float
    min_c: float
    max_c: float
    heat_capacity_kwh_per_k: float = Field(gt=0)
    loss_kw_per_k: float = Field(ge=0)
    ambient_c: float
    draw_kw: Series
    efficiency: float = Field(1.0, gt=0, le=1)
    on_off: bool = False


class ProblemWire(StrictModel):
    start_ms: int = Field(ge=0)
    step_minutes: float = Field(gt=0, le=60)
    base_load_kw: Series = Field(min_length=1, max_length=MAX_STEPS)
    pv_kw: Series | None = None  # None: computed in the solver's process from `PvWire`
    import_price: Series
    export_price: Series
    demand_charge_per_kw: float = Field(0.0, ge=0)
    # The sunless case's own peak charge (None: it bounds the billing peak; lp.py, _add_low_pv).
    pv_low_demand_charge_per_kw: float | None = Field(None, ge=0)
    demand_window_steps: int = Field(1, ge=1)
    peak_already_kw: float = Field(0.0, ge=0)
    first_window_import_kwh: float = Field(0.0, ge=0)
    # Steps of the horizon in the first billing window (None: step 0 starts a window).
    first_window_steps: int | None = Field(None, ge=1)
    grid_import_max_kw: float | None = Field(None, gt=0)  # None: no limit
    grid_export_max_kw: float | None = Field(None, ge=0)
    battery: BatteryWire | None = None
    evs: list[EvWire] = Field(default_factory=list, max_length=100)
    tanks: list[TankWire] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _one_value_per_step(self) -> ProblemWire:
        steps = len(self.base_load_kw)
        series = {"import_price": self.import_price, "export_price": self.export_price}
        if self.pv_kw is not None:
            series["pv_kw"] = self.pv_kw
        for i, tank in enumerate(self.tanks):
            series[f"tanks[{i}].draw_kw"] = tank.draw_kw
        for name, values in series.items():
            if len(values) != steps:
                raise ValueError(f"{name}: {len(values)} values for {steps} steps")
        return self


class PvWire(StrictModel):
    """The PV array and the cloud factor of each step; the solver's process computes the kW."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = 0.0
    tilt_deg: float = Field(ge=0, le=90)
    azimuth_deg: float = Field(ge=0, lt=360)
    kwp: float = Field(gt=0)
    inverter_kw: float = Field(gt=0)
    inverter_efficiency: float = Field(gt=0, le=1)
    system_losses: float = Field(ge=0, lt=1)
    wall_clock_zone: str = Field(min_length=1, max_length=64)
    cloud: Series = Field(max_length=MAX_STEPS)
    # The PV's AC kW metered on average from `measured_from_ms` to `measured_to_ms` (none: not
    # measured): its clear-sky index is held for the next steps, blended back to `cloud` over
    # `persistence_h` (controller/scheduler/pvmodel.py).
    measured_kw: float | None = Field(None, ge=0, le=1e6)
    measured_from_ms: int | None = Field(None, ge=0)
    measured_to_ms: int | None = Field(None, ge=0)
    persistence_h: float = Field(0.0, ge=0, le=48)
    # The plan's peak must also hold with this share of the forecast's factor (beyond what was
    # measured): a second, sunless case in the LP (1: none).
    forecast_share: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _factors(self) -> PvWire:
        for i, factor in enumerate(self.cloud):
            if not 0 <= factor <= 1:
                raise ValueError(f"cloud[{i}]: {factor} is not between 0 and 1")
        given = (self.measured_kw, self.measured_from_ms, self.measured_to_ms)
        if any(v is None for v in given) and any(v is not None for v in given):
            raise ValueError("measured_kw, measured_from_ms, measured_to_ms: all or none")
        if (
            self.measured_from_ms is not None
            and self.measured_to_ms is not None
            and self.measured_to_ms <= self.measured_from_ms
        ):
            raise ValueError("measured_to_ms must be after measured_from_ms")
        return self


class SolveRequest(StrictModel):
    id: int = Field(ge=0)
    time_limit_s: float = Field(gt=0, le=600)
    problem: ProblemWire
    pv: PvWire | None = None

    @model_validator(mode="after")
    def _pv_given_once(self) -> SolveRequest:
        if (self.pv is None) == (self.problem.pv_kw is None):
            raise ValueError("give the PV either as problem.pv_kw or as pv, once")
        if self.pv is not None and len(self.pv.cloud) != len(self.problem.base_load_kw):
            raise ValueError("pv.cloud: one factor per step")
        return self


class StepWire(StrictModel):
    start_ms: int = Field(ge=0)
    battery_kw: float
    ev_kw: dict[str, float] = Field(default_factory=dict)
    tank_kw: dict[str, float] = Field(default_factory=dict)
    import_kw: float = Field(ge=-1e-6)
    export_kw: float = Field(ge=-1e-6)
    soc_kwh: float
    soc_pct: float
    tank_c: dict[str, float] = Field(default_factory=dict)
    price: float
    load_kw: float
    pv_kw: float


class PlanWire(StrictModel):
    steps: list[StepWire] = Field(min_length=1, max_length=MAX_STEPS)
    cost: dict[str, float]
    peak_kw: float = Field(ge=0)
    build_ms: float = Field(ge=0)
    solve_ms: float = Field(ge=0)
    status: Literal["optimal"]


class SolveReply(StrictModel):
    id: int
    ok: bool
    plan: PlanWire | None = None
    error: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _plan_when_ok(self) -> SolveReply:
        if self.ok != (self.plan is not None):
            raise ValueError("a reply carries a plan exactly when ok")
        return self

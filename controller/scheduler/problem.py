"""The scheduler's data: what one re-plan is asked (`Problem`) and what it answers (`Plan`).

Pure data, validated on construction (a NaN price or a tank forecast one step short raises
`SchedulerError` naming the field), so the solver, the worker process and the tests share one
set of checks; no solver import here. Units are in the names: kW are averages over a step, kWh,
degrees C, money in the tariff's currency. docs/rules.md, "Scheduler: the model".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any


class SchedulerError(Exception):
    """A problem that cannot be planned (bad or infeasible input) or a solve that failed."""


# --- checks -----------------------------------------------------------------------------------


def _real(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SchedulerError(f"{where} must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number):
        raise SchedulerError(f"{where} must be a number, got NaN")
    return number


# No site has a load, a price or a capacity beyond this; the solver is native code, and numbers
# far outside its scaling range are refused here rather than handed to it.
MAGNITUDE_MAX = 1e9


def _finite(where: str, value: object) -> float:
    number = _real(where, value)
    if math.isinf(number):
        raise SchedulerError(f"{where} must be finite, got {number}")
    if abs(number) > MAGNITUDE_MAX:
        raise SchedulerError(f"{where} {number:g} is beyond +-{MAGNITUDE_MAX:g}")
    return number


def _non_negative(where: str, value: object) -> float:
    number = _finite(where, value)
    if number < 0:
        raise SchedulerError(f"{where} must be >= 0, got {number:g}")
    return number


def _positive(where: str, value: object) -> float:
    number = _finite(where, value)
    if number <= 0:
        raise SchedulerError(f"{where} must be > 0, got {number:g}")
    return number


def _limit(where: str, value: object) -> float:
    """A limit that may be infinite (no limit) but not NaN or negative."""
    number = _real(where, value)
    if number < 0:
        raise SchedulerError(f"{where} must be >= 0, got {number:g}")
    if MAGNITUDE_MAX < number < math.inf:
        raise SchedulerError(f"{where} {number:g} is beyond {MAGNITUDE_MAX:g} (inf: no limit)")
    return number


def _count(where: str, value: object, *, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SchedulerError(f"{where} must be a whole number, got {value!r}")
    number = int(value)
    if number < least:
        raise SchedulerError(f"{where} must be >= {least}, got {number}")
    return number


def _series(where: str, values: object, *, non_negative: bool) -> tuple[float, ...]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise SchedulerError(f"{where} must be a list of numbers, got {values!r}")
    check = _non_negative if non_negative else _finite
    return tuple(check(f"{where}[{i}]", v) for i, v in enumerate(values))


def _name(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SchedulerError(f"{where} must be a non-empty name, got {value!r}")
    return value


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses: normalised once, in __post_init__


# --- the problem ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatteryModel:
    capacity_kwh: float
    soc_kwh: float  # now
    soc_min_kwh: float  # the reserve the plan keeps
    soc_max_kwh: float
    max_charge_kw: float  # AC side
    max_discharge_kw: float  # AC side
    charge_efficiency: float  # AC->stored, 0<e<=1 (one point of the curve: the LP is linear)
    discharge_efficiency: float  # stored->AC
    degradation_per_kwh: float = 0.0  # cost per kWh of AC throughput (charge + discharge)
    standby_loss_kw: float = 0.0
    end_soc_min_kwh: float | None = None  # at the horizon's end (None: soc_min_kwh)
    end_value_per_kwh: float = 0.0  # worth of a stored kWh left at the end (no dump at the end)

    def __post_init__(self) -> None:
        w = "battery."
        _set(self, "capacity_kwh", _positive(w + "capacity_kwh", self.capacity_kwh))
        for name in (
            "soc_kwh",
            "soc_min_kwh",
            "soc_max_kwh",
            "max_charge_kw",
            "max_discharge_kw",
            "degradation_per_kwh",
            "standby_loss_kw",
            "end_value_per_kwh",
        ):
            _set(self, name, _non_negative(w + name, getattr(self, name)))
        for name in ("charge_efficiency", "discharge_efficiency"):
            value = _positive(w + name, getattr(self, name))
            if value > 1.0:
                raise SchedulerError(f"{w}{name} must be in (0, 1], got {value:g}")
            _set(self, name, value)
        if not self.soc_min_kwh <= self.soc_max_kwh <= self.capacity_kwh:
            raise SchedulerError(
                f"{w}soc_min_kwh <= soc_max_kwh <= capacity_kwh must hold, got "
                f"{self.soc_min_kwh:g}, {self.soc_max_kwh:g}, {self.capacity_kwh:g}"
            )
        if self.soc_kwh > self.capacity_kwh:
            raise SchedulerError(
                f"{w}soc_kwh {self.soc_kwh:g} is above capacity_kwh {self.capacity_kwh:g}"
            )
        if self.end_soc_min_kwh is not None:
            end = _non_negative(w + "end_soc_min_kwh", self.end_soc_min_kwh)
            if end > self.soc_max_kwh:
                raise SchedulerError(
                    f"{w}end_soc_min_kwh {end:g} is above soc_max_kwh {self.soc_max_kwh:g}"
                )
            _set(self, "end_soc_min_kwh", end)

    @property
    def end_floor_kwh(self) -> float:
        return self.soc_min_kwh if self.end_soc_min_kwh is None else self.end_soc_min_kwh


@dataclass(frozen=True, slots=True)
class EvSession:
    name: str
    max_kw: float
    first_step: int  # the car is plugged in from this step (0: now)
    depart_step: int  # gone at the start of this step (exclusive)
    energy_kwh: float  # still to deliver by departure (a hard constraint)

    def __post_init__(self) -> None:
        _name("evs[].name", self.name)
        w = f"evs[{self.name!r}]."
        _set(self, "max_kw", _non_negative(w + "max_kw", self.max_kw))
        _set(self, "energy_kwh", _non_negative(w + "energy_kwh", self.energy_kwh))
        _set(self, "first_step", _count(w + "first_step", self.first_step))
        _set(self, "depart_step", _count(w + "depart_step", self.depart_step))
        if self.depart_step < self.first_step:
            raise SchedulerError(
                f"{w}depart_step {self.depart_step} is before first_step {self.first_step}"
            )


@dataclass(frozen=True, slots=True)
class ThermalTank:
    name: str
    heater_kw: float  # electric, on at most this
    temp_c: float  # now
    min_c: float  # the process's lower limit (hard)
    max_c: float  # the thermostat's upper limit
    heat_capacity_kwh_per_k: float
    loss_kw_per_k: float  # to ambient
    ambient_c: float
    draw_kw: tuple[float, ...]  # heat the process takes per step (forecast)
    efficiency: float = 1.0
    on_off: bool = False  # True: the heater is on or off for a whole step (MIP)

    def __post_init__(self) -> None:
        _name("tanks[].name", self.name)
        w = f"tanks[{self.name!r}]."
        _set(self, "heater_kw", _non_negative(w + "heater_kw", self.heater_kw))
        for name in ("temp_c", "min_c", "max_c", "ambient_c"):
            _set(self, name, _finite(w + name, getattr(self, name)))
        if self.min_c >= self.max_c:
            raise SchedulerError(f"{w}min_c {self.min_c:g} must be below max_c {self.max_c:g}")
        _set(
            self,
            "heat_capacity_kwh_per_k",
            _positive(w + "heat_capacity_kwh_per_k", self.heat_capacity_kwh_per_k),
        )
        _set(self, "loss_kw_per_k", _non_negative(w + "loss_kw_per_k", self.loss_kw_per_k))
        _set(self, "efficiency", _positive(w + "efficiency", self.efficiency))
        _set(self, "draw_kw", _series(w + "draw_kw", self.draw_kw, non_negative=True))
        if not isinstance(self.on_off, bool):
            raise SchedulerError(f"{w}on_off must be true or false, got {self.on_off!r}")


@dataclass(frozen=True, slots=True)
class Problem:
    start_ms: int
    step_minutes: float
    base_load_kw: tuple[float, ...]  # the inflexible load forecast per step (no battery, PV,
    # EV or tank heater in it)
    pv_kw: tuple[float, ...]  # PV forecast per step (same length)
    import_price: tuple[float, ...]  # per kWh, per step
    export_price: tuple[float, ...]  # per kWh, per step (0: export earns nothing)
    demand_charge_per_kw: float = 0.0  # per kW of the billing period's highest window average
    demand_window_steps: int = 1  # billing window in steps (15 min at 5-min steps: 3);
    # windows aligned to step 0 (the planner aligns step 0 to a window start), or see
    # first_window_steps
    peak_already_kw: float = 0.0  # highest window average already set this billing period:
    # demand below it costs nothing more
    first_window_import_kwh: float = 0.0  # import already metered in the window step 0 is in
    grid_import_max_kw: float = math.inf
    grid_export_max_kw: float = math.inf
    battery: BatteryModel | None = None
    evs: tuple[EvSession, ...] = ()
    tanks: tuple[ThermalTank, ...] = ()
    # Steps of the horizon in the first billing window (None: a whole window, step 0 at a
    # window start); a re-plan 5 min into a 15-min window at 5-min steps: 2.
    first_window_steps: int | None = None
    # The PV the plan's peak must also hold with (a forecast of less sun than `pv_kw`: the
    # battery keeps what that would need); None: `pv_kw` only (docs/rules.md, "Scheduler:
    # forecasts").
    pv_low_kw: tuple[float, ...] | None = None
    # That case's peak: None, the same billing peak as the expected case's (the peak must hold
    # in both); a number, its own peak charged this much per kW above `peak_already_kw` (where
    # `demand_charge_per_kw` is a share of the month's charge: a day without the forecast's
    # sun sets the month's peak, at the month's rate).
    pv_low_demand_charge_per_kw: float | None = None

    def __post_init__(self) -> None:
        _set(self, "start_ms", _count("start_ms", self.start_ms))
        _set(self, "step_minutes", _positive("step_minutes", self.step_minutes))
        _set(self, "base_load_kw", _series("base_load_kw", self.base_load_kw, non_negative=True))
        steps = len(self.base_load_kw)
        if steps == 0:
            raise SchedulerError("base_load_kw is empty: the horizon needs at least one step")
        _set(self, "pv_kw", _series("pv_kw", self.pv_kw, non_negative=True))
        _set(self, "import_price", _series("import_price", self.import_price, non_negative=False))
        _set(self, "export_price", _series("export_price", self.export_price, non_negative=False))
        for name in ("pv_kw", "import_price", "export_price"):
            if len(getattr(self, name)) != steps:
                raise SchedulerError(
                    f"{name} has {len(getattr(self, name))} steps, base_load_kw has {steps}"
                )
        for i, (buy, sell) in enumerate(zip(self.import_price, self.export_price, strict=True)):
            if sell > buy:
                # Buying to sell in the same step would be free money to the LP (one meter
                # cannot import and export at once); decided: such a tariff is refused.
                raise SchedulerError(
                    f"export_price[{i}] {sell:g} is above import_price[{i}] {buy:g}"
                )
        if self.pv_low_kw is not None:
            _set(self, "pv_low_kw", _series("pv_low_kw", self.pv_low_kw, non_negative=True))
            if len(self.pv_low_kw) != steps:
                raise SchedulerError(
                    f"pv_low_kw has {len(self.pv_low_kw)} steps, base_load_kw has {steps}"
                )
        if self.pv_low_demand_charge_per_kw is not None:
            _set(
                self,
                "pv_low_demand_charge_per_kw",
                _non_negative("pv_low_demand_charge_per_kw", self.pv_low_demand_charge_per_kw),
            )
        _set(
            self,
            "demand_charge_per_kw",
            _non_negative("demand_charge_per_kw", self.demand_charge_per_kw),
        )
        _set(
            self,
            "demand_window_steps",
            _count("demand_window_steps", self.demand_window_steps, least=1),
        )
        if self.first_window_steps is not None:
            first = _count("first_window_steps", self.first_window_steps, least=1)
            if first > self.demand_window_steps:
                raise SchedulerError(
                    f"first_window_steps {first} is more than demand_window_steps "
                    f"{self.demand_window_steps}"
                )
            _set(self, "first_window_steps", first)
        _set(self, "peak_already_kw", _non_negative("peak_already_kw", self.peak_already_kw))
        _set(
            self,
            "first_window_import_kwh",
            _non_negative("first_window_import_kwh", self.first_window_import_kwh),
        )
        _set(self, "grid_import_max_kw", _limit("grid_import_max_kw", self.grid_import_max_kw))
        _set(self, "grid_export_max_kw", _limit("grid_export_max_kw", self.grid_export_max_kw))
        if self.battery is not None and not isinstance(self.battery, BatteryModel):
            raise SchedulerError(f"battery must be a BatteryModel, got {self.battery!r}")
        _set(self, "evs", tuple(self.evs))
        _set(self, "tanks", tuple(self.tanks))
        for kind, items, cls in (("evs", self.evs, EvSession), ("tanks", self.tanks, ThermalTank)):
            names: set[str] = set()
            for item in items:
                if not isinstance(item, cls):
                    raise SchedulerError(f"{kind} must hold {cls.__name__}s, got {item!r}")
                if item.name in names:
                    raise SchedulerError(f"{kind}: the name {item.name!r} is used twice")
                names.add(item.name)
        for tank in self.tanks:
            if len(tank.draw_kw) != steps:
                raise SchedulerError(
                    f"tanks[{tank.name!r}].draw_kw has {len(tank.draw_kw)} steps, "
                    f"base_load_kw has {steps}"
                )

    @property
    def steps(self) -> int:
        return len(self.base_load_kw)

    @property
    def step_hours(self) -> float:
        return self.step_minutes / 60.0

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types (infinite grid limits as null), what `from_json` reads back."""
        data = asdict(self)
        for key in ("grid_import_max_kw", "grid_export_max_kw"):
            if math.isinf(data[key]):
                data[key] = None
        return data

    @classmethod
    def from_json(cls, data: object) -> Problem:
        """A Problem from `as_json`'s shape (a worker's input); SchedulerError names what is
        wrong (an unknown or missing key, a wrong type, a bad value)."""
        values = _fields_of(cls, data, "problem")
        for key in ("grid_import_max_kw", "grid_export_max_kw"):
            if values.get(key, 0.0) is None:
                values[key] = math.inf
        if values.get("battery") is not None:
            values["battery"] = BatteryModel(
                **_fields_of(BatteryModel, values["battery"], "battery")
            )
        values["evs"] = tuple(
            EvSession(**_fields_of(EvSession, item, f"evs[{i}]"))
            for i, item in enumerate(_list("evs", values.get("evs", [])))
        )
        values["tanks"] = tuple(
            ThermalTank(**_fields_of(ThermalTank, item, f"tanks[{i}]"))
            for i, item in enumerate(_list("tanks", values.get("tanks", [])))
        )
        try:
            return cls(**values)
        except TypeError as exc:  # a missing required key
            raise SchedulerError(f"problem: {exc}") from None


def _list(where: str, value: object) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise SchedulerError(f"{where} must be a list, got {value!r}")
    return list(value)


def _fields_of(cls: type, data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SchedulerError(f"{where} must be an object, got {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise SchedulerError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(
        f.name
        for f in fields(cls)
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING
    )
    if missing:
        raise SchedulerError(f"{where}: missing key(s) {', '.join(missing)}")
    return dict(data)


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanStep:
    start_ms: int
    battery_kw: float  # + discharge (the rules' sign)
    ev_kw: dict[str, float]
    tank_kw: dict[str, float]  # electric heater power
    import_kw: float
    export_kw: float
    soc_kwh: float  # at the end of the step
    soc_pct: float  # of capacity_kwh (0 without a battery)
    tank_c: dict[str, float]  # at the end of the step
    price: float  # import price of the step
    load_kw: float  # base load forecast
    pv_kw: float
    pv_curtailed_kw: float = 0.0  # PV the plan gives up (only where export is capped)


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[PlanStep, ...]
    cost: dict[str, float]  # energy, export_revenue, demand_charge, degradation, total
    peak_kw: float  # the plan's highest window average import (>= peak_already)
    build_ms: float
    solve_ms: float
    status: str  # "optimal"; anything else is not a plan
    mip: bool = field(default=False)  # solved as a mixed-integer program (on/off heaters)

    def as_json(self) -> dict[str, Any]:
        """What `{base}/plan` carries (the planner adds its metadata)."""
        return {
            "status": self.status,
            "peak_kw": self.peak_kw,
            "cost": dict(self.cost),
            "build_ms": self.build_ms,
            "solve_ms": self.solve_ms,
            "mip": self.mip,
            "steps": [asdict(step) for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: object) -> Plan:
        """A Plan from `as_json`'s shape (the worker's answer), checked like a Problem."""
        values = _fields_of(cls, data, "plan")
        steps = []
        for i, item in enumerate(_list("plan.steps", values.get("steps", []))):
            where = f"plan.steps[{i}]"
            raw = _fields_of(PlanStep, item, where)
            for key, value in raw.items():
                if key == "start_ms":
                    raw[key] = _count(f"{where}.start_ms", value)
                elif key in ("ev_kw", "tank_kw", "tank_c"):
                    if not isinstance(value, Mapping):
                        raise SchedulerError(f"{where}.{key} must be an object, got {value!r}")
                    raw[key] = {
                        str(k): _finite(f"{where}.{key}[{k!r}]", v) for k, v in value.items()
                    }
                else:
                    raw[key] = _finite(f"{where}.{key}", value)
            steps.append(PlanStep(**raw))
        cost = values.get("cost")
        if not isinstance(cost, Mapping):
            raise SchedulerError(f"plan.cost must be an object, got {cost!r}")
        status = values.get("status")
        if not isinstance(status, str):
            raise SchedulerError(f"plan.status must be a string, got {status!r}")
        return cls(
            steps=tuple(steps),
            cost={str(k): _finite(f"plan.cost[{k!r}]", v) for k, v in cost.items()},
            peak_kw=_finite("plan.peak_kw", values.get("peak_kw")),
            build_ms=_finite("plan.build_ms", values.get("build_ms")),
            solve_ms=_finite("plan.solve_ms", values.get("solve_ms")),
            status=status,
            mip=bool(values.get("mip", False)),
        )

"""The scheduler's runtime: when to plan (every `replan` on the clock, and when the present
breaks the plan: the SoC off its trajectory, the load off its forecast, a car arriving), what to
plan with (controller/scheduler/forecast.py), the solve in the solver's process
(controller/scheduler/solverprocess.py), and what comes of it: the plan in force on the
`PlanBoard` the rules follow, `{base}/plan` retained, `events/plan` on every re-plan. A failed
re-plan (the solver failed, timed out or was killed; stale inputs) withdraws the plan: the
reactive rules decide and `battery_schedule` raises its alarm until a plan is valid again. The
daemon's loop and the lock-step co-simulation both call `replan_if_due(now)`, so a co-simulation
waits for every solve and runs the same twice."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog
from pydantic import ValidationError

from controller.clock import Clock
from controller.model import Quality
from controller.mqtt import topics
from controller.scheduler.board import AcceptedPlan, EvSessionStatus, PlanBoard, PlanTarget
from controller.scheduler.config import EvSessionConfig, SchedulerConfig, TariffConfig
from controller.scheduler.forecast import (
    BillingPeak,
    CloudForecast,
    ForecastError,
    LoadForecaster,
    PvMeter,
    import_prices,
    parse_cloud_forecast,
)
from controller.scheduler.solverprocess import SolverFailedError, SolverProcess
from controller.scheduler.valuation import end_value_per_kwh, planned_demand_charge
from controller.scheduler.wire import (
    BatteryWire,
    EvWire,
    PlanWire,
    ProblemWire,
    PvWire,
    SolveRequest,
    TankWire,
)
from controller.tagtable import TagTable

log = structlog.get_logger(__name__)

# A plan's numbers are rounded to this many digits on {base}/plan.
DIGITS = 3


class EventSink(Protocol):
    def publish_event(self, topic: str, payload: bytes) -> None: ...

    def publish_retained(self, topic: str, payload: bytes) -> None: ...


class StaleInputError(Exception):
    """An input of the plan is missing, bad or older than `input_max_age`."""


@dataclass
class _Ev:
    connected: bool = False
    delivered_kwh: float = 0.0
    last_ms: int | None = None


class Planner:
    """Plans ahead for one gateway; owns its solver process (start it with `replan_if_due`,
    end it with `close`)."""

    def __init__(
        self,
        config: SchedulerConfig,
        tariff: TariffConfig,
        *,
        board: PlanBoard,
        table: TagTable,
        clock: Clock,
        events: EventSink | None,
        base_topic: str,
        state_dir: Path | None,
        solver: SolverProcess | None = None,
    ) -> None:
        self.config = config
        self.tariff = tariff
        self.board = board
        self.table = table
        self.clock = clock
        self.events = events
        self.base_topic = base_topic
        self.solver = solver or SolverProcess(
            config.worker_timeout, start_timeout=config.worker_start_timeout
        )
        self.step_ms = int(config.step * 1000)
        self.steps = int(config.horizon / config.step)
        self.replan_ms = int(config.replan * 1000)
        self.load = LoadForecaster(config.load, config.step, state_dir)
        self.billing = BillingPeak(tariff, state_dir)
        # The PV metered over the last step (the forecast's clear-sky index) and over the
        # last `disturbance.hold` (the disturbance check).
        self.pv_meter = PvMeter(config.step)
        self.pv_recent = PvMeter(config.disturbance.hold)
        now = clock.wall_ms()
        self.load.restore(now)
        self.billing.restore(now)
        self.cloud: CloudForecast | None = None
        self.cloud_source = ""
        self._stale_cloud = ""
        self._file_mtime: float | None = None
        self._evs = {ev.name: _Ev() for ev in config.evs}
        self._last_slot: int | None = None
        self._retry_at: int | None = None
        self._retry_s = config.retry
        self._disturbed_since: int | None = None
        self._disturbance = ""
        self._last_disturbance_plan: int | None = None
        self._pending: list[str] = []
        self.replans = 0
        self.failures = 0
        self.last_error = ""
        self.last_plan_json: dict[str, Any] | None = None

    # --- inputs -----------------------------------------------------------------------------

    def offer_pv_forecast(self, payload: bytes, source: str) -> bool:
        """A cloud forecast from the topic, the file or the co-simulation, through one
        validation: accepted, or refused with an `events/forecast` naming what and where (the
        last good one is kept)."""
        now = self.clock.wall_ms()
        pv = self.config.pv
        forecast: CloudForecast | None = None
        problem = "(scheduler): no pv: section, a PV forecast has no use"
        if pv is not None:
            try:
                forecast = parse_cloud_forecast(payload, now, pv.max_age)
            except ForecastError as exc:
                problem = str(exc)[:500]
        if forecast is None:
            log.warning("forecast_refused", source=source[:200], problem=problem)
            self._event(
                topics.forecast_events(self.base_topic),
                {"ts": now, "ok": False, "kind": "pv", "source": source[:200], "problem": problem},
            )
            return False
        self.cloud, self.cloud_source = forecast, source
        self._event(
            topics.forecast_events(self.base_topic),
            {
                "ts": now,
                "ok": True,
                "kind": "pv",
                "source": source[:200],
                "issued_ms": forecast.issued_ms,
                "points": len(forecast.points),
            },
        )
        return True

    def _read_forecast_file(self) -> None:
        pv = self.config.pv
        if pv is None or pv.file is None:
            return
        path = pv.file
        try:
            stat = path.stat()
            if stat.st_mtime == self._file_mtime:
                return
            self._file_mtime = stat.st_mtime
            with path.open("rb") as file:
                payload = file.read(1024**2 + 1)  # more than a forecast may be: refused
        except OSError as exc:
            if self._file_mtime != -1.0:
                self._file_mtime = -1.0
                self._event(
                    topics.forecast_events(self.base_topic),
                    {
                        "ts": self.clock.wall_ms(),
                        "ok": False,
                        "kind": "pv",
                        "source": f"file:{path}",
                        "problem": f"(file): cannot read: {exc.strerror}",
                    },
                )
            return
        self.offer_pv_forecast(payload, f"file:{path}")

    def _number(self, tag: str, now_ms: int) -> float:
        sample = self.table.get(tag)
        if sample is None:
            raise StaleInputError(f"{tag}: no reading")
        if sample.quality is not Quality.GOOD:
            raise StaleInputError(f"{tag}: quality {sample.quality.value}")
        age_s = (now_ms - sample.read_ts) / 1000
        if age_s > self.config.input_max_age:
            raise StaleInputError(f"{tag}: read {age_s:.0f} s ago")
        value = sample.value
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        raise StaleInputError(f"{tag}: {value!r} is not a number")

    def _optional(self, tag: str | None, now_ms: int) -> float:
        if tag is None:
            return 0.0
        try:
            return self._number(tag, now_ms)
        except StaleInputError:
            return 0.0

    def observe(self, now_ms: int) -> None:
        """Learn from this cycle's readings: the load, the billing window, the cars."""
        cfg = self.config
        try:
            meter = self._number(cfg.site.power, now_ms)
            battery = self._number(cfg.battery.power, now_ms) if cfg.battery else 0.0
        except StaleInputError:
            return
        self.billing.observe(now_ms, meter)
        flexible = 0.0
        for ev in cfg.evs:
            state = self._evs[ev.name]
            kw = self._optional(ev.power, now_ms)
            flexible += kw
            try:
                connected = self._number(ev.connected, now_ms) >= 0.5
                known = True
            except StaleInputError:
                # A reading missed is no car leaving (and coming again, with its count reset):
                # the last known state holds, nothing is counted meanwhile.
                connected, known = state.connected, False
                kw = 0.0
            if connected and not state.connected:
                state.delivered_kwh = 0.0
                self._pending.append(f"car at {ev.name}")
            if connected and state.last_ms is not None:
                state.delivered_kwh += max(kw, 0.0) * (now_ms - state.last_ms) / 3_600_000
            state.connected, state.last_ms = connected, now_ms
            self.board.ev_sessions[ev.name] = EvSessionStatus(
                connected=connected if known else None,
                remaining_kwh=max(ev.energy_kwh - state.delivered_kwh, 0.0) if connected else 0.0,
                depart_ms=self._departure_today(ev, now_ms),
                max_kw=ev.max_kw,
                seen_ms=now_ms,
            )
        for tank in cfg.tanks:
            flexible += self._optional(tank.power, now_ms)
        pv = self._optional(cfg.load.pv_power, now_ms)
        self.load.observe(now_ms, meter + battery + pv - flexible)
        if cfg.pv is not None and cfg.load.pv_power is not None:
            try:
                metered = self._number(cfg.load.pv_power, now_ms)
            except StaleInputError:
                pass  # no reading is no sun: the window keeps what it had
            else:
                self.pv_meter.observe(now_ms, metered)
                self.pv_recent.observe(now_ms, metered)
        self._check_disturbance(now_ms)

    def _check_disturbance(self, now_ms: int) -> None:
        cfg = self.config
        target = self.board.target(now_ms)
        found = ""
        if target is not None:
            if cfg.battery is not None:
                try:
                    soc = self._number(cfg.battery.soc, now_ms)
                except StaleInputError:
                    soc = None
                expected = self._expected_soc(target, now_ms)
                off = None if soc is None or expected is None else abs(soc - expected)
                if off is not None and expected is not None and off > cfg.disturbance.soc_pct:
                    found = f"SoC {soc:.1f} % off the plan's {expected:.1f} %"
            if not found:
                found = self._pv_off_plan(target, now_ms)
            average = self.load.step_average()
            if not found and average is not None and target.load_kw is not None:
                pv_now = self._optional(cfg.load.pv_power, now_ms)
                net = average - pv_now
                planned = target.load_kw - target.pv_kw
                if abs(net - planned) > cfg.disturbance.load_kw:
                    found = f"net load {net:.1f} kW off its forecast {planned:.1f} kW"
        if not found:
            self._disturbed_since, self._disturbance = None, ""
            return
        if self._disturbed_since is None:
            self._disturbed_since = now_ms
        self._disturbance = found

    def _pv_off_plan(self, target: PlanTarget, now_ms: int) -> str:
        """The PV metered over the last `disturbance.hold` off the plan's PV for the step by more
        than `disturbance.pv_kw` (a forecast's clouds that did not come, or came unforecast)."""
        cfg = self.config
        if cfg.pv is None:
            return ""
        recent = self.pv_recent.measured(now_ms, least_s=cfg.disturbance.hold / 2)
        if recent is None or abs(recent.kw - target.pv_kw) <= cfg.disturbance.pv_kw:
            return ""
        return f"PV {recent.kw:.1f} kW off the plan's {target.pv_kw:.1f} kW"

    def _expected_soc(self, target: PlanTarget, now_ms: int) -> float | None:
        if target.soc_start_pct is None:
            return None
        share = (now_ms - target.start_ms) / max(target.end_ms - target.start_ms, 1)
        return target.soc_start_pct + (target.soc_pct - target.soc_start_pct) * share

    # --- when -------------------------------------------------------------------------------

    def due(self, now_ms: int) -> str:
        """Why a re-plan is due now, or ''."""
        slot = now_ms - now_ms % self.replan_ms
        if self._last_slot is None:
            return "start"
        if self.board.plan is None and self._retry_at is not None and now_ms >= self._retry_at:
            return f"retry after: {self.last_error}"[:300]
        if slot != self._last_slot:
            return "scheduled"
        interval_ms = self.config.disturbance.min_interval * 1000
        recent = (
            self._last_disturbance_plan is not None
            and now_ms - self._last_disturbance_plan < interval_ms
        )
        if self._pending and not recent:
            return self._pending[0]
        held = self._disturbed_since is not None and now_ms - self._disturbed_since >= (
            self.config.disturbance.hold * 1000
        )
        if held and not recent:
            return self._disturbance
        return ""

    async def replan_if_due(self, now_ms: int | None = None) -> bool:
        """Observe this cycle and re-plan when due; True when it re-planned (well or not)."""
        now = self.clock.wall_ms() if now_ms is None else now_ms
        self.observe(now)
        pid = self.solver.pid
        code = self.solver.exited()
        if code is not None:
            # Between solves the process has nothing to do but wait: ended, it crashed or was
            # killed from outside. The plan it made is not followed (decided): whatever ended
            # it may have ended it mid-way through something, the reactive rules decide until
            # a new process has made a new plan.
            self._failed(now, "watch", f"the solver's process ended (exit {code})", "crashed", 0.0)
            log.warning("solver_died", pid=pid, exit=code)
            return True
        if self._last_slot is None and self.table.get(self.config.site.power) is None:
            return False  # the first plan waits for the first readings
        reason = self.due(now)
        if not reason:
            return False
        disturbance = reason not in ("start", "scheduled") and not reason.startswith("retry")
        self._last_slot = now - now % self.replan_ms
        self._pending.clear()
        if disturbance:
            self._last_disturbance_plan = now
        self._disturbed_since, self._disturbance = None, ""
        await self.replan(now, reason)
        return True

    # --- the re-plan ------------------------------------------------------------------------

    async def replan(self, now_ms: int, reason: str) -> bool:
        self.replans += 1
        started = time.perf_counter()
        try:
            request = self.request(now_ms)
            wire = await self.solver.solve(request)
            plan = self._accept(wire, request, now_ms)
        except (
            StaleInputError,
            ForecastError,
            SolverFailedError,
            PlanRefusedError,
            ValidationError,  # a problem the wire refuses (a reading the checks let through)
        ) as exc:
            kind = getattr(exc, "kind", type(exc).__name__)
            self._failed(now_ms, reason, str(exc), str(kind), time.perf_counter() - started)
            return False
        wall_ms = (time.perf_counter() - started) * 1000
        self.board.accept(plan)
        self._retry_at, self._retry_s, self.last_error = None, self.config.retry, ""
        body = self._plan_json(
            wire, plan, now_ms=now_ms, reason=reason, request=request, wall_ms=wall_ms
        )
        self.last_plan_json = body
        self._retained(topics.plan(self.base_topic), body)
        log.info(
            "replanned",
            reason=reason,
            cost=body["cost"].get("total"),
            peak_kw=body["peak_kw"],
            solve_ms=body["solve_ms"],
            wall_ms=round(wall_ms, 1),
        )
        self._event(
            topics.plan_events(self.base_topic),
            {
                "ts": now_ms,
                "ok": True,
                "reason": reason,
                "cost": body["cost"],
                "peak_kw": body["peak_kw"],
                "solve_ms": body["solve_ms"],
                "wall_ms": body["wall_ms"],
                "solver_pid": self.solver.pid,
            },
        )
        return True

    def _failed(self, now_ms: int, reason: str, error: str, kind: str, seconds: float) -> None:
        self.failures += 1
        error = error[:500]
        self.last_error = error
        self.board.withdraw(f"{kind}: {error}")
        self._retry_at = now_ms + int(self._retry_s * 1000)
        self._retry_s = min(self._retry_s * 2, self.config.replan)
        log.warning("replan_failed", reason=reason, kind=kind, error=error)
        self._retained(
            topics.plan(self.base_topic),
            {
                "valid": False,
                "why": f"{kind}: {error}",
                "failed_ms": now_ms,
                "reason": reason,
                "retry_ms": self._retry_at,
                "steps": [],
            },
        )
        self._event(
            topics.plan_events(self.base_topic),
            {
                "ts": now_ms,
                "ok": False,
                "reason": reason,
                "kind": kind,
                "error": error,
                "wall_ms": round(seconds * 1000, 1),
                "retry_ms": self._retry_at,
            },
        )

    def step_starts(self, start_ms: int) -> list[int]:
        return [start_ms + i * self.step_ms for i in range(self.steps)]

    def request(self, now_ms: int) -> SolveRequest:
        """The problem of now, from the readings, the forecasts and the tariff."""
        cfg = self.config
        start = now_ms - now_ms % self.step_ms
        starts = self.step_starts(start)
        window_steps = max(1, round(self.tariff.demand_window / cfg.step))
        window_ms = window_steps * self.step_ms
        # A re-plan inside a billing window longer than a step (5-min steps, 15-min window):
        # the window's first steps are past, their import metered.
        done_steps = (start % window_ms) // self.step_ms if window_steps > 1 else 0
        metered = 0.0
        if done_steps:
            window_start = start - start % window_ms
            so_far = self.billing.window_kwh(now_ms)
            metered = so_far * (start - window_start) / max(now_ms - window_start, 1)
        prices = import_prices(self.tariff, starts)
        problem: dict[str, Any] = {
            "start_ms": start,
            "step_minutes": cfg.step / 60,
            "base_load_kw": self.load.forecast(starts),
            "import_price": prices,
            "export_price": [self.tariff.export_price_per_kwh] * self.steps,
            "demand_charge_per_kw": planned_demand_charge(
                self.tariff.demand_charge_per_kw_month, now_ms, ZoneInfo(self.tariff.timezone)
            ),
            "demand_window_steps": window_steps,
            "peak_already_kw": self.billing.peak_kw,
            "first_window_import_kwh": metered,
            "first_window_steps": window_steps - done_steps if done_steps else None,
            "grid_import_max_kw": cfg.site.grid_import_max_kw,
            "grid_export_max_kw": cfg.site.grid_export_max_kw,
            "battery": self._battery(now_ms, prices),
            "evs": self._ev_sessions(now_ms, start),
            "tanks": self._tanks(now_ms, starts),
        }
        # A day the forecast's sun does not come sets the month's peak: where the plan's own
        # demand charge is a share of the month's, the sunless case is charged the month's
        # (docs/rules.md, "Scheduler: forecasts"); else it bounds the same peak.
        month = self.tariff.demand_charge_per_kw_month
        if problem["demand_charge_per_kw"] < month:
            problem["pv_low_demand_charge_per_kw"] = month
        pv = self._pv(now_ms, starts)
        if pv is None:
            problem["pv_kw"] = [0.0] * self.steps
        return SolveRequest(
            id=0,
            time_limit_s=cfg.solve_time_limit,
            problem=ProblemWire.model_validate(problem),
            pv=pv,
        )

    def _battery(self, now_ms: int, prices: list[float]) -> BatteryWire | None:
        battery = self.config.battery
        if battery is None:
            return None
        soc_pct = min(max(self._number(battery.soc, now_ms), 0.0), 100.0)
        capacity = battery.capacity_kwh
        soc = capacity * soc_pct / 100
        # Below the reserve now (a battery just installed, or emptied by the reactive rules):
        # the reserve the plan keeps is the SoC of now, so the plan is feasible.
        reserve = min(capacity * battery.reserve_pct / 100, soc)
        end = battery.end_soc_pct
        return BatteryWire(
            capacity_kwh=capacity,
            soc_kwh=soc,
            soc_min_kwh=reserve,
            soc_max_kwh=max(capacity * battery.soc_max_pct / 100, soc),
            max_charge_kw=battery.max_charge_kw,
            max_discharge_kw=battery.max_discharge_kw,
            charge_efficiency=battery.charge_efficiency,
            discharge_efficiency=battery.discharge_efficiency,
            degradation_per_kwh=battery.degradation_per_kwh,
            standby_loss_kw=battery.standby_loss_kw,
            end_soc_min_kwh=None if end is None else max(capacity * end / 100, reserve),
            end_value_per_kwh=end_value_per_kwh(battery, prices),
        )

    def _local_day_ms(self, now_ms: int) -> int:
        """Local midnight of today (the load schedule's zone), as wall ms."""
        zone = ZoneInfo(self.config.load.schedule.timezone)
        local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(midnight.timestamp() * 1000)

    def _departure_today(self, ev: EvSessionConfig, now_ms: int) -> int | None:
        """The booking's departure today as wall ms (None: no booking on this weekday)."""
        zone = ZoneInfo(self.config.load.schedule.timezone)
        local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(zone)
        if ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()] not in ev.days:
            return None
        return self._local_day_ms(now_ms) + int(ev.depart * 1000)

    def _ev_sessions(self, now_ms: int, start: int) -> list[EvWire]:
        sessions = []
        midnight = self._local_day_ms(now_ms)
        weekday = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(
            ZoneInfo(self.config.load.schedule.timezone)
        )
        day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[weekday.weekday()]
        hours = self.step_ms / 3_600_000
        for ev in self.config.evs:
            if day not in ev.days:
                continue
            state = self._evs[ev.name]
            arrive, depart = midnight + ev.arrive * 1000, midnight + ev.depart * 1000
            if now_ms >= depart:
                continue
            if state.connected:
                first = 0
                energy = max(ev.energy_kwh - state.delivered_kwh, 0.0)
            elif now_ms < arrive:
                first = (arrive - start) // self.step_ms
                energy = ev.energy_kwh
            else:
                continue  # the car did not come (or left): nothing to plan
            last = min(-(-(depart - start) // self.step_ms), self.steps)
            # What cannot be delivered by departure any more is not asked (an infeasible plan
            # would leave the battery without one too).
            energy = min(energy, ev.max_kw * hours * (last - first) * 0.999)
            if last > first and energy > 0:
                sessions.append(
                    EvWire(
                        name=ev.name,
                        max_kw=ev.max_kw,
                        first_step=int(first),
                        depart_step=int(last),
                        energy_kwh=energy,
                    )
                )
        return sessions

    def _tanks(self, now_ms: int, starts: list[int]) -> list[TankWire]:
        out = []
        periods = [self.load.period_at(ms + self.step_ms // 2) for ms in starts]
        for tank in self.config.tanks:
            temp = self._number(tank.temperature, now_ms)
            out.append(
                TankWire(
                    name=tank.name,
                    heater_kw=tank.heater_kw,
                    temp_c=temp,
                    min_c=tank.min_c,
                    max_c=tank.max_c,
                    heat_capacity_kwh_per_k=tank.heat_capacity_kwh_per_k,
                    loss_kw_per_k=tank.loss_kw_per_k,
                    ambient_c=tank.ambient_c,
                    draw_kw=[tank.draw_kw.get(p, 0.0) for p in periods],
                    efficiency=tank.efficiency,
                    on_off=tank.on_off,
                )
            )
        return out

    def _pv(self, now_ms: int, starts: list[int]) -> PvWire | None:
        pv = self.config.pv
        if pv is None:
            return None
        self._read_forecast_file()
        cloud = self.cloud
        if cloud is not None and (now_ms - cloud.issued_ms) / 1000 > pv.max_age:
            why = f"the PV forecast from {self.cloud_source} is stale: issued"
            age = (now_ms - cloud.issued_ms) / 1000
            self._stale_cloud = f"{why} {age:.0f} s ago, more than max_age {pv.max_age:g} s"
            cloud = None
        if cloud is None:
            if pv.without_forecast == "no_plan":
                raise ForecastError(
                    self._stale_cloud
                    if self.cloud is not None
                    else "no valid PV forecast yet (forecast/pv or scheduler.pv.file)"
                )
            factors = [1.0] * len(starts)
        else:
            half = self.step_ms // 2
            factors = cloud.factors([ms + half for ms in starts])
        # What the PV meter said over the last step: its clear-sky index leads the forecast.
        measured = self.pv_meter.measured(now_ms, least_s=self.config.step / 2)
        return PvWire(
            latitude=pv.latitude,
            longitude=pv.longitude,
            altitude_m=pv.altitude_m,
            tilt_deg=pv.tilt_deg,
            azimuth_deg=pv.azimuth_deg,
            kwp=pv.kwp,
            inverter_kw=pv.inverter_ac_kw,
            inverter_efficiency=pv.inverter_efficiency,
            system_losses=pv.system_losses,
            wall_clock_zone=pv.wall_clock_zone,
            cloud=factors,
            measured_kw=None if measured is None else measured.kw,
            measured_from_ms=None if measured is None else measured.from_ms,
            measured_to_ms=None if measured is None else measured.to_ms,
            persistence_h=pv.persistence / 3600,
            forecast_share=pv.forecast_share,
        )

    # --- the plan ---------------------------------------------------------------------------

    def _accept(self, wire: PlanWire, request: SolveRequest, now_ms: int) -> AcceptedPlan:
        """The solver's plan checked against what was asked: one step per step asked, at the
        times asked, the battery inside its limits."""
        starts = self.step_starts(request.problem.start_ms)
        if [step.start_ms for step in wire.steps] != starts:
            raise PlanRefusedError("the plan's steps are not the steps asked for")
        battery = self.config.battery
        tolerance = 1e-3
        targets = []
        soc_before: float | None = None
        if request.problem.battery is not None:
            soc_before = (
                100 * request.problem.battery.soc_kwh / request.problem.battery.capacity_kwh
            )
        for i, step in enumerate(wire.steps):
            if battery is not None and not (
                -battery.max_charge_kw - tolerance
                <= step.battery_kw
                <= battery.max_discharge_kw + tolerance
            ):
                raise PlanRefusedError(f"steps[{i}].battery_kw {step.battery_kw} is out of limits")
            targets.append(
                PlanTarget(
                    start_ms=step.start_ms,
                    end_ms=step.start_ms + self.step_ms,
                    battery_kw=step.battery_kw,
                    import_kw=step.import_kw,
                    export_kw=step.export_kw,
                    soc_pct=step.soc_pct,
                    peak_kw=wire.peak_kw,
                    ev_kw=dict(step.ev_kw),
                    tank_kw=dict(step.tank_kw),
                    load_kw=step.load_kw,
                    pv_kw=step.pv_kw,
                    soc_start_pct=soc_before,
                )
            )
            soc_before = step.soc_pct
        return AcceptedPlan(
            steps=tuple(targets),
            created_ms=now_ms,
            valid_until_ms=now_ms + int(self.config.plan_max_age * 1000),
        )

    def _plan_json(
        self,
        wire: PlanWire,
        plan: AcceptedPlan,
        *,
        now_ms: int,
        reason: str,
        request: SolveRequest,
        wall_ms: float,
    ) -> dict[str, Any]:
        zone = ZoneInfo(self.tariff.timezone)
        steps = []
        for step in wire.steps:
            local = datetime.fromtimestamp(step.start_ms / 1000, tz=UTC).astimezone(zone)
            row: dict[str, Any] = {
                "time": local.strftime("%H:%M"),
                "battery_kw": round(step.battery_kw, DIGITS),
                "soc_pct": round(step.soc_pct, DIGITS),
                "import_kw": round(step.import_kw, DIGITS),
                "price": step.price,
                "load_kw": round(step.load_kw, DIGITS),
                "pv_kw": round(step.pv_kw, DIGITS),
                "export_kw": round(step.export_kw, DIGITS),
            }
            for name, kw in {**step.ev_kw, **step.tank_kw}.items():
                row[f"{name}_kw"] = round(kw, DIGITS)
            for name, c in step.tank_c.items():
                row[f"{name}_c"] = round(c, DIGITS)
            row["soc_kwh"] = round(step.soc_kwh, DIGITS)
            row["start_ms"] = step.start_ms
            steps.append(row)
        created = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(zone)
        total = wire.cost.get("total")
        # The watch console shows the first top-level fields as the Plan tab's caption: what
        # an operator reads first comes first.
        return {
            "valid": True,
            "created": created.strftime("%Y-%m-%d %H:%M"),
            "reason": reason,
            "cost_total": None if total is None else round(total, 2),
            "currency": self.tariff.currency,
            "peak_kw": round(wire.peak_kw, DIGITS),
            "peak_already_kw": round(request.problem.peak_already_kw, DIGITS),
            "demand_charge_per_kw": round(request.problem.demand_charge_per_kw, 4),
            "solve_ms": round(wire.solve_ms, 2),
            "wall_ms": round(wall_ms, 1),
            "horizon_h": self.config.horizon / 3600,
            "step_min": self.config.step / 60,
            "cost": {k: round(v, 4) for k, v in wire.cost.items()},
            "build_ms": round(wire.build_ms, 2),
            "created_ms": now_ms,
            "start_ms": request.problem.start_ms,
            "valid_until_ms": plan.valid_until_ms,
            "load_forecast": self.load.as_json(now_ms),
            "pv_forecast": self.cloud_source or None,
            "steps": steps,
        }

    # --- publication ------------------------------------------------------------------------

    def _event(self, topic: str, body: dict[str, Any]) -> None:
        if self.events is not None:
            self.events.publish_event(topic, topics.encode(body))

    def _retained(self, topic: str, body: dict[str, Any]) -> None:
        if self.events is not None:
            self.events.publish_retained(topic, topics.encode(body))

    # --- the daemon's loop ------------------------------------------------------------------

    async def run(self, period: float) -> None:
        """Every `period` seconds: observe, and re-plan when due. A bug in one pass is logged
        and the loop goes on: the daemon never stops for the scheduler."""
        next_at = self.clock.monotonic()
        while True:
            try:
                await self.replan_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("planner_pass_failed", error=repr(exc)[:300])
                self.board.withdraw(f"planner failed: {exc!r}"[:300])
            next_at += period
            now = self.clock.monotonic()
            if next_at <= now:
                next_at = now + period
            await self.clock.sleep_until(next_at)

    async def close(self) -> None:
        await self.solver.close()


class PlanRefusedError(Exception):
    """The solver's plan does not fit what was asked."""

    kind = "invalid_plan"

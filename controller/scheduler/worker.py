"""The solver's process: `python -m controller.scheduler.worker` reads one solve request per line
on stdin and answers one line on stdout (controller/scheduler/wire.py). HiGHS is native code and
pvlib heavy: both live here, never in the daemon, so a crash or a hang of the solver costs the
daemon a plan, never its life (controller/scheduler/solverprocess.py kills and restarts this)."""

from __future__ import annotations

import math
import os
import sys
from typing import IO, Any

import orjson
from pydantic import ValidationError

from controller.scheduler.wire import MAX_LINE_BYTES, PlanWire, SolveReply, SolveRequest


def _reply(out: IO[bytes], reply: SolveReply) -> None:
    out.write(orjson.dumps(reply.model_dump(mode="json")) + b"\n")
    out.flush()


def _request_id(line: bytes) -> int:
    """The id of a request that did not validate, when it can be read at all (-1 otherwise)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return -1
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def solve_request(request: SolveRequest) -> PlanWire:
    """Build the problem (computing the PV forecast when asked), solve it, the plan as wire."""
    # Imported here: `python -m controller.scheduler.worker --check` needs neither.
    from controller.scheduler import lp  # noqa: PLC0415
    from controller.scheduler.problem import (  # noqa: PLC0415
        BatteryModel,
        EvSession,
        Problem,
        SchedulerError,
        ThermalTank,
    )

    wire = request.problem
    steps = len(wire.base_load_kw)
    pv_low_kw: list[float] | None = None
    if request.pv is not None:
        from controller.scheduler.pvmodel import pv_forecasts_kw  # noqa: PLC0415

        # The sun expected, and the sun the plan's peak must also hold with (docs/rules.md,
        # "Scheduler: forecasts"): the battery keeps what a forecast of too much sun would take.
        share = request.pv.forecast_share
        shares = (1.0, share) if share < 1.0 else (1.0,)
        forecasts = pv_forecasts_kw(request.pv, wire.start_ms, wire.step_minutes, steps, shares)
        pv_kw = forecasts[0]
        pv_low_kw = forecasts[1] if share < 1.0 else None
    else:
        assert wire.pv_kw is not None  # the request's validator: one of the two
        pv_kw = wire.pv_kw
    battery = None
    if wire.battery is not None:
        battery = BatteryModel(**wire.battery.model_dump())
    problem = Problem(
        start_ms=wire.start_ms,
        step_minutes=wire.step_minutes,
        base_load_kw=tuple(wire.base_load_kw),
        pv_kw=tuple(pv_kw),
        pv_low_kw=None if pv_low_kw is None else tuple(pv_low_kw),
        pv_low_demand_charge_per_kw=wire.pv_low_demand_charge_per_kw,
        import_price=tuple(wire.import_price),
        export_price=tuple(wire.export_price),
        demand_charge_per_kw=wire.demand_charge_per_kw,
        demand_window_steps=wire.demand_window_steps,
        peak_already_kw=wire.peak_already_kw,
        first_window_import_kwh=wire.first_window_import_kwh,
        first_window_steps=wire.first_window_steps,
        grid_import_max_kw=math.inf if wire.grid_import_max_kw is None else wire.grid_import_max_kw,
        grid_export_max_kw=math.inf if wire.grid_export_max_kw is None else wire.grid_export_max_kw,
        battery=battery,
        evs=tuple(EvSession(**ev.model_dump()) for ev in wire.evs),
        tanks=tuple(
            ThermalTank(**{**tank.model_dump(), "draw_kw": tuple(tank.draw_kw)})
            for tank in wire.tanks
        ),
    )
    plan = lp.solve(problem, time_limit_s=request.time_limit_s)
    if plan.status != "optimal":
        raise SchedulerError(f"the solver ended {plan.status!r}, not optimal")
    steps_out: list[dict[str, Any]] = [
        {
            "start_ms": step.start_ms,
            "battery_kw": step.battery_kw,
            "ev_kw": dict(step.ev_kw),
            "tank_kw": dict(step.tank_kw),
            "import_kw": step.import_kw,
            "export_kw": step.export_kw,
            "soc_kwh": step.soc_kwh,
            "soc_pct": step.soc_pct,
            "tank_c": dict(step.tank_c),
            "price": step.price,
            "load_kw": step.load_kw,
            "pv_kw": step.pv_kw,
        }
        for step in plan.steps
    ]
    return PlanWire.model_validate(
        {
            "steps": steps_out,
            "cost": dict(plan.cost),
            "peak_kw": plan.peak_kw,
            "build_ms": plan.build_ms,
            "solve_ms": plan.solve_ms,
            "status": plan.status,
        }
    )


def serve(source: IO[bytes], out: IO[bytes]) -> None:
    """Answer every request line of `source` until it ends."""
    from controller.scheduler.problem import SchedulerError  # noqa: PLC0415

    while True:
        line = source.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES:
            # The rest of an overlong line is read and dropped: the next line is a request.
            while line and not line.endswith(b"\n"):
                line = source.readline(MAX_LINE_BYTES)
            _reply(out, SolveReply(id=-1, ok=False, error="request longer than a line may be"))
            continue
        try:
            request = SolveRequest.model_validate_json(line)
        except ValidationError as exc:
            error = f"request refused: {exc.errors(include_url=False)[:3]}"[:2000]
            _reply(out, SolveReply(id=_request_id(line), ok=False, error=error))
            continue
        try:
            plan = solve_request(request)
        except (SchedulerError, ValidationError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            _reply(out, SolveReply(id=request.id, ok=False, error=error))
            continue
        _reply(out, SolveReply(id=request.id, ok=True, plan=plan))


def main() -> None:
    # The heavy imports first, then `ready`: the daemon gives the start its own time-out, and
    # each solve only the solve's.
    from controller.scheduler import lp, pvmodel  # noqa: F401, PLC0415

    # The protocol gets its own copy of stdout, and fd 1 goes to stderr: whatever native code
    # prints (a solver's banner) can never break a reply line.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    out.write(orjson.dumps({"ready": True, "pid": os.getpid()}) + b"\n")
    out.flush()
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()

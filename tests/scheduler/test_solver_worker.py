"""The boundary between the daemon and the solver's process: the worker answers every line,
a bad request with a refusal naming it, a good one with a plan; the daemon's side trusts nothing
the process writes (real child processes: the worker, and impostors that misbehave)."""

from __future__ import annotations

import io
import sys

import orjson
import pytest

from controller.scheduler.solverprocess import SolverFailedError, SolverProcess
from controller.scheduler.wire import MAX_LINE_BYTES, ProblemWire, SolveRequest
from controller.scheduler.worker import serve

pytestmark = pytest.mark.timeout(60)

START_MS = 1_717_372_800_000


def request(steps: int = 8, **problem: object) -> SolveRequest:
    base = {
        "start_ms": START_MS,
        "step_minutes": 15,
        "base_load_kw": [50.0] * steps,
        "pv_kw": [0.0] * steps,
        "import_price": [0.1] * (steps // 2) + [0.3] * (steps - steps // 2),
        "export_price": [0.0] * steps,
        "battery": {
            "capacity_kwh": 20,
            "soc_kwh": 10,
            "soc_min_kwh": 2,
            "soc_max_kwh": 19,
            "max_charge_kw": 10,
            "max_discharge_kw": 10,
            "charge_efficiency": 0.95,
            "discharge_efficiency": 0.95,
        },
    }
    base.update(problem)
    return SolveRequest(id=7, time_limit_s=1.0, problem=ProblemWire.model_validate(base))


def answers(*lines: bytes) -> list[dict[str, object]]:
    out = io.BytesIO()
    serve(io.BytesIO(b"".join(lines)), out)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_the_worker_answers_a_plan_and_refuses_what_is_not_a_request() -> None:
    good = orjson.dumps(request().model_dump(mode="json")) + b"\n"
    nan = good.replace(b'"base_load_kw":[50.0', b'"base_load_kw":[NaN', 1)
    wrong = orjson.dumps({"id": 3, "time_limit_s": "fast", "problem": {}}) + b"\n"
    short = (
        orjson.dumps(request().model_dump(mode="json") | {"id": 4}).replace(
            b'"import_price":[0.1,', b'"import_price":[', 1
        )
        + b"\n"
    )
    long = b"x" * (MAX_LINE_BYTES + 10) + b"\n"
    replies = answers(b"not json\n", nan, wrong, short, long, good)
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert [r["id"] for r in replies] == [-1, -1, 3, 4, -1, 7]
    assert "request refused" in str(replies[2]["error"])
    assert "import_price: 7 values for 8 steps" in str(replies[3]["error"])
    assert replies[4]["error"] == "request longer than a line may be"
    plan = replies[5]["plan"]
    assert isinstance(plan, dict)
    assert len(plan["steps"]) == 8


def test_an_infeasible_problem_is_refused_with_the_solver_s_reason() -> None:
    ev = {"name": "car", "max_kw": 11, "first_step": 0, "depart_step": 2, "energy_kwh": 50}
    line = orjson.dumps(request(evs=[ev]).model_dump(mode="json")) + b"\n"
    [reply] = answers(line)
    assert reply["ok"] is False
    assert "car" in str(reply["error"])


async def test_the_real_worker_solves_and_closes() -> None:
    solver = SolverProcess(timeout=20)
    try:
        plan = await solver.solve(request())
        assert len(plan.steps) == 8
        assert plan.steps[0].battery_kw <= 0  # cheap first half: charge (or rest)
        assert solver.pid is not None
    finally:
        await solver.close()
    assert solver.pid is None


def impostor(script: str) -> tuple[str, ...]:
    """A 'solver' that says ready and then does `script` (a real process all the same)."""
    ready = "import sys; sys.stdout.write('{\"ready\": true}\\n'); sys.stdout.flush(); "
    return (sys.executable, "-c", ready + script)


@pytest.mark.parametrize(
    ("script", "kind", "message"),
    [
        ("sys.stdin.readline(); print('[1, 2]', flush=True)", "invalid_reply", "not a plan"),
        (
            'sys.stdin.readline(); print(\'{"id": 1, "ok": true, "plan": {"steps": [],'
            ' "cost": {}, "peak_kw": NaN}}\', flush=True)',
            "invalid_reply",
            "not a plan",
        ),
        (
            'sys.stdin.readline(); print(\'{"id": 99, "ok": false, "error": "x"}\', flush=True)',
            "invalid_reply",
            "out of step",
        ),
        (
            f"sys.stdin.readline(); sys.stdout.write('x' * {MAX_LINE_BYTES + 100});"
            " sys.stdout.flush(); import time; time.sleep(30)",
            "invalid_reply",
            "longer than",
        ),
        ("sys.stdin.readline(); sys.exit(3)", "crashed", "exit 3"),
        ("import time; time.sleep(30)", "timeout", "did not answer within 1 s"),
    ],
    ids=["a list", "NaN in the plan", "another id", "a line without end", "exits", "hangs"],
)
async def test_a_misbehaving_solver_gives_no_plan_and_is_ended(
    script: str, kind: str, message: str
) -> None:
    solver = SolverProcess(timeout=1, command=impostor(script))
    try:
        with pytest.raises(SolverFailedError) as raised:
            await solver.solve(request())
        assert raised.value.kind == kind
        assert message in str(raised.value)
        assert solver.pid is None  # killed, or gone and reaped
    finally:
        await solver.close()


async def test_a_solver_that_never_says_ready_is_killed() -> None:
    solver = SolverProcess(
        timeout=1, command=(sys.executable, "-c", "import time; time.sleep(30)"), start_timeout=1
    )
    with pytest.raises(SolverFailedError) as raised:
        await solver.solve(request())
    assert raised.value.kind == "start_failed"
    assert "not ready within 1 s" in str(raised.value)
    assert solver.pid is None


def test_a_window_already_begun_crosses_the_boundary() -> None:
    begun = request(
        steps=9,
        demand_charge_per_kw=10.0,
        demand_window_steps=3,
        first_window_steps=2,
        first_window_import_kwh=5.0,
    )
    [reply] = answers(orjson.dumps(begun.model_dump(mode="json")) + b"\n")
    assert reply["ok"] is True, reply


def test_a_solve_past_its_time_limit_is_refused_not_half_answered() -> None:
    hurried = request(steps=288).model_copy(update={"time_limit_s": 1e-6})
    [reply] = answers(orjson.dumps(hurried.model_dump(mode="json")) + b"\n")
    assert reply["ok"] is False
    assert "no optimal plan within time_limit_s" in str(reply["error"])
    assert reply["plan"] is None

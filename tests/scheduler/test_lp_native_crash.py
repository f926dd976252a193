"""HiGHS is native code: a model it cannot take may end the process, not raise. This problem
(found by test_lp_properties.py: subnormal numbers, prices of 1e-308 and a reserve of 5e-323 kWh,
with an on/off heater as an exact MIP) made HiGHS 1.16 segfault until lp flushed magnitudes below
1e-12 to zero. Solved in a child process, so a crash fails this test instead of the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = Path(__file__).parent / "data" / "highs-subnormal-crash.json"

SOLVE = """
import sys, orjson
from controller.scheduler.lp import solve
from controller.scheduler.problem import Problem
data = orjson.loads(open(sys.argv[1], "rb").read())
plan = solve(Problem.from_json(data["problem"]), time_limit_s=20.0, on_off=data["on_off"])
print(plan.status, round(plan.cost["objective"], 6))
"""


def test_subnormal_numbers_do_not_crash_the_solver() -> None:
    done = subprocess.run([sys.executable, "-c", SOLVE, str(PROBLEM)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-1500:])
    assert done.stdout.split()[0] == "optimal"

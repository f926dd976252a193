"""The solver is an optional extra: the daemon's core set stays without it, and the problem's
data module (what the planner builds and the worker checks) loads without it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_highspy_is_pinned_in_the_scheduler_extra_and_dev_never_in_the_core_set() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [d for d in project["dependencies"] if d.startswith("highspy")]
    extras = project["optional-dependencies"]
    pinned = [d for d in extras["scheduler"] if d.startswith("highspy")]
    assert pinned
    assert pinned[0].startswith("highspy==")
    assert pinned[0] in extras["dev"]


def test_the_problem_module_does_not_load_the_solver() -> None:
    code = (
        "import sys\nimport controller.scheduler.problem\n"
        "print(','.join(m for m in ('highspy', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == ""


def test_solving_prints_nothing_on_stdout() -> None:
    """HiGHS prints a banner on fd 1 when its first solver is made; the worker speaks JSON
    lines on its stdout, so lp keeps it off."""
    code = (
        "from controller.scheduler.lp import solve\n"
        "from controller.scheduler.problem import Problem\n"
        "solve(Problem(start_ms=0, step_minutes=15, base_load_kw=(1.0,), pv_kw=(0.0,),\n"
        "              import_price=(0.2,), export_price=(0.0,)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout == ""

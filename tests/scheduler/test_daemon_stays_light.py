"""The daemon with a scheduler imports none of the solver's weight: pvlib, pandas, numpy and
HiGHS load in the solver's process only (bench/README.md, "Scheduler runtime", has the RSS)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pvlib", "pandas", "numpy", "scipy", "highspy")


def test_the_daemon_s_scheduler_modules_import_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import controller.runtime\n"
        "import controller.scheduler.planner, controller.scheduler.solverprocess\n"
        "import controller.rules.energy.battery_schedule, controller.rules.energy.load_schedule\n"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout

"""`python -m bench --scheduler` keeps working: 3 re-plans per case at 96 and 288 steps, the
exact MIP left out. Not a benchmark: the figures are checked for being present and finite,
never for being fast (bench/README.md, "Scheduler (issue 16)", has the measured ones)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_bench_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "scheduler.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--scheduler", "--replans", "3", "--exact-replans", "0",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    result = orjson.loads(out.read_bytes())
    cases = {(case["steps"], case["on_off_mode"]): case for case in result["cases"]}
    assert set(cases) == {(96, None), (96, "round"), (288, None), (288, "round")}
    for case in cases.values():
        assert case["replans"] == 3
        assert case["failures"] == 0
        for part in ("problem_ms", "build_ms", "solve_ms", "total_ms", "total_cpu_ms"):
            figures = case[part]
            assert 0 <= figures["p50"] <= figures["p99"] <= figures["max"], (part, figures)
            assert math.isfinite(figures["max"])
        assert math.isfinite(case["mean_objective"])
    gap = cases[(96, "round")]["rounding_gap"]  # >= 0 up to the LP's tie-breakers
    assert -0.01 <= gap["mean"] <= gap["max"]
    rss = result["rss_mb"]
    assert 5 < rss["problem_only"] < rss["with_lp"] <= rss["after_288_mip_solve"] + 5
    assert result["peak_rss_mb"] > rss["problem_only"]
    assert result["installed_mb"]["highspy"] > 1
    for clock in ("wall", "cpu"):
        assert set(result["targets_met"][clock]) == {"96", "96-round", "288", "288-round"}
    assert len(result["load_average"]) == 3

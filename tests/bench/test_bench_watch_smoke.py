"""`python -m bench --watch` keeps working: the console headless against edgecell at a tiny size
(2 devices x 20 registers, 3 s measured). Not a benchmark: the figures are checked for being
present and plausible, never for being fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_bench_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "watch.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--watch", "--devices", "2", "--registers", "20",
         "--duration", "3", "--startup-timeout", "30", "--out", str(out)],
        cwd=ROOT, capture_output=True, timeout=90, check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    console = orjson.loads(out.read_bytes())["console"]
    assert console["tags_seen"] == 40
    assert 20 <= console["samples_per_s"] <= 60  # every value every poll: 40 a second
    assert 0 < console["cpu_percent_of_core"] < 100
    assert 10 < console["rss_mb"] <= console["peak_rss_mb"] < 1000
    assert console["frames_per_s"] > 1
    assert 0 < console["tick_ms_p50"] <= console["tick_ms_p99"]
    assert 0 <= console["loop_lag_ms_p50"] <= console["loop_lag_ms_max"]

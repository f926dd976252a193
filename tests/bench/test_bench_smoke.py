"""The benchmark harness keeps working: edgecell alone at a tiny size (2 devices x 50 registers,
5 s measured) through the real harness, simulator, mosquitto and subscriber. Not a benchmark:
the figures are checked for being present and plausible, never for being fast."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import orjson

from bench.metrics import RunFigures

ROOT = Path(__file__).resolve().parents[2]


def test_harness_writes_every_figure_of_an_edgecell_run(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--devices", "2", "--registers", "50", "--duration", "5",
         "--gateways", "edgecell", "--startup-timeout", "15", "--no-install", "--out", str(out)],
        cwd=ROOT, capture_output=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    result = orjson.loads(out.read_bytes())

    assert set(result) >= {"machine", "workload", "results", "comparisons", "targets"}
    assert result["machine"]["nproc"] >= 1
    assert result["workload"]["tags"] == 100
    (row,) = result["results"]
    assert set(row) == {field.name for field in dataclasses.fields(RunFigures)}
    assert row["gateway"] == "edgecell"
    assert row["ok"], row["note"]
    # Every value every poll: about 100 values/s (message boundaries at the window's edges).
    assert 0.8 <= row["values_completeness"] <= 1.2
    assert row["changes_expected"] > 0
    assert row["changes_seen"] == row["changes_expected"]
    assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"] < 5000
    assert row["cpu_s"] > 0
    assert row["cpu_ms_per_1000_values"] > 0
    assert 10 < row["peak_rss_mb"] < 1000
    assert row["optimal_requests_per_cycle"] == 2
    assert 1.5 <= row["requests_per_cycle"] <= 2.5
    assert row["poll_jitter_p99_ms"] is not None
    assert row["bad_messages"] == 0
    assert b"values/s" in run.stdout

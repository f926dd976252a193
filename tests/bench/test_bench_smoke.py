"""The benchmark harness keeps working: edgecell alone at a tiny size (2 devices x 50 registers,
5 s measured) through the real harness, simulator, mosquitto and subscriber, and with
`--opcua-nodes` its OPC UA row (bench/opcua_bench.py on the harness's mosquitto). Not a benchmark:
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
    assert 10 < row["rss_mb"] <= row["peak_rss_mb"]
    assert row["optimal_requests_per_cycle"] == 2
    assert 1.5 <= row["requests_per_cycle"] <= 2.5
    assert row["poll_jitter_p99_ms"] is not None
    assert row["bad_messages"] == 0
    assert b"values/s" in run.stdout


def test_harness_adds_the_opcua_row_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--devices", "1", "--registers", "10", "--duration", "3",
         "--gateways", "edgecell", "--startup-timeout", "15", "--no-install",
         "--opcua-nodes", "10", "--out", str(out)],
        cwd=ROOT, capture_output=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    result = orjson.loads(out.read_bytes())

    assert [row["gateway"] for row in result["results"]] == ["edgecell"]
    opcua = result["opcua"]
    assert opcua["ok"], opcua["note"]
    assert opcua["label"] == "edgecell, OPC UA (10 polled + 10 subscribed nodes)"
    assert opcua["workload"]["polled_nodes"] == opcua["workload"]["subscribed_nodes"] == 10
    f = opcua["figures"]
    # 10 polled values per 1 s cycle; the server changes one subscribed node per 50 ms tick.
    assert 8 <= f["polled_values_per_s"] <= 12
    assert 16 <= f["subscribed_values_per_s"] <= 24
    assert 0.8 <= f["values_completeness"] <= 1.2
    assert f["subscribed_lost"] == 0
    assert f["poll_round_trips_per_cycle"] == 1.0
    assert 0 < f["publish_to_mqtt_p50_ms"] <= f["publish_to_mqtt_p99_ms"] < 5000
    assert f["daemon_cpu_s_per_1000_values"] > 0
    assert 10 < f["daemon_peak_rss_mb"] < 1000
    assert set(opcua["targets"]) == {"one_round_trip_per_poll_cycle",
                                     "publish_to_mqtt_p99_under_50ms"}
    assert b"edgecell, OPC UA (10 polled + 10 subscribed nodes)" in run.stdout
    assert b"no OPC UA row" in run.stdout

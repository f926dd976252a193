"""The OPC UA benchmark keeps working: 20 polled + 20 subscribed nodes, 3 s measured, through
the real server, daemon (`edgecell run`), mosquitto and subscriber. Not a benchmark: the figures
are checked for being present and plausible, never for being fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_opcua_bench_writes_every_figure_of_a_daemon_run(tmp_path: Path) -> None:
    out = tmp_path / "opcua.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.opcua_bench", "--nodes", "20", "--duration", "3",
         "--warmup", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    result = orjson.loads(out.read_bytes())

    assert result["machine"]["nproc"] >= 1
    assert result["workload"]["polled_nodes"] == result["workload"]["subscribed_nodes"] == 20
    f = result["figures"]
    # 20 polled values per 1 s cycle and 20 subscribed changes per second reach the broker.
    assert 15 <= f["polled_values_per_s"] <= 25
    assert 15 <= f["subscribed_values_per_s"] <= 25
    assert f["bad_values"] == 0
    assert f["subscribed_lost"] == 0
    assert f["poll_round_trips_per_cycle"] == 1.0
    assert f["polled_nodes_per_read_max"] == 20
    assert 0 < f["publish_to_mqtt_p50_ms"] <= f["publish_to_mqtt_p99_ms"]
    assert f["publish_to_mqtt_p99_ms"] <= f["change_to_mqtt_p99_ms"] < 5000
    assert 0 < f["polled_change_to_mqtt_p50_ms"] < 5000
    assert f["daemon_cpu_s_per_1000_values"] > 0
    assert 10 < f["daemon_peak_rss_mb"] < 1000
    assert set(result["targets"]) == {
        "one_round_trip_per_poll_cycle",
        "publish_to_mqtt_p99_under_50ms",
    }
    assert b"values/s" in run.stdout

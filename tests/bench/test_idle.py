"""The idle benchmark keeps working: edgecell alone, both cases (the device answering with values
that never change, the device refusing connections), 1 s warm-up and 2 s measured each, through
`python -m bench --idle`. Not a benchmark: the figures are checked for being present and
plausible, never for being low."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.idle import IdleFigures, ratios, targets

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def idle_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("idle") / "idle.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--idle", "--gateways", "edgecell", "--duration", "2",
         "--warmup", "1", "--startup-timeout", "15", "--no-install", "--out", str(out)],
        cwd=ROOT, capture_output=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    result["stdout"] = run.stdout.decode()
    return result


def _row(result: dict[str, Any], case: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [r for r in result["runs"] if r["case"] == case]
    (row,) = rows
    return row


def test_idle_run_records_every_figure_for_both_cases(idle_run: dict[str, Any]) -> None:
    assert set(idle_run) >= {"machine", "workload", "runs", "summary", "ratios", "targets"}
    assert idle_run["workload"]["tags"] == 20
    assert [(r["gateway"], r["case"]) for r in idle_run["runs"]] == [
        ("edgecell", "static"), ("edgecell", "refused")]
    names = {field.name for field in dataclasses.fields(IdleFigures)}
    for row in idle_run["runs"]:
        assert set(row) == names
        assert row["ok"], row["note"]
    assert "static: device answering, values never changing" in idle_run["stdout"]


def test_static_device_is_polled_and_its_values_arrive(idle_run: dict[str, Any]) -> None:
    row = _row(idle_run, "static")
    assert row["samples"] >= 2
    assert 1.5 <= row["window_s"] <= 3
    assert row["cpu_s"] >= 0
    assert 0 <= row["cpu_percent_of_core"] <= 100 * idle_run["machine"]["nproc"]
    assert row["voluntary_switches_per_s"] > 0  # the event loop wakes for each poll at least
    assert row["device_requests_per_s"] > 0
    assert row["values"] > 0  # every value every poll: 20 per second
    assert 10 < row["rss_mb"] <= row["peak_rss_mb"] < 1000
    assert row["processes"] == 1
    assert row["threads"] >= 1


def test_refused_device_is_measured_without_device_figures(idle_run: dict[str, Any]) -> None:
    row = _row(idle_run, "refused")
    assert row["samples"] >= 2
    assert row["cpu_s"] >= 0
    assert row["device_requests_per_s"] is None
    assert 10 < row["rss_mb"] < 1000


def _summary_row(gateway: str, cpu: float, switches: float) -> dict[str, Any]:
    return {"case": "static", "gateway": gateway, "ok": True, "cpu_percent_of_core": cpu,
            "context_switches_per_s": switches, "voluntary_switches_per_s": switches,
            "rss_mb": 50.0}


def test_ratios_are_the_peer_over_edgecell() -> None:
    summary = [_summary_row("edgecell", 0.5, 10.0), _summary_row("thingsboard", 5.0, 1000.0)]

    (ratio,) = ratios(summary)

    assert ratio == {"case": "static", "peer": "thingsboard", "edgecell": "edgecell",
                     "cpu": 10.0, "context_switches": 100.0, "voluntary_switches": 100.0,
                     "rss": 1.0}


def test_target_is_missed_when_one_peer_is_lower() -> None:
    summary = [_summary_row("edgecell", 0.5, 10.0), _summary_row("nodered-raw", 0.2, 20.0),
               _summary_row("thingsboard", 5.0, 1000.0)]

    judged = {t["figure"]: t for t in targets(summary)}

    assert not judged["cpu_percent_of_core"]["met"]
    assert judged["cpu_percent_of_core"]["lowest_peer"] == "nodered-raw"
    assert judged["context_switches_per_s"]["met"]

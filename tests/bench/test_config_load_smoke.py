"""bench/config_load.py keeps working: a tiny generated config loads in a child process and the
figures come back as JSON. Not a benchmark: nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.config_load import generate
from controller.config import parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_generated_config_is_valid_and_has_the_tags_asked_for() -> None:
    config = parse_config(generate(250, per_device=100), "generated.yaml")
    assert [len(device.tags) for device in config.devices] == [100, 100, 50]


def test_the_bench_reports_time_and_peak_memory_as_json() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.config_load", "--tags", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout)
    assert figures["tags"] == figures["tags_loaded"] == 300
    assert figures["bytes"] > 300 * 50
    assert figures["seconds"] >= 0
    assert figures["peak_rss_mb"] >= figures["baseline_rss_mb"] > 10

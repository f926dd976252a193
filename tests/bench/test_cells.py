"""The generated-cells run (bench/cells.py) keeps working: two cells, a quarter of an hour
each, through `python -m bench --cells` and the real co-simulation (about 20 s on an idle
machine); and how a cell's report is scored (late, missed and not-yet-due leaks). Not a
benchmark: the figures are checked for being there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from bench.cellgen import generate
from bench.cells import SAVINGS, distribution, shares, summary, table
from controller.alarmscore import detection_limits, under_detection_limit
from controller.config import load_config
from drivers.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def report(leaks: list[dict[str, Any]], hours: float = 24.0) -> dict[str, Any]:
    """The fields of an `edgecell report` that the summary reads."""
    totals = {
        "ev_energy_short_kwh": 0.0,
        "wall_s": 1.0,
        "peak_demand_kw": 100.0,
        "meter_peak_demand_kw": 104.0,
    }
    base_violations = {"far_end_pressure_below_minimum": 930.0, "production_lost": 0.0}
    ours_violations = {"process_temperature_above_limit": 45.0, "production_lost": 0.0}
    return {
        "hours": hours,
        "baseline": totals | {"violations_s": base_violations},
        "edgecell": totals | {"violations_s": ours_violations},
        "constraint_violations": {"process_temperature_above_limit": 45.0},
        "constraint_violations_s": 45.0,
        "false_alarms": 1,
        "leaks": leaks,
        "savings_pct": {
            "energy_kwh": 7.5,
            "peak_demand_kw": -2.0,
            "energy_cost": 5.0,
            "water_m3": 40.0,
        },
        "alarms": [{"topic": "edgecell/cell/alarms/water_leak.leak"}],
    }


def leak(name: str, start_s: float | None, after_min: float | None) -> dict[str, Any]:
    return {
        "leak": name,
        "kind": "water",
        "true_start_s": start_s,
        "alarm": None if after_min is None else "water_leak.leak",
        "detected_after_min": after_min,
    }


def test_leaks_are_scored_missed_late_or_not_yet_due() -> None:
    scored = summary(
        report(
            [
                leak("on-time", 3600.0, 12.0),
                leak("late", 7200.0, 45.0),
                leak("missed", 8000.0, None),
                leak("at-the-end", 24 * 3600 - 600.0, None),  # 10 min before the run ends
                leak("never-flowed", None, None),
            ]
        ),
        "cell-x",
    )
    assert [entry["leak"] for entry in scored["leaks"]] == ["on-time", "late", "missed"]
    assert (scored["leaks_late"], scored["leaks_missed"], scored["leaks_not_due"]) == (1, 1, 1)
    assert scored["violations_total_s"] == 45.0
    # The baseline's own violations beside edgecell's, those it has only.
    assert scored["baseline_violations_s"] == {"far_end_pressure_below_minimum": 930.0}
    assert scored["false_alarms"] == 1
    assert scored["uses_more"] == ["peak_demand_kw"]
    assert scored["peak_kw"] == [100.0, 100.0]  # billed, baseline and edgecell
    assert scored["meter_peak_kw"] == [104.0, 104.0]  # the meter's sliding window


def test_the_baseline_runs_violations_stand_beside_edgecells() -> None:
    scored = summary(report([]), "cell-x")
    assert scored["violations_s"] == {"process_temperature_above_limit": 45.0}
    assert scored["baseline_violations_s"] == {"far_end_pressure_below_minimum": 930.0}
    assert scored["baseline_violations_total_s"] == 930.0
    dist = distribution([scored])
    assert (dist["violations_s_total"], dist["baseline_violations_s_total"]) == (45.0, 930.0)
    row = table([scored], dist).splitlines()[2]
    assert row.startswith(
        "| cell-x | process_temperature_above_limit 45 | far_end_pressure_below_minimum 930 |"
    )


def test_shares_split_the_cells_into_consecutive_runs() -> None:
    assert shares(0, 30, 2) == [(0, 15), (15, 15)]
    assert shares(8, 11, 3) == [(8, 4), (12, 4), (16, 3)]
    assert shares(5, 2, 4) == [(5, 1), (6, 1)]


def test_a_leak_under_the_detection_limit_is_reported_apart_not_missed() -> None:
    """A 0.1 m3/h leak under water_leak's 0.2 m3/h threshold is not what the rule was set to
    find: its own column, neither missed nor late; a leak at or over the limit still is."""
    scored = summary(
        report(
            [
                leak("small", 3600.0, None),
                leak("small-found", 3600.0, 45.0),
                leak("big", 7200.0, None),
            ]
        ),
        "cell-x",
        frozenset({"small", "small-found"}),
    )
    assert (scored["leaks_missed"], scored["leaks_late"], scored["leaks_under_limit"]) == (1, 0, 2)
    assert [e["under_detection_limit"] for e in scored["leaks"]] == [True, True, False]
    dist = distribution([scored])
    assert (dist["leaks_missed"], dist["leaks_under_limit"]) == (1, 2)
    row = table([scored], dist).splitlines()[2]
    assert "| water missed | water not alarmed, water 45.0 |" in row


def test_detection_limits_are_the_rules_thresholds_by_place(tmp_path: Path) -> None:
    # cell-1-006: a 0.14 m3/h leak behind the main meter at 03:04
    scenario_path, config_path = generate(1, 6).write(tmp_path)
    scenario = load_scenario(scenario_path)
    config = load_config(config_path).config
    limits = detection_limits(config.rules)
    assert limits == {"main": 0.2, "cooling_tower": 0.05}
    assert under_detection_limit(scenario.events.leaks, limits) == {"leak-1"}


def test_two_short_cells_in_two_processes_give_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "cells.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--cells",
            "2",
            "--hours",
            "0.25",
            "--cycle",
            "10",
            "--jobs",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = orjson.loads(out.read_bytes())
    assert [cell["cell"] for cell in result["cells"]] == ["cell-1-000", "cell-1-001"]
    for cell in result["cells"]:
        assert set(cell["savings_pct"]) == set(SAVINGS)
        assert cell["savings_pct"]["energy_kwh"] is not None
        assert cell["machines"] >= 2
        assert cell["violations_total_s"] >= 0
        assert cell["baseline_violations_total_s"] >= 0
    dist = result["distribution"]
    assert dist["cells"] == 2
    assert set(dist["savings_pct"]) == set(SAVINGS)
    assert "| saving | min | median | max |" in done.stdout
    # Each process kept its own cells, the result holds both in order.
    assert sorted(p.name for p in tmp_path.glob("cells.part*.json")) == [
        "cells.part0.json",
        "cells.part1.json",
    ]

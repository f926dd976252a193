"""`edgecell report` on one simulated hour: both runs through the real stacks, every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import EXIT_OK, main

TOTALS = {
    "energy_kwh",
    "peak_demand_kw",
    "meter_peak_demand_kw",
    "energy_cost",
    "demand_charge",
    "water_m3",
    "water_cost",
    "energy_kwh_by_component",
    "water_m3_by_use",
    "violations_s",
    "writes_per_hour",
    "refreshes_per_hour",
    "equipment_starts_per_hour",
    "plc_fallbacks",
    "ev_energy_short_kwh",
    "machine_restarts",
    "wall_s",
}


def test_report_of_one_hour_writes_json_markdown_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["report", "--scenario", "leak", "--hours", "1", "--out", str(out)]) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    assert report["scenario"] == "leak"
    assert report["hours"] == 1
    for run in ("baseline", "edgecell"):
        assert set(report[run]) == TOTALS
        assert report[run]["energy_kwh"] > 0
        assert report[run]["water_m3"] > 0
    # The baseline is the cell without a controller: nothing is ever written.
    assert report["baseline"]["writes_per_hour"] == 0
    assert report["edgecell"]["writes_per_hour"] > 0
    assert set(report["savings_pct"]) == {"energy_kwh", "peak_demand_kw", "energy_cost", "water_m3"}
    assert set(report["targets"]) == {
        "peak_demand_15pct_lower",
        "energy_10pct_lower",
        "water_30pct_lower",
        "zero_constraint_violations",
        "no_false_alarm",
        "leaks_alarmed_within_30_min",
    }
    assert {leak["leak"] for leak in report["leaks"]} == {"fitting-bay-3", "pipe-yard"}
    assert len(report["plots"]) == 8
    assert all((out / name).stat().st_size > 10_000 for name in report["plots"])
    table = (out / "report.md").read_text()
    assert "| energy |" in table
    assert "baseline" in capsys.readouterr().out

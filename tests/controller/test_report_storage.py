"""`edgecell report` on a cell with PV and a battery: the storage table from the plant's ground
truth (import and export, self-consumption and self-sufficiency, throughput, cycles, losses,
net cost with export and demand charge, SoC limits), beside the baseline (the battery in its
vendor program)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.report import RunResult, storage_totals, write_report
from drivers.sim.plant.truth import GroundTruth
from drivers.sim.scenario import load_scenario


def truth(**figures: Any) -> dict[str, Any]:
    base = GroundTruth(scenario="solar-day", seed=1, start="2024-06-03T00:00:00").as_dict()
    return {**base, **figures}


DAY = {
    "site_import_kwh": 1000.0,
    "site_export_kwh": 50.0,
    "pv_kwh": 400.0,
    "battery_charged_kwh": 120.0,
    "battery_discharged_kwh": 100.0,
    "battery_loss_kwh": 20.0,
    "energy_cost": 200.0,
    "export_revenue": 3.5,
    "demand_charge_prorated": 60.0,
    "battery_initial_soc_pct": 50.0,
    "battery_final_soc_pct": 60.0,
    "battery_soc_min_pct": 12.0,
    "battery_soc_max_pct": 95.0,
    "seconds_soc_outside_limits": 0.0,
}


def test_the_storage_figures_follow_the_meter_balance() -> None:
    got = storage_totals(truth(**DAY), usable_kwh=200.0, stored_price=0.16)
    # loads = import - export + PV + discharged - charged = 1000 - 50 + 400 + 100 - 120 = 1330
    assert got["pv_self_consumption_pct"] == pytest.approx(87.5)  # (400 - 50) / 400
    assert got["self_sufficiency_pct"] == pytest.approx(24.8)  # 330 / 1330
    assert got["battery_throughput_kwh"] == 220.0
    assert got["battery_equivalent_full_cycles"] == pytest.approx(0.55)  # 220 / (2 x 200)
    assert got["net_cost"] == pytest.approx(256.5)  # 200 - 3.5 + 60
    assert got["battery_stored_kwh"] == pytest.approx(20.0)  # 10 % of 200 kWh
    assert got["net_cost_soc_adjusted"] == pytest.approx(253.3)  # 256.5 - 20 x 0.16


def test_the_report_prints_the_storage_table_and_its_targets(tmp_path: Path) -> None:
    scenario = load_scenario("solar-day")
    base = RunResult("baseline", truth(**DAY, max_demand_kw=200.0), hours=24.0)
    ours = RunResult(
        "edgecell",
        truth(**{**DAY, "energy_cost": 150.0, "demand_charge_prorated": 50.0}, max_demand_kw=170.0),
        hours=24.0,
    )
    report = write_report(base, ours, scenario, tmp_path, plots=False)
    text = (tmp_path / "report.md").read_text("utf-8")
    assert "## Storage and sun" in text
    assert "| PV self-consumption | 87.50 % | 87.50 % |" in text
    assert "| equivalent full cycles | 0.55 | 0.55 |" in text
    assert "| net cost (import - export + demand charge) | 256.50 EUR | 196.50 EUR |" in text
    stored = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert stored["storage"]["net_cost_soc_adjusted_saved_pct"] == pytest.approx(23.7)
    assert report["targets"]["net_cost_15pct_lower"] is True
    assert report["targets"]["zero_soc_violations"] is True


def test_a_cell_without_storage_has_no_storage_table(tmp_path: Path) -> None:
    scenario = load_scenario("normal-day")
    run = RunResult("baseline", truth(max_demand_kw=200.0, site_import_kwh=1.0), hours=1.0)
    report = write_report(run, run, scenario, tmp_path, plots=False)
    assert report["storage"] is None
    assert "Storage and sun" not in (tmp_path / "report.md").read_text("utf-8")
    assert "net_cost_15pct_lower" not in report["targets"]

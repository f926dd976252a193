"""bench/battery_rules.py: the battery rules of configs/cosim-storage.yaml on the plant alone;
an hour of solar-day's night, where the vendor program empties the battery and the rules
recharge it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.battery_rules import battery_rules, run_day
from drivers.sim.scenario import load_scenario

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cosim-storage.yaml"


def test_the_rules_recharge_at_night_where_the_vendor_program_discharges() -> None:
    scenario = load_scenario("solar-day")
    rules = battery_rules(CONFIG, ["battery_peak_shaving.recharge_kw=110"])
    assert [rule.kind for rule in rules] == ["battery_peak_shaving", "pv_self_consumption"]
    assert rules[0].config.recharge_kw == 110  # type: ignore[attr-defined]
    base = run_day(scenario, [], hours=1.0)
    ours = run_day(scenario, rules, hours=1.0)
    assert base.discharged_kwh > 50.0  # covering the night's ~69 kW
    assert ours.discharged_kwh == pytest.approx(0.0, abs=0.5)
    assert ours.import_kwh > base.import_kwh + 60.0  # recharging 30-50 kW from the grid
    assert ours.soc_outside_s == 0.0

"""`edgecell report`'s figures on a small pair of runs worked out by hand: savings (and their
sign), per-component and per-use savings, the targets, each leak's alarm delay and the count of
false alarms, and the markdown built from them.

The inputs are what a co-simulated run records (`RunResult` with the plant's `GroundTruth` and
the controller's alarm episodes), built directly so that every expected number can be checked
on paper; tests/controller/test_report.py runs the real co-simulation end to end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controller.report import RunResult, compare, markdown
from drivers.sim.plant.truth import GroundTruth, LeakTruth
from drivers.sim.scenario import Scenario, load_scenario

START = "2024-06-03T06:00:00"  # the scenario's local start, read as UTC by the co-simulation
START_MS = int(datetime.fromisoformat(START).replace(tzinfo=UTC).timestamp() * 1000)
WATER_LEAK_S = 600.0  # pipe-yard flows 10 min after the start
AIR_LEAK_S = 1200.0  # fitting-bay-3 blows 20 min after the start


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario("leak")  # only its name goes into the report


def leaks() -> list[LeakTruth]:
    return [
        LeakTruth(
            "pipe-yard", "water", "06:10", started_s=WATER_LEAK_S, volume_m3=0.5, location="main"
        ),
        LeakTruth(
            "fitting-bay-3",
            "air",
            "06:20",
            started_s=AIR_LEAK_S,
            volume_m3=40.0,
            location="compressed_air",
        ),
    ]


def baseline_run() -> RunResult:
    truth = GroundTruth(
        scenario="leak",
        seed=7,
        start=START,
        site_import_kwh=200.0,
        energy_kwh={"compressor": 100.0, "chiller": 50.0, "lighting": 0.0},
        # drawn from the mains: 6 + 3 + 1 + 0 = 10 m3 (evaporation is part of tower makeup)
        water_m3={
            "tower_makeup": 6.0,
            "rinse_fresh": 3.0,
            "domestic": 1.0,
            "main_leak": 0.0,
            "tower_evaporation": 4.0,
        },
        leaks=leaks(),
        energy_cost=40.0,
        billing_demand_kw=80.0,  # the tariff's clock-aligned window
        max_demand_kw=84.0,  # the meter's sliding one, not billed
        demand_charge_prorated=12.0,
        water_cost=25.0,
        seconds_rinse_above_limit=120.0,
        seconds_production_lost={"press-1": 30.0},
        ev_energy_short_kwh={"ev-1": 2.0},
    )
    return RunResult("baseline", truth.as_dict(), hours=2.0, writes=0, starts=10)


# What each rule kind declares its alarms indicate, and where (docs/rules.md, "Alarms").
DECLARED = {
    "water_leak": ("water_leak", "main"),
    "compressed_air": ("air_leak", "compressed_air"),
    "tower_balance": ("water_leak", "cooling_tower"),
    "tower_blowdown": ("process_limit", "cooling_tower"),
}


def alarm(name: str, rule: str, message: str, after_s: float, count: int = 1) -> dict[str, Any]:
    """One alarm episode as the co-simulation keeps it: its first publication."""
    indicates, location = DECLARED[rule]
    return {
        "topic": f"edgecell/cell-1/alarms/{name}",
        "rule": rule,
        "indicates": indicates,
        "location": location,
        "steps": 0,
        "stepped_at": None,
        "message": message,
        "state": "active",
        "raised_count": count,
        "first": START_MS + round(after_s * 1000),
    }


# Episodes in the order they were raised:
EARLY_WATER = alarm("water_flow_high", "water_leak", "night flow above base", 300.0)
# 5 min in: before any leak flows, a water alarm matches nothing -> false alarm 1
WATER = alarm("night_water_leak", "water_leak", "0.8 m3/h unmetered", WATER_LEAK_S + 720.0)
# 600 s + 720 s: pipe-yard alarmed 720 s = 12.0 min after it started
AIR = alarm("air_leak", "compressed_air", "load/unload duty when idle", AIR_LEAK_S + 1500.0)
# 1200 s + 1500 s: fitting-bay-3 alarmed 1500 s = 25.0 min after it started
TOWER = alarm("tower_conductivity", "tower_blowdown", "2700 uS/cm over 2500", 1800.0)
# indicates a process limit, not a leak: not a leak finding, not a false one; other_alarms


def edgecell_run(**changes: Any) -> RunResult:
    truth = GroundTruth(
        scenario="leak",
        seed=7,
        start=START,
        site_import_kwh=185.0,
        energy_kwh={"compressor": 80.0, "chiller": 55.0, "lighting": 3.0, "ev": 10.0},
        # drawn: 4 + 1.5 + 1 + 0.5 = 7 m3
        water_m3={
            "tower_makeup": 4.0,
            "rinse_fresh": 1.5,
            "domestic": 1.0,
            "main_leak": 0.5,
            "tower_evaporation": 4.0,
        },
        leaks=leaks(),
        energy_cost=38.0,
        billing_demand_kw=68.0,
        max_demand_kw=75.0,
        demand_charge_prorated=10.2,
        water_cost=17.5,
        ev_energy_short_kwh={"ev-1": 1.0},
    )
    for key, value in changes.items():
        setattr(truth, key, value)
    return RunResult(
        "edgecell",
        truth.as_dict(),
        hours=2.0,
        writes=30,
        refreshes=720,
        starts=6,
        alarms=[EARLY_WATER, WATER, AIR, TOWER],
    )


def test_savings_targets_leak_delays_and_false_alarms_worked_out_by_hand(
    scenario: Scenario,
) -> None:
    report = compare(baseline_run(), edgecell_run(), scenario)

    assert report["scenario"] == "leak"
    assert report["seed"] == 7
    assert report["hours"] == 2.0
    assert report["baseline"]["water_m3"] == 10.0
    assert report["edgecell"]["water_m3"] == 7.0
    # writes per hour: 0 / 2 h and 30 / 2 h; equipment starts: 10 / 2 h and 6 / 2 h
    assert report["baseline"]["writes_per_hour"] == 0.0
    assert report["edgecell"]["writes_per_hour"] == 15.0
    # values held and written again by their refresh, counted apart: 720 / 2 h
    assert report["edgecell"]["refreshes_per_hour"] == 360.0
    assert report["baseline"]["refreshes_per_hour"] == 0.0
    assert report["baseline"]["equipment_starts_per_hour"] == 5.0
    assert report["edgecell"]["equipment_starts_per_hour"] == 3.0
    assert report["baseline"]["violations_s"]["rinse_conductivity_above_limit"] == 120.0
    assert report["baseline"]["violations_s"]["production_lost"] == 30.0

    # Saved = (baseline - edgecell) / baseline, positive when edgecell uses less:
    assert report["savings_pct"] == {
        "energy_kwh": 7.5,  # (200 - 185) / 200
        "peak_demand_kw": 15.0,  # (80 - 68) / 80
        "energy_cost": 5.0,  # (40 - 38) / 40
        "water_m3": 30.0,  # (10 - 7) / 10
    }
    assert report["energy_savings_pct_by_component"] == {
        "compressor": 20.0,  # (100 - 80) / 100
        "chiller": -10.0,  # (50 - 55) / 50: the chiller used more
        "lighting": None,  # nothing in the baseline: no percentage
        # "ev" is not in the baseline: left out
    }
    assert report["water_savings_pct_by_use"] == {
        "tower_makeup": 33.3,  # (6 - 4) / 6 = 33.33
        "rinse_fresh": 50.0,  # (3 - 1.5) / 3
        "domestic": 0.0,
        "main_leak": None,  # none in the baseline
        "tower_evaporation": 0.0,
    }
    # edgecell's run has no violation and left less EV energy undelivered (1 <= 2 kWh)
    assert report["constraint_violations_s"] == 0
    assert report["constraint_violations"] == {}

    assert report["leaks"] == [
        {
            "leak": "pipe-yard",
            "kind": "water",
            "location": "main",
            "true_start_s": 600.0,
            "alarm": "night_water_leak",  # not water_flow_high: raised before the leak
            "step": 0,
            "detected_after_min": 12.0,
        },
        {
            "leak": "fitting-bay-3",
            "kind": "air",
            "location": "compressed_air",
            "true_start_s": 1200.0,
            "alarm": "air_leak",
            "step": 0,
            "detected_after_min": 25.0,
        },
    ]
    assert report["false_alarms"] == 1  # water_flow_high (too early)
    assert report["other_alarms"] == {"process_limit": 1}  # tower_conductivity

    assert report["targets"] == {
        "peak_demand_15pct_lower": True,  # 15.0 >= 15
        "energy_10pct_lower": False,  # 7.5 < 10
        "water_30pct_lower": True,  # 30.0 >= 30
        "zero_constraint_violations": True,
        "no_false_alarm": False,  # 1 false alarm
        "leaks_alarmed_within_30_min": True,  # 12.0 and 25.0 min
    }

    table = markdown(report)
    assert "| energy | 200.00 kWh | 185.00 kWh | +7.5 % |" in table
    assert (
        "| peak 15-min demand (clock-aligned billing windows) | 80.00 kW | 68.00 kW | +15.0 % |"
        in table
    )
    assert "| meter peak, sliding 15-min (not billed) | 84.00 kW | 75.00 kW | |" in table
    assert "| water | 10.00 m3 | 7.00 m3 | +30.0 % |" in table
    assert "Energy saved by component: compressor +20.0 %, chiller -10.0 %\n" in table
    assert (
        "Leaks: pipe-yard (water): alarmed after 12.0 min, "
        "fitting-bay-3 (air): alarmed after 25.0 min; false alarms: 1; process_limit alarms: 1"
    ) in table
    assert "energy_10pct_lower NO" in table
    assert "peak_demand_15pct_lower yes" in table


def test_using_more_a_violation_and_a_late_alarm_miss_their_targets(scenario: Scenario) -> None:
    late_air = alarm("air_leak", "compressed_air", "duty when idle", AIR_LEAK_S + 2700.0)
    run = edgecell_run(
        site_import_kwh=210.0,  # (200 - 210) / 200 = -5.0 %: more than the baseline
        billing_demand_kw=80.0,  # 0.0 %
        seconds_rinse_above_limit=30.0,
        seconds_tank_below_min={"washer-1": 12.0},
        ev_energy_short_kwh={"ev-1": 2.5},  # more than the baseline's 2.0 kWh
    )
    run.alarms = [WATER, late_air]  # air alarmed 2700 s = 45.0 min after the leak
    report = compare(baseline_run(), run, scenario)

    assert report["savings_pct"]["energy_kwh"] == -5.0
    assert report["savings_pct"]["peak_demand_kw"] == 0.0
    assert report["constraint_violations_s"] == 42.0  # 30 s rinse + 12 s wash tank
    assert report["constraint_violations"] == {
        "rinse_conductivity_above_limit": 30.0,
        "heated_tank_below_minimum": 12.0,
    }
    assert [leak["detected_after_min"] for leak in report["leaks"]] == [12.0, 45.0]
    assert report["false_alarms"] == 0
    assert report["targets"] == {
        "peak_demand_15pct_lower": False,
        "energy_10pct_lower": False,
        "water_30pct_lower": True,
        "zero_constraint_violations": False,
        "no_false_alarm": True,
        "leaks_alarmed_within_30_min": False,  # 45.0 > 30
    }
    assert "| energy | 200.00 kWh | 210.00 kWh | -5.0 % |" in markdown(report)


def test_an_unalarmed_leak_and_an_alarm_raised_before_its_leak(scenario: Scenario) -> None:
    # The air alarm's only episode came 100 s before the air leak started: it cannot be about
    # it, so the leak is not alarmed and that episode is a false alarm.
    early_air = alarm("air_leak", "compressed_air", "duty when idle", AIR_LEAK_S - 100.0)
    run = edgecell_run()
    run.alarms = [WATER, early_air]
    report = compare(baseline_run(), run, scenario)

    assert report["leaks"][1]["alarm"] is None
    assert report["leaks"][1]["detected_after_min"] is None
    assert report["false_alarms"] == 1
    assert report["targets"]["leaks_alarmed_within_30_min"] is False
    assert report["targets"]["no_false_alarm"] is False
    assert "fitting-bay-3 (air): not alarmed; false alarms: 1" in markdown(report)


def test_an_earlier_episode_of_the_alarm_that_found_the_leak_is_still_a_false_alarm(
    scenario: Scenario,
) -> None:
    # night_water_leak was raised at 5 min (no leak flowing), cleared, and raised again 12 min
    # after pipe-yard started: the second episode found the leak, the first was a false alarm.
    # A third episode while the leak still flows is about the leak: not a false alarm.
    first = alarm("night_water_leak", "water_leak", "0.4 m3/h unmetered", 300.0, count=1)
    second = dict(WATER, raised_count=2)
    third = alarm("night_water_leak", "water_leak", "0.8 m3/h unmetered", 3600.0, count=3)
    run = edgecell_run()
    run.alarms = [first, second, third, AIR]
    report = compare(baseline_run(), run, scenario)

    assert report["leaks"][0]["detected_after_min"] == 12.0
    assert report["false_alarms"] == 1


# --- scored by declared kind and place, and a second leak found by a step (docs/rules.md) ----

BASIN_S = 3600.0  # a basin leak 1 h in, a second one 2 h in
BASIN_2_S = 7200.0


def tower_run(alarms: list[dict[str, Any]]) -> RunResult:
    run = edgecell_run(
        leaks=[
            LeakTruth("basin-1", "water", "07:00", started_s=BASIN_S, location="cooling_tower"),
            LeakTruth("basin-2", "water", "08:00", started_s=BASIN_2_S, location="cooling_tower"),
        ]
    )
    run.alarms = alarms
    return run


def stepped(episode: dict[str, Any], steps: int, after_s: float) -> dict[str, Any]:
    """The same episode published again when its estimate stepped up by another leak."""
    return {**episode, "steps": steps, "stepped_at": START_MS + round(after_s * 1000)}


def test_a_tower_balance_alarm_finds_a_basin_leak_and_its_step_the_second(
    scenario: Scenario,
) -> None:
    # "cooling tower loses 0.25 m3/h ... probable basin or tower-side leak": no water or flow
    # word, but it declares water_leak at cooling_tower.
    raised = alarm("tower_balance.leak", "tower_balance", "probable basin leak", BASIN_S + 480)
    run = tower_run([raised, stepped(raised, 1, BASIN_2_S + 1200)])
    report = compare(baseline_run(), run, scenario)
    assert [
        (leak["alarm"], leak["step"], leak["detected_after_min"]) for leak in report["leaks"]
    ] == [
        ("tower_balance.leak", 0, 8.0),
        ("tower_balance.leak", 1, 20.0),
    ]
    assert report["false_alarms"] == 0


def test_an_alarm_of_another_place_does_not_find_a_leak(scenario: Scenario) -> None:
    # The main-meter rule raised while the basin leaks: not about it (wrong place), and false.
    main = alarm("water_leak.leak", "water_leak", "0.6 m3/h unmetered", BASIN_S + 600)
    report = compare(baseline_run(), tower_run([main]), scenario)
    assert [leak["alarm"] for leak in report["leaks"]] == [None, None]
    assert report["false_alarms"] == 1


def test_a_step_with_no_new_leak_is_false_and_a_second_leak_without_one_is_missed(
    scenario: Scenario,
) -> None:
    raised = alarm("tower_balance.leak", "tower_balance", "probable basin leak", BASIN_S + 480)
    # stepped 30 min after the first leak, before the second began: nothing new to find
    run = tower_run([raised, stepped(raised, 1, BASIN_S + 1800)])
    report = compare(baseline_run(), run, scenario)
    assert [leak["detected_after_min"] for leak in report["leaks"]] == [8.0, None]
    assert report["false_alarms"] == 1


def test_standing_air_leakage_is_a_maintenance_alarm_not_a_false_leak_alarm(
    scenario: Scenario,
) -> None:
    standing = {
        **alarm("air.leakage_high", "compressed_air", "loaded 32 % with no air used", 60.0),
        "indicates": "maintenance",
    }
    run = edgecell_run()
    run.alarms = [WATER, standing, AIR]
    report = compare(baseline_run(), run, scenario)
    assert report["false_alarms"] == 0
    assert report["other_alarms"] == {"maintenance": 1}
    assert [leak["detected_after_min"] for leak in report["leaks"]] == [12.0, 25.0]

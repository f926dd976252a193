"""The water-leak rules alone on generated cells' plants (bench/leakcells.py): the cells whose
leaks were found late, never, or with a false step by the rules of session 4 (bench/README.md,
"Session 5: water leaks"), a few simulated hours each, in seconds."""

from __future__ import annotations

from typing import Any

from bench.leakcells import leak_day, row


def delays(result: dict[str, Any]) -> list[float | None]:
    return [leak["detected_after_min"] for leak in result["leaks"]]


def test_a_first_night_leak_is_one_finding_when_people_arrive() -> None:
    """cell-1-019: a 0.8 m3/h leak at 02:06, alarmed at night; at the 05:15 warm-up a false step
    of the same alarm at 05:45 (1 false alarm in the 30-cell run)."""
    result = leak_day(1, 19, hours=6.5)
    assert result["false_alarms"] == 0
    assert delays(result) == [15.1]


def test_a_second_leak_in_production_under_the_raised_alarm_is_found() -> None:
    """cell-1-004: 0.7 m3/h at 05:01 (raised in quiet hours), then 0.88 m3/h at 15:54 in
    production with the first alarm still raised: missed before, now a step."""
    result = leak_day(1, 4, hours=16.5)
    assert result["false_alarms"] == 0
    found = delays(result)
    assert all(delay is not None and delay <= 30 for delay in found), found
    assert len(found) == 2
    assert row(result).startswith("| cell-1-004 | 0 | main 0.7 m3/h at 05:01: 15.1;")

"""The load forecast from what the site meters (docs/rules.md, "Scheduler: forecasts"): each
step learned for its time of day within its period (the late shift is not the morning's), and
corrected by the recent error of its period, blended back over `error_blend`. Hand-calculated
answers on readings fed to the forecaster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.scheduler.forecast import LoadForecaster
from tests.scheduler.cell import scheduler_config

MONDAY_MS = 1_717_372_800_000  # 2024-06-03 00:00 UTC, a Monday
MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS


def at(day: int, hh: int, mm: int) -> int:
    return MONDAY_MS + day * DAY_MS + (hh * 60 + mm) * MINUTE_MS


def forecaster(state_dir: Path | None = None) -> LoadForecaster:
    config = scheduler_config()
    assert config.scheduler is not None
    load = config.scheduler.load
    assert load.prior_kw["production"] == 170.0
    assert load.error_blend == 4 * 3600.0
    return LoadForecaster(load, 900.0, state_dir)


def feed(load: LoadForecaster, start_ms: int, minutes: int, kw: float) -> None:
    """Readings every 10 s from `start_ms` on; a step is learned when the next one's first
    reading comes."""
    for i in range(minutes * 6):
        load.observe(start_ms + i * 10_000, kw)


def test_each_time_of_day_is_learned_within_its_period(tmp_path: Path) -> None:
    load = forecaster(tmp_path)
    feed(load, at(0, 7, 0), 15, 180.0)  # the morning shift
    feed(load, at(0, 20, 0), 15, 205.0)  # the late shift draws more
    load.observe(at(0, 20, 15), 0.0)  # closes the 20:00 step
    # The period as a whole: 180, then 180 + 0.2 * (205 - 180).
    assert load.power_of("production") == pytest.approx(185.0)
    # The next day (the recent errors long blended out): each time of day its own, a time not
    # seen yet its period's.
    got = load.forecast([at(1, 7, 0), at(1, 20, 0), at(1, 12, 30)])
    assert got == pytest.approx([180.0, 205.0, 185.0])
    # Kept with the periods, and restored.
    saved = json.loads((tmp_path / "scheduler" / "load.json").read_text())
    assert saved["state"]["slots"]["production 20:00"]["kw"] == 205.0
    again = forecaster(tmp_path)
    again.restore(at(1, 0, 0))
    assert again.forecast([at(1, 7, 0), at(1, 20, 0)]) == pytest.approx([180.0, 205.0])


def test_the_recent_error_corrects_the_next_hours_of_its_period() -> None:
    load = forecaster()
    feed(load, at(0, 6, 0), 15, 190.0)  # production learned at 190
    # The late shift at 205 where production is learned at 190.
    feed(load, at(0, 20, 0), 30, 205.0)
    load.observe(at(0, 20, 30), 0.0)
    # 06:00 step: error 190 - 170 (the prior) = 20 -> recent error 10 (at 06:15).
    # 20:00 step: forecast 190, error 15; the 06:15 error is 14 h old (none left) -> 7.5.
    #   production: 190 + 0.2 * 15 = 193.
    # 20:15 step: forecast 193, error 12; 7.5 * (1 - 15/240) carried -> 9.515625 at 20:30.
    #   production: 193 + 0.2 * 12 = 195.4.
    error = 7.5 * (1 - 15 / 240)
    error += 0.5 * (12 - error)
    assert load.errors["production"].kw == pytest.approx(error)
    assert load.power_of("production") == pytest.approx(195.4)
    got = load.forecast([at(0, 20, 30), at(0, 21, 45), at(0, 22, 0), at(1, 1, 0), at(1, 6, 0)])
    assert got == pytest.approx(
        [
            195.4 + error * (1 - 7.5 / 240),  # 20:30-20:45, its middle 7.5 min after
            195.4 + error * (1 - 82.5 / 240),  # 21:45-22:00
            45.0,  # the default period (the prior here): production's error is not its
            45.0,
            190.0,  # tomorrow 06:00: its time of day, the error blended out
        ]
    )
    assert got[0] > 204.0  # the late shift's 205 kW, within a kW


def test_a_state_file_with_bad_slots_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "scheduler" / "load.json"
    path.parent.mkdir(parents=True)
    good = {"kw": 150.0, "steps": 1, "at_ms": at(0, 7, 0)}
    document = {
        "format": "edgecell-scheduler-state",
        "version": 1,
        "kind": "load",
        "saved_at_ms": at(0, 7, 0),
        "state": {
            "periods": {},
            "slots": {
                "production 07:00": good,
                "production 25:00": good,
                "nosuch 07:00": good,
                "production 07:15": {"kw": "NaN", "steps": 1, "at_ms": at(0, 7, 0)},
                "production 07:30": {"kw": -5, "steps": 1, "at_ms": at(0, 7, 0)},
                "production": good,
            },
        },
    }
    path.write_text(json.dumps(document))
    load = forecaster(tmp_path)
    load.restore(at(0, 8, 0))
    assert list(load.slots) == ["production 07:00"]

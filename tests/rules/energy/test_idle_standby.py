"""Idle machines to standby (PROFIenergy): only through pauses at least the minimum pause that
save more than the restart costs; woken by the wake-up time before production or at once by a
start signal; never more starts per hour than allowed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.energy.idle_standby import IdleStandby, IdleStandbyConfig, standby_saving_kwh
from tests.rules.plantloop import Driven

MONDAY_MS = 1_717_372_800_000  # 2024-06-03 00:00 UTC
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def period(start: str, end: str) -> dict[str, Any]:
    return {"name": "production", "days": WEEKDAYS, "start": start, "end": end}


SHIFT = [period("06:00", "12:00"), period("12:30", "14:00"), period("14:10", "22:00")]
MACHINE = {
    "name": "press",
    "state": "plc.press_state",
    "command": "plc.press_standby",
    "idle_kw": 12.0,
    "standby_kw": 3.0,
    "restart_kwh": 0.5,
    "idle_for": "2min",
    "min_pause": "15min",
    "time_to_pause": "1min",
    "wake_up_time": "5min",
}


def rule(periods: list[dict[str, Any]] | None = None, **machine: Any) -> IdleStandby:
    return IdleStandby(
        IdleStandbyConfig.model_validate(
            {
                "name": "standby",
                "kind": "idle_standby",
                "schedule": {"timezone": "UTC", "default": "off", "periods": periods or SHIFT},
                "production_periods": ["production"],
                "machines": [dict(MACHINE, **machine)],
            }
        )
    )


def at(hour: int, minute: int = 0) -> int:
    return MONDAY_MS + (hour * 60 + minute) * 60_000


def run(driven: Driven, seconds: int, state: float, **extra: Any) -> list[bool]:
    """The command proposed each second."""
    out = []
    for _ in range(seconds):
        values = driven.step({"plc.press_state": state, **extra})
        out.append(values["plc.press_standby"])
    return out


def test_idle_through_a_long_pause_goes_to_standby_after_idle_for() -> None:
    driven = Driven(rule(), start_ms=at(12))
    commands = run(driven, 180, state=2)
    assert commands.index(True) == 120  # idle seen from the first cycle, 2 min later


def test_woken_its_wake_up_time_before_production() -> None:
    driven = Driven(rule(), start_ms=at(12))
    commands = run(driven, 30 * 60, state=2)
    # in standby from 12:02 until 12:25, five minutes before the 12:30 start
    assert commands[25 * 60 - 2] is True
    assert commands[25 * 60 - 1] is False


def test_a_pause_shorter_than_min_pause_is_not_used() -> None:
    driven = Driven(rule(), start_ms=at(14))
    assert not any(run(driven, 600, state=2))


def test_no_standby_when_the_restart_costs_more_than_it_saves() -> None:
    driven = Driven(rule(restart_kwh=5.0), start_ms=at(12))
    assert not any(run(driven, 600, state=2))
    assert standby_saving_kwh(rule(restart_kwh=5.0).config.machines[0], 28 * 60) < 0


def test_a_producing_machine_is_never_sent_to_standby() -> None:
    driven = Driven(rule(), start_ms=at(12))
    assert not any(run(driven, 600, state=3))


def test_a_start_signal_wakes_the_machine_at_once() -> None:
    start = {"tags": ["plc.press_order"], "at_least": 1}
    driven = Driven(rule(start=start), start_ms=at(12))
    assert run(driven, 180, state=2, **{"plc.press_order": 0})[-1] is True
    assert run(driven, 1, state=2, **{"plc.press_order": 1}) == [False]


def test_never_more_starts_per_hour_than_allowed() -> None:
    periods = [
        period("00:00", "00:10"),
        period("00:40", "00:50"),
        period("01:20", "01:30"),
    ]
    driven = Driven(rule(periods, max_starts_per_hour=1), start_ms=at(0, 10))
    first = run(driven, 30 * 60, state=2)  # 00:10-00:40: standby, woken at 00:35
    assert any(first)
    second = run(driven, 40 * 60, state=2)  # 00:40-01:20: the start at 00:35 is recent
    assert not any(second[: 20 * 60])


def test_detail_reports_the_pause_and_the_saving() -> None:
    standby = rule()
    driven = Driven(standby, start_ms=at(12))
    run(driven, 150, state=2)
    press = standby.detail()["press"]
    assert press["standby"] is True
    assert press["pause_s"] == pytest.approx(30 * 60 - 150, abs=1)
    # (idle - standby) kW over the pause less entering (1 min) and waking (5 min), less the
    # restart: (12 - 3) kW * (1650 - 60 - 300) s / 3600 s/h - 0.5 kWh = 3.225 - 0.5 kWh
    assert press["saving_kwh"] == pytest.approx(2.725, abs=0.001)
    # The decision, at 12:02:01 with 1679 s to 12:30: 9 kW * (1679 - 360) s / 3600 - 0.5 kWh
    assert press["reason"] == "standby: pause 1679s, saves 2.80 kWh"


def test_min_pause_shorter_than_entering_and_leaving_standby_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_pause"):
        rule(min_pause="5min")


def test_unknown_production_period_is_refused() -> None:
    with pytest.raises(ValidationError, match="no period"):
        IdleStandbyConfig.model_validate(
            {
                "name": "standby",
                "kind": "idle_standby",
                "schedule": {"timezone": "UTC", "default": "off", "periods": SHIFT},
                "production_periods": ["shift"],
                "machines": [MACHINE],
            }
        )

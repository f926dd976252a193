"""Idle machines to standby (PROFIenergy): only through pauses at least the minimum pause that
save more than the restart costs; woken by the wake-up time before production or at once by a
start signal, that much earlier again as the gateway's write to the machine can lag (a cycle,
the write's bound, the read-back poll); never more starts per hour than allowed; never in
standby while the production plan needs the machine."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.energy.idle_standby import IdleStandby, IdleStandbyConfig, standby_saving_kwh
from controller.rules.timing import ControlTiming
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


# A 1 s cycle, a 1 s write bound and a 1 s poll of the PLC: the wake is sent 3 s early.
TIMING = ControlTiming(cycle_s=1.0, write_s=1.0, poll_s={"plc": 1.0})


def rule(
    periods: list[dict[str, Any]] | None = None,
    timing: ControlTiming = TIMING,
    **machine: Any,
) -> IdleStandby:
    return IdleStandby(
        IdleStandbyConfig.model_validate(
            {
                "name": "standby",
                "kind": "idle_standby",
                "schedule": {"timezone": "UTC", "default": "off", "periods": periods or SHIFT},
                "production_periods": ["production"],
                "machines": [dict(MACHINE, **machine)],
            }
        ),
        timing,
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


def test_woken_its_wake_up_time_and_the_write_lag_before_production() -> None:
    driven = Driven(rule(), start_ms=at(12))
    commands = run(driven, 30 * 60, state=2)
    # in standby from 12:02 until 12:24:57: five minutes (its wake-up) and 3 s (a cycle, the
    # write, the read-back poll) before the 12:30 start
    assert commands[25 * 60 - 5] is True
    assert commands[25 * 60 - 4] is False


# (clock, the machine's state code, the command proposed): a 5 s cycle, a 2 s write bound and a
# 5 s poll, a 68 s wake-up; the shift restarts at 12:30. The wake must be sent at 12:28:40
# (68 + 5 + 2 + 5 = 80 s ahead): sent at the first cycle 68 s or less ahead (12:28:55) it
# lands a cycle and a write late, and the machine is not ready at 12:30.
LAGGED_WAKE = [
    ("12:00:05", 2, False),  # idle: not yet for idle_for
    ("12:02:05", 2, True),  # idle for 2 min, a 28 min pause: standby
    ("12:28:35", 1, True),  # 85 s ahead: still in standby
    ("12:28:40", 1, False),  # 80 s ahead: woken
    ("12:28:55", 2, False),  # waking
    ("12:30:00", 3, False),  # producing: ready at the start
]


def test_step_table_wake_sent_ahead_by_the_wake_up_time_and_the_write_lag() -> None:
    timing = ControlTiming(cycle_s=5.0, write_s=2.0, poll_s={"plc": 5.0})
    driven = Driven(rule(timing=timing, wake_up_time="68s"), start_ms=at(12))
    rows = iter(LAGGED_WAKE)
    clock, state, expected = next(rows)
    seconds = 0
    while True:
        seconds += 5
        now = f"12:{seconds // 60:02d}:{seconds % 60:02d}"
        command = driven.step({"plc.press_state": state}, dt=5.0)["plc.press_standby"]
        if now == clock:
            assert command is expected, (clock, state)
            row = next(rows, None)
            if row is None:
                break
            clock, state, expected = row


def test_a_pause_too_short_for_the_wake_lead_is_not_used() -> None:
    # min_pause 7 min covers entering (1 min) and waking (5 min), but not a 130 s write lag:
    # the machine would be woken before it could settle in standby.
    slow = ControlTiming(cycle_s=5.0, write_s=120.0, poll_s={"plc": 5.0})
    periods = [period("06:00", "12:00"), period("12:08", "22:00")]
    standby = rule(periods, timing=slow, min_pause="7min", idle_for="5s")
    driven = Driven(standby, start_ms=at(12))
    assert not any(run(driven, 10, state=2))
    assert standby.detail()["press"]["reason"] == (
        "pause 470s too short to enter standby and be woken 430s ahead"
    )
    assert not any(run(driven, 8 * 60, state=2))


def test_a_machine_in_standby_when_production_is_due_is_woken_at_once() -> None:
    # The clock jumps into the shift (an NTP correction, a long stall): the plan needs the
    # machine now, whatever lead was left.
    standby = rule()
    driven = Driven(standby, start_ms=at(12))
    assert run(driven, 180, state=2)[-1] is True
    driven.start_ms += 40 * 60_000  # 12:43: inside the 12:30 period
    assert run(driven, 1, state=1) == [False]
    assert standby.detail()["press"]["reason"] == "wake-up before production"


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
    # (idle - standby) kW over the pause less entering (1 min), waking (5 min) and the 3 s
    # write lag, less the restart: 9 kW * (1650 - 60 - 300 - 3) s / 3600 s/h - 0.5 kWh
    assert press["saving_kwh"] == pytest.approx(2.7175, abs=0.001)
    assert press["wake_lead_s"] == 303
    # The decision, at 12:02:01 with 1679 s to 12:30: 9 kW * (1679 - 363) s / 3600 - 0.5 kWh
    assert press["reason"] == "standby: pause 1679s, saves 2.79 kWh"


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

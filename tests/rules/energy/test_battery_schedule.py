"""battery_schedule on step tables: the plan's kW for the step of now, corrected for the
forecast's error (the plan's peak held, no discharge into an unplanned export), cut to the
limits and the SoC window; nothing and its alarm without a valid plan."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from controller.rules.config import RuleConfig
from controller.rules.energy.battery_schedule import BatterySchedule
from controller.rules.kinds import build_rule
from controller.scheduler.board import AcceptedPlan, PlanBoard, PlanTarget
from tests.rules.energy.test_battery_rules import BATTERY, cycle
from tests.rules.plantloop import Driven

START_MS = Driven.__dataclass_fields__["start_ms"].default
STEP_MS = 900_000


def plan(*battery_kw: float, peak_kw: float = 150.0, export_kw: float = 0.0) -> AcceptedPlan:
    """A plan of 15-min steps from the Driven clock's start, one kW per step."""
    steps = tuple(
        PlanTarget(
            start_ms=START_MS + i * STEP_MS,
            end_ms=START_MS + (i + 1) * STEP_MS,
            battery_kw=kw,
            import_kw=100.0,
            export_kw=export_kw,
            soc_pct=50.0,
            peak_kw=peak_kw,
        )
        for i, kw in enumerate(battery_kw)
    )
    return AcceptedPlan(steps, created_ms=START_MS, valid_until_ms=START_MS + 3_600_000)


def rule(board: PlanBoard, **settings: Any) -> tuple[Driven, BatterySchedule]:
    config = TypeAdapter(RuleConfig).validate_python(
        {"name": "sched", "kind": "battery_schedule", **BATTERY, **settings}
    )
    built = build_rule(config, plans=board)
    assert isinstance(built, BatterySchedule)
    return Driven(built), built


# The plan's kW for now (peak 150 kW), meter kW, battery kW, SoC % -> rate % (+ of 100 kW
# discharge, - of 50 kW charge).
FOLLOWING = [
    (40.0, 120.0, 0.0, 60.0, 40.0),  # the plan's 40 kW
    (-25.0, 80.0, 0.0, 60.0, -50.0),  # charge 25 kW = 50 % of 50 kW
    (40.0, 200.0, 0.0, 60.0, 52.0),  # the load ran high: 200 - 148 = 52 kW keeps the peak
    (40.0, 150.0, 40.0, 60.0, 42.0),  # its own discharge counted: load 190 kW
    (40.0, 10.0, 0.0, 60.0, 10.0),  # PV ran high: no discharge beyond the site's draw
    (40.0, -20.0, 0.0, 60.0, 0.0),  # exporting already: no discharge
    (40.0, 120.0, 0.0, 20.0, 0.0),  # at the reserve: nothing
    (-25.0, 80.0, 0.0, 95.0, 0.0),  # full: no charge
    (80.0, 400.0, 0.0, 60.0, 100.0),  # the peak wants more than max_discharge_kw
]


@pytest.mark.parametrize(("plan_kw", "meter", "battery", "soc", "rate"), FOLLOWING)
def test_follows_the_plan_and_absorbs_the_forecast_error(
    plan_kw: float, meter: float, battery: float, soc: float, rate: float
) -> None:
    board = PlanBoard()
    board.accept(plan(plan_kw))
    driven, _ = rule(board)
    assert cycle(driven, meter, battery, soc) == rate


def test_a_planned_export_is_not_cut() -> None:
    board = PlanBoard()
    board.accept(plan(40.0, export_kw=30.0))
    driven, _ = rule(board)
    assert cycle(driven, 10.0, 0.0, 60.0) == 40.0  # 10 kW drawn + 30 kW export planned


def test_each_step_of_the_plan_in_its_time() -> None:
    board = PlanBoard()
    board.accept(plan(10.0, 20.0, -30.0))
    driven, built = rule(board)
    assert cycle(driven, 100.0, 0.0, 60.0) == 10.0
    driven.step({"meter.power_kw": 100.0, "bess.power_kw": 0.0, "bess.soc": 60.0}, dt=899.0)
    assert cycle(driven, 100.0, 0.0, 60.0) == 20.0
    driven.step({"meter.power_kw": 100.0, "bess.power_kw": 0.0, "bess.soc": 60.0}, dt=899.0)
    assert cycle(driven, 100.0, 0.0, 60.0) == -60.0
    assert built.detail()["plan_kw"] == -30.0


def test_waiting_for_the_first_plan_is_no_fault() -> None:
    board = PlanBoard()
    driven, built = rule(board)
    assert cycle(driven, 200.0, 0.0, 60.0) is None
    [condition] = built.alarm_conditions()
    assert not condition.active
    assert built.detail()["state"] == "waiting_for_plan"


def test_without_a_plan_it_proposes_nothing_and_raises_its_alarm() -> None:
    board = PlanBoard()
    board.withdraw("ForecastError: no plan yet (no forecast)")
    driven, built = rule(board)
    assert cycle(driven, 200.0, 0.0, 60.0) is None
    [condition] = built.alarm_conditions()
    assert condition.name == "sched.no_plan"
    assert condition.active
    assert condition.indicates == "control"
    assert "no plan yet" in condition.message
    board.accept(plan(10.0))
    assert cycle(driven, 100.0, 0.0, 60.0) == 10.0
    [condition] = built.alarm_conditions()
    assert not condition.active


def test_a_withdrawn_plan_says_why() -> None:
    board = PlanBoard()
    board.accept(plan(10.0))
    driven, built = rule(board)
    assert cycle(driven, 100.0, 0.0, 60.0) == 10.0
    board.withdraw("timeout: the solver did not answer within 20 s: killed")
    assert cycle(driven, 100.0, 0.0, 60.0) is None
    [condition] = built.alarm_conditions()
    assert condition.active
    assert "the solver did not answer" in condition.message
    assert built.detail()["state"] == "no_plan"


def test_the_alarm_message_changes_with_its_cause_not_with_its_figures() -> None:
    """Retries that fail for one cause in words that differ only in a figure keep the message
    of the raise (no new publication); another cause is a new message."""
    board = PlanBoard()
    board.withdraw("StaleInputError: site-meter.power_kw: read 65 s ago")
    driven, built = rule(board)
    assert cycle(driven, 100.0, 0.0, 60.0) is None
    first = built.alarm_conditions()[0].message
    assert "read 65 s ago" in first
    board.withdraw("StaleInputError: site-meter.power_kw: read 965.5 s ago")
    assert cycle(driven, 100.0, 0.0, 60.0) is None
    assert built.alarm_conditions()[0].message == first
    board.withdraw("StaleInputError: site-meter.power_kw: quality bad")
    assert cycle(driven, 100.0, 0.0, 60.0) is None
    assert "quality bad" in built.alarm_conditions()[0].message
    board.withdraw("timeout: the solver did not answer within 20 s: killed")
    assert cycle(driven, 100.0, 0.0, 60.0) is None
    assert "did not answer" in built.alarm_conditions()[0].message


def test_a_plan_past_its_age_is_not_followed() -> None:
    board = PlanBoard()
    board.accept(plan(*([10.0] * 8)))  # valid for one hour, eight steps long
    driven, _ = rule(board)
    assert cycle(driven, 100.0, 0.0, 60.0) == 10.0
    driven.step({"meter.power_kw": 100.0, "bess.power_kw": 0.0, "bess.soc": 60.0}, dt=3600.0)
    assert cycle(driven, 100.0, 0.0, 60.0) is None


def test_with_a_window_the_plan_s_peak_is_held_on_the_window_s_average() -> None:
    """The plan's peak is a 15-min average: a minute above it in a window that stays below it
    spends nothing more (without `window`, every instant is held: 200 - 148 = 52 kW)."""
    board = PlanBoard()
    board.accept(plan(0.0, peak_kw=150.0))
    driven, built = rule(board, window="15min")
    for _ in range(14 * 6):  # 14 min at 100 kW
        assert cycle(driven, 100.0, 0.0, 60.0, dt=10.0) == 0.0
    # 200 kW for the last minute: the window's average (14 x 100 + 1 x 200) / 15 = 106.7 kW.
    assert cycle(driven, 200.0, 0.0, 60.0, dt=10.0) == 0.0
    assert built.detail()["state"] == "following"
    instant, _ = rule(board)
    assert cycle(instant, 200.0, 0.0, 60.0) == 52.0
    # A window whose average would pass the peak: the rest of it shaves the difference.
    board.accept(plan(0.0, 0.0, peak_kw=150.0))
    for _ in range(6 * 6):  # past the window's end, then 5 min at 100 kW into the next
        cycle(driven, 100.0, 0.0, 60.0, dt=10.0)
    rate = cycle(driven, 220.0, 0.0, 60.0, dt=10.0)
    assert rate is not None
    assert 40.0 < rate < 60.0
    assert built.detail()["state"] == "holding_peak"


def _window_of(
    board: PlanBoard, load: float, **settings: Any
) -> tuple[list[float], BatterySchedule]:
    """One 15-min window, 5-s cycles, of a battery that gives what it is told (the rate of a
    cycle is its power in the next): the kW it gave in each cycle."""
    driven, built = rule(board, window="15min", **settings)
    given: list[float] = []
    battery = 0.0
    for _ in range(179):  # 5 s .. 895 s: the plan's first step
        rate = cycle(driven, load - battery, battery, 60.0, dt=5.0)
        assert rate is not None
        battery = rate if rate >= 0 else rate / 2  # + % of 100 kW, - % of 50 kW
        given.append(battery)
    return given, built


def test_below_min_run_kw_the_plan_s_kw_is_given_in_pulses_of_the_same_window_average() -> None:
    """A 10 kW step on a 100 kW inverter (72 % efficient there) is given at 50 kW for a fifth
    of the window (94 %): the same 2.5 kWh in the window, the inverter off the rest of it."""
    board = PlanBoard()
    board.accept(plan(10.0, 10.0, peak_kw=250.0))
    given, _ = _window_of(board, 120.0, min_run_kw=50)
    assert sum(given) / len(given) == pytest.approx(10.0, abs=0.6)
    assert {round(kw) for kw in given} == {0, 50}
    assert given[0] == 50.0  # given first: the window's rest holds whatever comes
    steady, _ = _window_of(board, 120.0)
    assert set(steady) == {10.0}  # without min_run_kw: 10 kW all along


def test_a_pulsed_charge_takes_no_more_from_the_grid_than_its_need() -> None:
    """Charging 10 kW with 30 kW of PV to spare: the pulse is the surplus (30 kW), never the
    grid's 40; with the site importing, the full 40 kW pulse."""
    board = PlanBoard()
    board.accept(plan(-10.0, -10.0, peak_kw=250.0, export_kw=30.0))
    given, _ = _window_of(board, -30.0, min_run_kw=40)
    assert min(given) == -30.0
    assert sum(given) / len(given) == pytest.approx(-10.0, abs=0.6)
    importing, _ = _window_of(board, 60.0, min_run_kw=40)
    assert min(importing) == -40.0
    assert sum(importing) / len(importing) == pytest.approx(-10.0, abs=0.6)


def test_min_run_kw_needs_a_window_and_fits_the_battery() -> None:
    with pytest.raises(ValueError, match="min_run_kw needs window"):
        rule(PlanBoard(), min_run_kw=50)
    with pytest.raises(ValueError, match="above the battery's power limits"):
        rule(PlanBoard(), window="15min", min_run_kw=60)  # max_charge_kw is 50


def _window_with_loads(
    board: PlanBoard, loads: list[float], **settings: Any
) -> tuple[list[float], list[float]]:
    """`_window_of` with the site's load (battery idle) of each 5-s cycle: the battery's kW and
    the meter's."""
    driven, _ = rule(board, window="15min", **settings)
    given: list[float] = []
    meters: list[float] = []
    battery = 0.0
    for load in loads:
        meters.append(load - battery)
        rate = cycle(driven, load - battery, battery, 60.0, dt=5.0)
        assert rate is not None
        battery = rate if rate >= 0 else rate / 2
        given.append(battery)
    return given, meters


def test_in_pulses_the_peak_is_held_at_the_window_s_end_not_on_each_early_minute() -> None:
    """A load 30 kW above the plan's peak for the window's first two minutes and under it after:
    the window's average never passes the peak, and the battery gives nothing for it (held on
    every minute as it came, the battery gave about 1 kWh for nothing). A load above the peak
    all window long is held all the same, at min_run_kw or more, late in the window."""
    board = PlanBoard()
    board.accept(plan(0.0, 0.0, peak_kw=150.0))  # ceiling 148 kW
    early = [178.0] * 24 + [130.0] * 155
    pulsed, _ = _window_with_loads(board, early, min_run_kw=50)
    assert set(pulsed) == {0.0}
    spread, _ = _window_with_loads(board, early)
    assert sum(spread) / len(spread) > 2.0  # the same window without min_run_kw
    steady = [163.0] * 179  # 15 kW above the ceiling
    held, meters = _window_with_loads(board, steady, min_run_kw=50)
    assert min(kw for kw in held if kw > 0) >= 50.0
    assert held[:100] == [0.0] * 100  # nothing spent before the end showed the need
    assert sum(meters) / len(meters) <= 148.5


def test_a_window_is_never_let_head_above_hold_at_once_above_kw() -> None:
    """Held last, a window 32 kW above the plan's peak would run 5 min at 180 kW first, where a
    load-shedding rule triggering on a window heading above 175 kW sheds a load: with
    hold_at_once_above_kw 172 the battery gives from the window's first cycle what keeps the
    window under 172 kW, and the rest of the way to the plan's peak last."""
    board = PlanBoard()
    board.accept(plan(0.0, 0.0, peak_kw=150.0))  # ceiling 148 kW
    steady = [180.0] * 179
    _, meters_last = _window_with_loads(board, steady, min_run_kw=50)
    assert max(_heading(meters_last)[:60]) == 180.0  # 5 min heading for 180 kW
    at_once, meters = _window_with_loads(board, steady, min_run_kw=50, hold_at_once_above_kw=172)
    assert at_once[0] >= 50.0
    assert max(_heading(meters)[1:]) <= 172.0  # from the battery's first answer on
    assert sum(meters) / len(meters) <= 148.5
    with pytest.raises(ValueError, match="hold_at_once_above_kw is for min_run_kw"):
        rule(PlanBoard(), window="15min", hold_at_once_above_kw=172)


def _heading(meters: list[float]) -> list[float]:
    """Where the window heads after each cycle: the import so far, the present for the rest
    (5-s cycles in a 180-cycle window)."""
    return [(sum(meters[: i + 1]) + meters[i] * (179 - i)) / 180 for i in range(len(meters))]


def test_a_step_s_kw_is_the_step_s_average_when_the_window_is_longer_than_the_step() -> None:
    """A utility billing 30-min windows, the plan in 15-min steps (bench/scheduler_cells/
    big-pv-export.yaml): +40 kW then -20 kW in one window, min_run_kw 50. Each step's kW is the
    battery's average over that step. Before, the rule took the first step's 40 kW for the
    whole window's average (50 kW all through the step: 12.5 kWh, not 10), then sized the
    second step on the window's average so far and charged (-20 - 25) x 2 = -90 kW, cut to the
    50 kW limit: 7.5 kWh more from the grid than the plan's step (in the co-simulated day:
    -171 kW for a plan's -48.5 at 07:45, the meter at 291 kW)."""
    board = PlanBoard()
    board.accept(plan(40.0, -20.0, peak_kw=400.0))
    driven, _ = rule(board, window="30min", min_run_kw=50)
    given: list[float] = []
    battery = 0.0
    for _ in range(359):  # 5 s .. 1795 s: the window's two steps
        rate = cycle(driven, 120.0 - battery, battery, 60.0, dt=5.0)
        assert rate is not None
        battery = rate if rate >= 0 else rate / 2  # + % of 100 kW, - % of 50 kW
        given.append(battery)
    first, second = given[:179], given[180:]
    assert sum(first) / len(first) == pytest.approx(40.0, abs=2.0)
    assert sum(second) / len(second) == pytest.approx(-20.0, abs=2.0)

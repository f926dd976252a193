"""Schedule: time-of-use and shift periods by weekday and local time, across daylight saving."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.rules.schedule import Schedule, ScheduleConfig, UnknownPeriodError

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # daylight saving shifts by 30 minutes
    "Asia/Kathmandu",  # UTC+05:45
    "America/Santiago",  # changes at midnight
    "Pacific/Chatham",  # UTC+12:45 / +13:45
]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()) * 1000


def schedule(**config: Any) -> Schedule:
    return Schedule(ScheduleConfig.model_validate(config))


WORKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def tariff(**extra: Any) -> Schedule:
    return schedule(
        timezone="Europe/Berlin",
        default="offpeak",
        periods=[
            {"name": "peak", "days": WORKDAYS, "start": "08:00", "end": "20:00"},
            {"name": "shoulder", "days": WORKDAYS, "start": "20:00", "end": "22:00"},
        ],
        **extra,
    )


def shifts() -> Schedule:
    return schedule(
        timezone="Europe/Berlin",
        default="idle",
        periods=[
            {"name": "early", "days": WORKDAYS, "start": "06:00", "end": "14:00"},
            {"name": "late", "days": WORKDAYS, "start": "14:00", "end": "22:00"},
            {"name": "night", "days": ["sun", *WORKDAYS[:4]], "start": "22:00", "end": "06:00"},
        ],
    )


# --- known answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "period"),
    [
        ((2026, 3, 2, 7, 59), "offpeak"),  # Monday
        ((2026, 3, 2, 8, 0), "peak"),
        ((2026, 3, 2, 19, 59), "peak"),
        ((2026, 3, 2, 20, 0), "shoulder"),
        ((2026, 3, 2, 22, 0), "offpeak"),
        ((2026, 3, 7, 12, 0), "offpeak"),  # Saturday
    ],
)
def test_tariff_period_by_weekday_and_local_time(
    when: tuple[int, int, int, int, int], period: str
) -> None:
    assert tariff().period_at(local("Europe/Berlin", *when)) == period


def test_night_shift_runs_past_midnight_into_the_next_day() -> None:
    assert shifts().period_at(local("Europe/Berlin", 2026, 3, 3, 3, 0)) == "night"


def test_sunday_night_shift_runs_into_monday() -> None:
    assert shifts().period_at(local("Europe/Berlin", 2026, 3, 2, 5, 59)) == "night"


def test_friday_after_the_late_shift_is_idle() -> None:
    assert shifts().period_at(local("Europe/Berlin", 2026, 3, 7, 3, 0)) == "idle"


def test_end_of_day_is_written_24_00() -> None:
    whole_day = schedule(
        timezone="UTC",
        default="off",
        periods=[{"name": "on", "days": ["mon"], "start": "00:00", "end": "24:00"}],
    )
    assert whole_day.period_at(utc(2026, 3, 2, 23, 59, 59)) == "on"
    assert whole_day.period_at(utc(2026, 3, 3)) == "off"


def test_next_change_gives_the_next_period_and_its_start() -> None:
    change = tariff().next_change(local("Europe/Berlin", 2026, 3, 2, 12, 0))
    assert change is not None
    assert (change.at_ms, change.period) == (local("Europe/Berlin", 2026, 3, 2, 20), "shoulder")


def test_next_start_for_pre_wake_skips_the_weekend() -> None:
    friday_evening = local("Europe/Berlin", 2026, 3, 6, 21, 0)
    assert tariff().next_start(friday_evening, "peak") == local("Europe/Berlin", 2026, 3, 9, 8)


def test_next_start_of_the_active_period_is_its_next_stretch() -> None:
    monday_noon = local("Europe/Berlin", 2026, 3, 2, 12, 0)
    assert tariff().next_start(monday_noon, "peak") == local("Europe/Berlin", 2026, 3, 3, 8)


def test_next_start_of_an_unknown_period_is_an_error() -> None:
    with pytest.raises(UnknownPeriodError, match="no period 'superpeak'"):
        tariff().next_start(utc(2026, 3, 2), "superpeak")


def test_schedule_with_one_period_never_changes() -> None:
    assert schedule(timezone="UTC", default="flat").next_change(utc(2026, 3, 2)) is None


def test_holiday_runs_the_sunday_rules() -> None:
    easter_monday = date(2026, 4, 6)
    schedule_ = tariff(holidays=[easter_monday])
    assert schedule_.period_at(local("Europe/Berlin", 2026, 4, 6, 12)) == "offpeak"
    assert schedule_.period_at(local("Europe/Berlin", 2026, 4, 7, 12)) == "peak"


def test_holiday_night_shift_does_not_double_book_the_next_morning() -> None:
    # Sunday's night shift also runs on a Monday holiday; Tuesday's own early shift wins.
    config: dict[str, Any] = {
        "timezone": "UTC",
        "default": "idle",
        "holidays": ["2026-03-02"],
        "periods": [
            {"name": "night", "days": ["sun"], "start": "22:00", "end": "07:00"},
            {"name": "early", "days": ["tue"], "start": "05:00", "end": "13:00"},
        ],
    }
    schedule_ = schedule(**config)
    assert schedule_.period_at(utc(2026, 3, 3, 4)) == "night"
    assert schedule_.period_at(utc(2026, 3, 3, 5)) == "early"


# --- daylight saving (Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00) ----


def test_period_starts_at_the_same_local_time_across_spring_forward() -> None:
    before, after = (
        tariff().next_start(utc(2026, 3, 27), "peak"),
        tariff().next_start(utc(2026, 3, 30), "peak"),
    )
    assert before == utc(2026, 3, 27, 7)  # 08:00 CET
    assert after == utc(2026, 3, 30, 6)  # 08:00 CEST


def test_period_starting_in_the_skipped_hour_starts_when_the_clock_jumps() -> None:
    early = schedule(
        timezone="Europe/Berlin",
        default="off",
        periods=[{"name": "early", "days": ["sun"], "start": "02:30", "end": "04:00"}],
    )
    change = early.next_change(utc(2026, 3, 28, 23))
    assert change is not None
    assert (change.at_ms, change.period) == (utc(2026, 3, 29, 1), "early")


def test_repeated_hour_belongs_to_its_period_both_times() -> None:
    x = schedule(
        timezone="Europe/Berlin",
        default="off",
        periods=[{"name": "x", "days": ["sun"], "start": "02:00", "end": "02:30"}],
    )
    assert [x.period_at(utc(2026, 10, 25, h, m)) for h, m in ((0, 15), (0, 45), (1, 15))] == [
        "x",
        "off",
        "x",
    ]
    change = x.next_change(utc(2026, 10, 25, 0, 45))
    assert change is not None
    assert change.at_ms == utc(2026, 10, 25, 1)


def test_clock_falling_back_into_a_period_starts_it_at_the_jump() -> None:
    # 02:59 CEST is after the period; the clock then reads 02:00 CET, inside it.
    late = schedule(
        timezone="Europe/Berlin",
        default="off",
        periods=[{"name": "late", "days": ["sun"], "start": "01:30", "end": "02:30"}],
    )
    change = late.next_change(utc(2026, 10, 25, 0, 45))
    assert change is not None
    assert (change.at_ms, change.period) == (utc(2026, 10, 25, 1), "late")


# --- config errors ----------------------------------------------------------------------------


def test_overlapping_periods_are_refused_with_both_named() -> None:
    with pytest.raises(ValidationError, match=r"periods\[0\] \(day on wed\) and periods\[1\]"):
        ScheduleConfig.model_validate(
            {
                "timezone": "UTC",
                "default": "off",
                "periods": [
                    {"name": "day", "days": ["wed"], "start": "08:00", "end": "18:00"},
                    {"name": "peak", "days": ["wed"], "start": "17:00", "end": "19:00"},
                ],
            }
        )


def test_night_shift_overlapping_the_next_morning_is_refused() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        ScheduleConfig.model_validate(
            {
                "timezone": "UTC",
                "default": "off",
                "periods": [
                    {"name": "night", "days": ["sun"], "start": "22:00", "end": "06:00"},
                    {"name": "early", "days": ["mon"], "start": "05:00", "end": "13:00"},
                ],
            }
        )


def test_unquoted_yaml_time_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match=r"write times of day in quotes \('22:00'\)"):
        ScheduleConfig.model_validate(
            {
                "timezone": "UTC",
                "default": "off",
                "periods": [{"name": "x", "days": ["mon"], "start": 1320, "end": "23:00"}],
            }
        )


@pytest.mark.parametrize("bad", ["25:00", "24:30", "8h", "12:60"])
def test_impossible_time_of_day_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="time of day"):
        ScheduleConfig.model_validate(
            {
                "timezone": "UTC",
                "default": "off",
                "periods": [{"name": "x", "days": ["mon"], "start": bad, "end": "23:00"}],
            }
        )


def test_equal_start_and_end_is_refused() -> None:
    with pytest.raises(ValidationError, match="start and end are equal"):
        ScheduleConfig.model_validate(
            {
                "timezone": "UTC",
                "default": "off",
                "periods": [{"name": "x", "days": ["mon"], "start": "08:00", "end": "08:00"}],
            }
        )


# --- properties -------------------------------------------------------------------------------

QUARTERS = 96


@st.composite
def rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for index in range(draw(st.integers(min_value=0, max_value=4))):
        start = draw(st.integers(min_value=0, max_value=QUARTERS - 1))
        # Up to a whole day long; past midnight the stretch runs into the next day.
        end = start + draw(st.integers(min_value=1, max_value=QUARTERS - (start > 0)))
        if end > QUARTERS or (end == QUARTERS and start > 0 and draw(st.booleans())):
            end -= QUARTERS  # midnight written '00:00' as often as '24:00'
        out.append(
            {
                "name": f"p{index}",
                "days": draw(
                    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True)
                ),
                "start": f"{start // 4:02d}:{start % 4 * 15:02d}",
                "end": f"{end // 4:02d}:{end % 4 * 15:02d}",
            }
        )
    return out


def _transitions(zone: str) -> list[int]:
    """Epoch seconds of the zone's offset changes in 2026."""
    tz = ZoneInfo(zone)
    out = []
    t = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    offset = datetime.fromtimestamp(t, tz).utcoffset()
    for _ in range(366 * 48):
        t += 1800
        now = datetime.fromtimestamp(t, tz).utcoffset()
        if now != offset:
            out.append(t)
            offset = now
    return out


TRANSITIONS = {zone: _transitions(zone) for zone in ZONES}


@st.composite
def instants(draw: st.DrawFn, zone: str) -> int:
    """Epoch ms in 2026, often within a day of a daylight-saving change."""
    year_start = utc(2026, 1, 1)
    if TRANSITIONS[zone] and draw(st.booleans()):
        near = draw(st.sampled_from(TRANSITIONS[zone])) * 1000
        return near + draw(st.integers(min_value=-86_400_000, max_value=86_400_000))
    return year_start + draw(st.integers(min_value=0, max_value=365 * 86_400_000))


def covering(config: dict[str, Any], t_ms: int) -> list[str]:
    """Every rule stretch covering `t_ms`, worked out independently of `Schedule`."""
    moment = datetime.fromtimestamp(t_ms // 1000, ZoneInfo(config["timezone"]))
    second = moment.hour * 3600 + moment.minute * 60 + moment.second + t_ms % 1000 / 1000
    today = WEEKDAYS[moment.weekday()]
    yesterday = WEEKDAYS[(moment.date() - timedelta(days=1)).weekday()]
    out = []
    for rule in config["periods"]:
        start, end = (int(rule[k][:2]) * 3600 + int(rule[k][3:]) * 60 for k in ("start", "end"))
        crosses = end < start
        if today in rule["days"] and start <= second and (crosses or second < end):
            out.append(rule["name"])
        if yesterday in rule["days"] and crosses and second < end:
            out.append(rule["name"])
    return out


def valid(config: dict[str, Any]) -> bool:
    try:
        ScheduleConfig.model_validate(config)
    except ValidationError:
        return False
    return True


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), zone=st.sampled_from(ZONES), periods=rules())
def test_every_instant_has_exactly_one_period(
    data: st.DataObject, zone: str, periods: list[dict[str, Any]]
) -> None:
    config = {"timezone": zone, "default": "default", "periods": periods}
    assume(valid(config))
    schedule_ = schedule(**config)
    for _ in range(20):
        t_ms = data.draw(instants(zone))
        names = covering(config, t_ms)
        assert len(names) <= 1
        assert schedule_.period_at(t_ms) == (names[0] if names else "default")


@given(periods=rules())
def test_overlap_check_agrees_with_a_minute_by_minute_week(periods: list[dict[str, Any]]) -> None:
    config = {"timezone": "UTC", "default": "default", "periods": periods}
    monday = utc(2026, 3, 2)
    # Boundaries are on quarter hours, so the middle of each quarter stands for all of it.
    double_booked = any(
        len(covering(config, monday + (q * 15 + 7) * 60_000)) > 1 for q in range(7 * QUARTERS)
    )
    assert valid(config) is not double_booked


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), zone=st.sampled_from(ZONES), periods=rules())
def test_next_change_is_the_first_instant_the_period_differs(
    data: st.DataObject, zone: str, periods: list[dict[str, Any]]
) -> None:
    config = {"timezone": zone, "default": "default", "periods": periods}
    assume(valid(config))
    schedule_ = schedule(**config)
    t_ms = data.draw(instants(zone))
    current = schedule_.period_at(t_ms)
    change = schedule_.next_change(t_ms)
    if change is None:
        assert not periods or all(
            schedule_.period_at(t_ms + h * 3_600_000) == current for h in range(24 * 8)
        )
        return
    assert change.at_ms > t_ms
    assert schedule_.period_at(change.at_ms) == change.period != current
    span = change.at_ms - t_ms
    probes = [t_ms + span * k // 40 for k in range(40)] + [change.at_ms - 1]
    probes += [
        data.draw(st.integers(min_value=t_ms, max_value=change.at_ms - 1)) for _ in range(10)
    ]
    assert all(schedule_.period_at(p) == current for p in probes)


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), zone=st.sampled_from(ZONES), periods=rules())
def test_next_start_is_an_instant_the_period_begins(
    data: st.DataObject, zone: str, periods: list[dict[str, Any]]
) -> None:
    config = {"timezone": zone, "default": "default", "periods": periods}
    assume(valid(config))
    schedule_ = schedule(**config)
    t_ms = data.draw(instants(zone))
    period = data.draw(st.sampled_from(sorted(ScheduleConfig.model_validate(config).period_names)))
    start = schedule_.next_start(t_ms, period)
    if start is None:
        return
    assert start > t_ms
    assert schedule_.period_at(start) == period
    assert schedule_.period_at(start - 1) != period

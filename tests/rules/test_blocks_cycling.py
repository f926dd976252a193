"""Minimum on/off times and starts per hour: deferral known answers and never-too-early property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.rules.blocks import TimeWentBackwardsError
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes


def block(state: bool = False, since: float = 0.0, **config: object) -> MinOnOffTimes:
    return MinOnOffTimes(MinOnOffConfig.model_validate(config), state=state, since=since)


def test_switch_on_is_deferred_until_min_off_has_elapsed() -> None:
    cycling = block(min_off="5min")
    decision = cycling.request(120.0, want=True)
    assert (decision.state, decision.deferred_until) == (False, 300.0)
    assert decision.reason == "min_off 5min"


def test_switch_on_is_granted_once_min_off_has_elapsed() -> None:
    cycling = block(min_off="5min")
    cycling.request(120.0, want=True)
    decision = cycling.request(300.0, want=True)
    assert decision.state is True
    assert not decision.deferred


def test_switch_off_is_deferred_until_min_on_has_elapsed() -> None:
    cycling = block(state=True, since=100.0, min_on="10min")
    decision = cycling.request(200.0, want=False)
    assert (decision.state, decision.deferred_until) == (True, 700.0)


def test_request_for_present_state_is_never_deferred() -> None:
    cycling = block(state=True, since=0.0, min_on="1h")
    decision = cycling.request(1.0, want=True)
    assert decision.state is True
    assert not decision.deferred


def test_withdrawn_request_leaves_the_state_alone() -> None:
    cycling = block(min_off="5min")
    cycling.request(10.0, want=True)
    assert cycling.request(400.0, want=False).state is False


def test_max_starts_per_hour_defers_the_next_start() -> None:
    cycling = block(max_starts_per_hour=2)
    for start in (0.0, 600.0):
        cycling.request(start + 1, want=True)
        cycling.request(start + 2, want=False)
    decision = cycling.request(1200.0, want=True)
    assert (decision.state, decision.deferred_until) == (False, 3601.0)
    assert decision.reason == "max_starts_per_hour 2"
    assert cycling.request(3601.0, want=True).state is True


def test_later_of_min_off_and_starts_limit_wins() -> None:
    cycling = block(since=-10_000.0, max_starts_per_hour=1, min_off="2h")
    cycling.request(1.0, want=True)
    cycling.request(2.0, want=False)
    decision = cycling.request(100.0, want=True)
    assert decision.deferred_until == 2.0 + 7200.0
    assert decision.reason == "min_off 120min"


def test_observed_switch_restarts_the_minimum_time() -> None:
    cycling = block(min_on="10min", min_off="10min")
    cycling.observe(1000.0, state=True)
    assert cycling.request(1300.0, want=False).deferred_until == 1600.0


def test_observed_start_counts_towards_the_hourly_limit() -> None:
    cycling = block(max_starts_per_hour=1)
    cycling.observe(10.0, state=True)
    cycling.observe(20.0, state=False)
    assert cycling.request(30.0, want=True).deferred_until == 3610.0


def test_starts_older_than_an_hour_are_forgotten() -> None:
    cycling = block(max_starts_per_hour=3)
    for start in (0.0, 100.0):
        cycling.request(start, want=True)
        cycling.request(start + 1, want=False)
    assert cycling.starts_in_last_hour(3650.0) == 1


def test_min_on_off_refuses_time_going_backwards() -> None:
    cycling = block()
    cycling.request(10.0, want=True)
    with pytest.raises(TimeWentBackwardsError):
        cycling.request(5.0, want=False)


@given(
    min_on=st.integers(min_value=0, max_value=900),
    min_off=st.integers(min_value=0, max_value=900),
    max_starts=st.integers(min_value=1, max_value=6),
    requests=st.lists(
        st.tuples(st.floats(min_value=0, max_value=600), st.booleans()), max_size=200
    ),
)
def test_never_switches_before_its_time(
    min_on: int, min_off: int, max_starts: int, requests: list[tuple[float, bool]]
) -> None:
    cycling = block(min_on=f"{min_on}s", min_off=f"{min_off}s", max_starts_per_hour=max_starts)
    state, since, starts = False, 0.0, []
    now = 0.0
    for dt, want in requests:
        now += dt
        decision = cycling.request(now, want)
        if decision.state != state:
            assert now >= since + (min_on if state else min_off)
            if decision.state:
                starts.append(now)
            state, since = decision.state, now
        elif want != state:
            assert decision.deferred_until is not None
            assert decision.deferred_until > now
    for index, start in enumerate(starts):
        # No hour-long window [start, start + 1 h) holds more than max_starts starts.
        assert sum(1 for s in starts[index:] if s < start + 3600) <= max_starts

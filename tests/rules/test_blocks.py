"""Hysteresis, deadband and rate limiter: known answers and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.rules.blocks import (
    Deadband,
    DeadbandConfig,
    Hysteresis,
    HysteresisConfig,
    InvalidInputError,
    NoSampleError,
    RateLimiter,
    RateLimiterConfig,
    TimeWentBackwardsError,
)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


# --- hysteresis -------------------------------------------------------------------------------


def test_hysteresis_direct_switches_on_at_high_and_off_at_low() -> None:
    block = Hysteresis(HysteresisConfig(high=30, low=25))
    outputs = [block.update(v) for v in (20, 28, 30, 28, 26, 25, 28)]
    assert outputs == [False, False, True, True, True, False, False]


def test_hysteresis_reverse_switches_on_at_low_and_off_at_high() -> None:
    block = Hysteresis(HysteresisConfig(high=60, low=40, action="reverse"))
    outputs = [block.update(v) for v in (50, 40, 55, 60, 45)]
    assert outputs == [False, True, True, False, False]


def test_hysteresis_holds_initial_state_inside_the_band() -> None:
    block = Hysteresis(HysteresisConfig(high=30, low=25, initial=True))
    assert block.update(27) is True


def test_hysteresis_rejects_low_not_below_high() -> None:
    with pytest.raises(ValidationError, match="must be below high"):
        HysteresisConfig(high=25, low=25)


def test_hysteresis_rejects_nan() -> None:
    block = Hysteresis(HysteresisConfig(high=30, low=25))
    with pytest.raises(InvalidInputError, match="finite"):
        block.update(math.nan)


@given(st.lists(values, min_size=1, max_size=50))
def test_hysteresis_only_switches_at_its_thresholds(inputs: list[float]) -> None:
    block = Hysteresis(HysteresisConfig(high=10, low=-10))
    previous = block.output
    for value in inputs:
        output = block.update(value)
        if output != previous:
            assert value >= 10 if output else value <= -10
        previous = output


# --- deadband ---------------------------------------------------------------------------------


def test_deadband_holds_until_input_moves_more_than_the_band() -> None:
    block = Deadband(DeadbandConfig(band=0.5))
    outputs = [block.update(v) for v in (20.0, 20.3, 20.5, 20.51, 20.2, 19.9)]
    assert outputs == [20.0, 20.0, 20.0, 20.51, 20.51, 19.9]


def test_deadband_has_no_output_before_input() -> None:
    with pytest.raises(NoSampleError):
        _ = Deadband(DeadbandConfig(band=1)).output


@given(st.lists(values, min_size=1, max_size=50))
def test_deadband_output_never_further_than_band_from_input(inputs: list[float]) -> None:
    block = Deadband(DeadbandConfig(band=2.0))
    for value in inputs:
        assert abs(block.update(value) - value) <= 2.0


# --- rate limiter -----------------------------------------------------------------------------


def test_rate_limiter_first_update_passes_target_through() -> None:
    block = RateLimiter(RateLimiterConfig(max_rate_per_s=1.0))
    assert block.update(0.0, 50.0) == 50.0


def test_rate_limiter_ramps_at_max_rate() -> None:
    block = RateLimiter(RateLimiterConfig(max_rate_per_s=2.0))
    block.reset(0.0, 10.0)
    assert [block.update(t, 100.0) for t in (1.0, 2.0, 4.5)] == [12.0, 14.0, 19.0]


def test_rate_limiter_limits_step_per_update_after_a_long_pause() -> None:
    block = RateLimiter(RateLimiterConfig(max_rate_per_s=2.0, max_step=5.0))
    block.reset(0.0, 10.0)
    assert block.update(600.0, 100.0) == 15.0


def test_rate_limiter_reaches_a_close_target_exactly() -> None:
    block = RateLimiter(RateLimiterConfig(max_step=5.0))
    block.reset(0.0, 0.1)
    assert block.update(1.0, 0.3) == 0.3


def test_rate_limiter_does_not_move_at_dt_zero() -> None:
    block = RateLimiter(RateLimiterConfig(max_rate_per_s=1.0))
    block.reset(5.0, 10.0)
    assert block.update(5.0, 20.0) == 10.0


def test_rate_limiter_up_only_lets_drops_through() -> None:
    block = RateLimiter(RateLimiterConfig(max_rate_per_s=1.0, limit="up"))
    block.reset(0.0, 50.0)
    assert block.update(1.0, 0.0) == 0.0
    assert block.update(2.0, 50.0) == 1.0


def test_rate_limiter_down_only_lets_rises_through() -> None:
    block = RateLimiter(RateLimiterConfig(max_step=1.0, limit="down"))
    block.reset(0.0, 50.0)
    assert block.update(1.0, 80.0) == 80.0
    assert block.update(2.0, 0.0) == 79.0


def test_rate_limiter_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="needs max_rate_per_s, max_step or both"):
        RateLimiterConfig()


def test_rate_limiter_refuses_time_going_backwards() -> None:
    block = RateLimiter(RateLimiterConfig(max_step=1.0))
    block.update(10.0, 0.0)
    with pytest.raises(TimeWentBackwardsError):
        block.update(9.0, 1.0)


@given(
    rate=st.floats(min_value=0.01, max_value=100),
    step=st.floats(min_value=0.01, max_value=100),
    moves=st.lists(
        st.tuples(st.floats(min_value=0, max_value=1000), values), min_size=1, max_size=60
    ),
)
def test_rate_limiter_never_exceeds_rate_or_step(
    rate: float, step: float, moves: list[tuple[float, float]]
) -> None:
    block = RateLimiter(RateLimiterConfig(max_rate_per_s=rate, max_step=step))
    now = 0.0
    block.reset(now, 0.0)
    for dt, target in moves:
        before, then = block.output, now
        now += dt
        after = block.update(now, target)
        # A few ulps of slack: the output is a float sum of the previous output and the step.
        slack = 1e-9 * max(1.0, abs(before))
        assert abs(after - before) <= min(step, rate * (now - then)) + slack
        assert min(before, target) <= after <= max(before, target)

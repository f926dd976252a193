"""Time-weighted moving average: known answers with irregular spacing, and the min/max property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.rules.average import MovingAverage, MovingAverageConfig
from controller.rules.blocks import NoSampleError, TimeWentBackwardsError


def average(window: str = "60s") -> MovingAverage:
    return MovingAverage(MovingAverageConfig.model_validate({"window": window}))


def test_each_value_weighs_by_how_long_it_held() -> None:
    block = average("60s")
    block.add(0.0, 10.0)
    block.add(45.0, 30.0)
    # 10 held for 45 s, 30 for 15 s.
    assert block.value(60.0) == pytest.approx((10 * 45 + 30 * 15) / 60)


def test_a_burst_of_samples_counts_no_more_than_its_duration() -> None:
    block = average("60s")
    block.add(0.0, 10.0)
    for i in range(100):
        block.add(59.0 + i / 100, 1000.0)
    assert block.value(60.0) == pytest.approx((10 * 59 + 1000 * 1) / 60)


def test_value_before_the_window_holds_into_it() -> None:
    block = average("60s")
    block.add(0.0, 5.0)
    block.add(100.0, 20.0)
    # Window [70, 130]: 5 held from 70 to 100, 20 from 100 to 130.
    assert block.value(130.0) == pytest.approx(12.5)


def test_old_values_leave_the_window() -> None:
    block = average("60s")
    block.add(0.0, 5.0)
    block.add(100.0, 20.0)
    assert block.value(200.0) == 20.0


def test_short_history_averages_over_the_time_there_is() -> None:
    block = average("15min")
    block.add(0.0, 10.0)
    block.add(10.0, 20.0)
    assert block.value(20.0) == pytest.approx(15.0)


def test_single_sample_is_its_own_average() -> None:
    block = average()
    assert block.update(3.0, 42.0) == 42.0


def test_no_value_before_the_first_sample() -> None:
    with pytest.raises(NoSampleError):
        average().value(0.0)


def test_moving_average_refuses_time_going_backwards() -> None:
    block = average()
    block.add(10.0, 1.0)
    with pytest.raises(TimeWentBackwardsError):
        block.add(9.0, 1.0)


def test_window_must_be_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        MovingAverageConfig.model_validate({"window": "0s"})


@given(
    window=st.integers(min_value=1, max_value=600),
    samples=st.lists(
        st.tuples(st.floats(min_value=0, max_value=120), st.floats(min_value=-1e6, max_value=1e6)),
        min_size=1,
        max_size=80,
    ),
    trailing=st.floats(min_value=0, max_value=120),
)
def test_average_lies_within_min_and_max_of_the_windows_inputs(
    window: int, samples: list[tuple[float, float]], trailing: float
) -> None:
    block = average(f"{window}s")
    times: list[float] = []
    now = 0.0
    for dt, value in samples:
        now += dt
        block.add(now, value)
        times.append(now)
    now += trailing
    result = block.value(now)
    # The window's inputs: every sample whose hold (until the next sample) reaches into it.
    holds_until = [*times[1:], now]
    inside = [
        value
        for (_, value), until in zip(samples, holds_until, strict=True)
        if until > now - window
    ]
    assert min(inside) <= result <= max(inside)

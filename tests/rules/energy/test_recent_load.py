"""The recent mean peak shaving judges its verdict and restores on: time-weighted, over the
last span only, in step with the moving-average block it stands in for."""

from __future__ import annotations

import pytest

from controller.rules.average import MovingAverage, MovingAverageConfig
from controller.rules.energy.recent_load import RecentMean


def test_each_value_counts_for_the_time_until_the_next() -> None:
    mean = RecentMean(900)
    mean.add(0, 100)
    mean.add(600, 200)  # 100 kW held 600 s
    mean.add(900, 0)  # 200 kW held 300 s
    assert mean.mean == pytest.approx((100 * 600 + 200 * 300) / 900)


def test_values_older_than_the_span_are_forgotten_part_by_part() -> None:
    mean = RecentMean(60)
    mean.add(0, 300)
    mean.add(100, 100)  # 300 kW held 100 s
    mean.add(140, 100)
    # the span is 80-140: 300 kW for 20 s, 100 kW for 40 s
    assert mean.mean == pytest.approx((300 * 20 + 100 * 40) / 60)


def test_a_single_value_is_its_own_mean_and_no_value_is_an_error() -> None:
    mean = RecentMean(60)
    with pytest.raises(ValueError, match="no value"):
        _ = mean.mean
    mean.add(5, 42)
    assert mean.mean == 42


def test_it_agrees_with_the_moving_average_block() -> None:
    recent = RecentMean(300)
    block = MovingAverage(MovingAverageConfig(window="5min"))
    for second in range(0, 2000, 5):
        value = 100 + (second * 7919 % 97)
        recent.add(second, value)
        block.add(second, value)
        assert recent.mean == pytest.approx(block.value(second))

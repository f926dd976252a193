"""Demand window: fixed and sliding windows from energy counters and power samples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.rules.blocks import BlockError, NoSampleError
from controller.rules.demand import DemandWindow, DemandWindowConfig


def at(hour: int, minute: int = 0, second: float = 0.0) -> int:
    """Epoch ms of 2026-03-02 (a Monday) at the given UTC time."""
    base = datetime(2026, 3, 2, hour, minute, tzinfo=UTC).timestamp()
    return round((base + second) * 1000)


def window(**config: object) -> DemandWindow:
    return DemandWindow(DemandWindowConfig.model_validate(config))


def feed_power(
    demand: DemandWindow, start_ms: int, end_ms: int, kw: float, every_s: int = 1
) -> None:
    for ts in range(start_ms, end_ms + 1, every_s * 1000):
        demand.add_power(ts, kw)


def feed_energy(
    demand: DemandWindow, start_ms: int, end_ms: int, kw: float, counter: float = 5000.0
) -> float:
    """Counter readings every 10 s for a steady load; returns the last counter value."""
    for ts in range(start_ms, end_ms + 1, 10_000):
        demand.add_energy(ts, counter)
        counter += kw * 10 / 3600
    return counter - kw * 10 / 3600


@pytest.mark.parametrize("minute", [0.5, 1, 7, 14.9])
def test_steady_load_predicts_itself_from_anywhere_in_a_fixed_window(minute: float) -> None:
    demand = window(source="power", window="15min")
    end = at(10, 15) + round((minute - 15) * 60_000)
    feed_power(demand, at(10, 0), end, 120.0)
    reading = demand.reading(end)
    assert reading.predicted_kw == pytest.approx(120.0)
    assert reading.average_kw == pytest.approx(120.0)


def test_steady_load_from_an_energy_counter_predicts_itself() -> None:
    demand = window(source="energy", window="15min")
    feed_energy(demand, at(10, 0), at(10, 6), 120.0)
    assert demand.reading(at(10, 6)).predicted_kw == pytest.approx(120.0)


def test_fixed_window_is_aligned_to_the_quarter_hour() -> None:
    demand = window(source="power", window="15min")
    assert demand.window_at(at(10, 37, 12.5)) == (at(10, 30), at(10, 45))


def test_fixed_window_aligns_to_local_clock_in_a_quarter_hour_zone() -> None:
    # Kathmandu is UTC+05:45: local 16:00 is 10:15 UTC.
    demand = window(source="power", window="1h", timezone="Asia/Kathmandu")
    assert demand.window_at(at(10, 40)) == (at(10, 15), at(11, 15))


def test_energy_so_far_and_average_so_far() -> None:
    demand = window(source="power", window="15min")
    feed_power(demand, at(10, 0), at(10, 6), 100.0)
    reading = demand.reading(at(10, 6))
    assert reading.energy_kwh == pytest.approx(10.0)
    assert reading.average_kw == pytest.approx(100.0)
    assert (reading.elapsed_s, reading.remaining_s) == (360.0, 540.0)


def test_energy_since_a_moment_within_the_window() -> None:
    """What a part of the window used: from a moment in it (battery_schedule's plan step), the
    window's own start at the earliest; a stretch without data at the average of the rest."""
    demand = window(source="power", window="15min")
    assert demand.energy_since(at(10, 0), at(10, 0)) == 0.0  # no sample yet
    feed_power(demand, at(9, 58), at(10, 0), 50.0)  # the window before
    feed_power(demand, at(10, 0), at(10, 4), 60.0)
    feed_power(demand, at(10, 4), at(10, 6), 120.0)
    assert demand.energy_since(at(10, 4), at(10, 6)) == pytest.approx(4.0, abs=0.01)
    assert demand.energy_since(at(9, 50), at(10, 6)) == pytest.approx(
        demand.reading(at(10, 6)).energy_kwh
    )
    demand.add_power(at(10, 9), 120.0)  # 3 min without a sample (max_gap 1 min): uncovered
    assert demand.energy_since(at(10, 4), at(10, 9)) == pytest.approx(10.0, abs=0.05)


def test_prediction_assumes_the_present_load_continues() -> None:
    demand = window(source="power", window="15min")
    feed_power(demand, at(10, 0), at(10, 7, 30), 100.0)
    feed_power(demand, at(10, 7, 31), at(10, 7, 31), 200.0)
    reading = demand.reading(at(10, 7, 31))
    expected = (reading.energy_kwh * 3600 + 200.0 * reading.remaining_s) / 900
    assert reading.predicted_kw == pytest.approx(expected)
    assert reading.predicted_kw == pytest.approx(150.0, abs=0.2)


def test_present_power_can_come_from_a_power_tag() -> None:
    demand = window(source="energy", window="15min")
    feed_energy(demand, at(10, 0), at(10, 5), 90.0)
    reading = demand.reading(at(10, 5), power_kw=180.0)
    assert reading.predicted_kw == pytest.approx((90 * 5 + 180 * 10) / 15)


def test_new_window_starts_from_zero_energy() -> None:
    demand = window(source="power", window="15min")
    feed_power(demand, at(10, 0), at(10, 15, 30), 100.0)
    reading = demand.reading(at(10, 15, 30))
    assert reading.window_start_ms == at(10, 15)
    assert reading.energy_kwh == pytest.approx(100.0 * 30 / 3600)


def test_interval_across_the_boundary_is_split_in_time() -> None:
    demand = window(source="energy", window="15min")
    demand.add_energy(at(10, 14, 50), 1000.0)
    demand.add_energy(at(10, 15, 10), 1001.0)
    reading = demand.reading(at(10, 15, 10))
    assert reading.energy_kwh == pytest.approx(0.5)


def test_counter_rollover_counts_the_wrapped_energy() -> None:
    demand = window(source="energy", window="15min", counter_rollover_kwh=10_000.0)
    demand.add_energy(at(10, 1), 9999.5)
    demand.add_energy(at(10, 2), 0.5)
    assert demand.reading(at(10, 2)).energy_kwh == pytest.approx(1.0)


def test_counter_reset_adds_no_negative_energy() -> None:
    demand = window(source="energy", window="15min")
    feed_energy(demand, at(10, 0), at(10, 3), 60.0, counter=500.0)
    demand.add_energy(at(10, 3, 10), 0.0)
    demand.add_energy(at(10, 3, 20), 60.0 * 10 / 3600)
    reading = demand.reading(at(10, 3, 20))
    assert demand.counter_resets == 1
    assert reading.energy_kwh == pytest.approx(60.0 * 190 / 3600)
    assert reading.predicted_kw == pytest.approx(60.0)


def test_implausible_counter_jump_is_not_energy() -> None:
    demand = window(source="energy", window="15min", max_power_kw=500.0)
    demand.add_energy(at(10, 1), 100.0)
    demand.add_energy(at(10, 1, 10), 100_000.0)
    demand.add_energy(at(10, 1, 20), 100_000.5)
    assert demand.counter_resets == 1
    assert demand.reading(at(10, 1, 20)).energy_kwh == pytest.approx(0.5)


def test_start_up_mid_window_fills_the_unseen_past_with_the_average() -> None:
    demand = window(source="power", window="15min")
    feed_power(demand, at(10, 10), at(10, 12), 80.0)
    reading = demand.reading(at(10, 12))
    assert reading.covered_s == 120.0
    assert reading.predicted_kw == pytest.approx(80.0)


def test_power_gap_longer_than_max_gap_is_not_integrated() -> None:
    demand = window(source="power", window="15min", max_gap="30s")
    demand.add_power(at(10, 1), 100.0)
    demand.add_power(at(10, 5), 100.0)
    reading = demand.reading(at(10, 5))
    assert (reading.energy_kwh, reading.covered_s) == (0.0, 0.0)


def test_stale_data_is_predicted_at_the_present_load() -> None:
    demand = window(source="power", window="15min")
    feed_power(demand, at(10, 0), at(10, 5), 100.0)
    assert demand.reading(at(10, 10)).predicted_kw == pytest.approx(100.0)


def test_sliding_window_averages_the_last_window() -> None:
    demand = window(source="power", window="10min", alignment="sliding")
    feed_power(demand, at(10, 0), at(10, 10), 50.0, every_s=10)
    feed_power(demand, at(10, 10, 10), at(10, 15), 150.0, every_s=10)
    reading = demand.reading(at(10, 15))
    assert reading.window_start_ms == at(10, 5)
    # 5 min at 50 kW, 10 s ramp from 50 to 150, 4 min 50 s at 150 kW.
    assert reading.average_kw == pytest.approx((50 * 300 + 100 * 10 + 150 * 290) / 600)


def test_sliding_window_horizon_predicts_the_window_ending_later() -> None:
    demand = window(source="power", window="10min", alignment="sliding", horizon="5min")
    feed_power(demand, at(10, 0), at(10, 10), 50.0, every_s=10)
    reading = demand.reading(at(10, 10), power_kw=150.0)
    assert reading.window_end_ms == at(10, 15)
    assert reading.predicted_kw == pytest.approx(100.0)


def test_out_of_order_sample_is_dropped() -> None:
    demand = window(source="power", window="15min")
    demand.add_power(at(10, 1), 100.0)
    assert demand.add_power(at(10, 0, 59), 500.0) is False
    assert demand.dropped_samples == 1


def test_clock_set_back_by_more_than_a_window_starts_afresh() -> None:
    demand = window(source="power", window="15min")
    feed_power(demand, at(11, 0), at(11, 5), 100.0)
    assert demand.add_power(at(10, 0), 40.0) is True
    assert demand.reading(at(10, 0)).energy_kwh == 0.0


def test_reading_needs_a_sample() -> None:
    with pytest.raises(NoSampleError):
        window(source="power").reading(at(10))


def test_energy_source_needs_two_readings_for_a_power() -> None:
    demand = window(source="energy")
    demand.add_energy(at(10), 1.0)
    with pytest.raises(NoSampleError, match="two counter readings"):
        demand.reading(at(10))


def test_feeding_the_other_source_is_refused() -> None:
    with pytest.raises(BlockError, match="source: energy"):
        window(source="energy").add_power(at(10), 1.0)


def test_fixed_window_must_divide_the_hour() -> None:
    with pytest.raises(ValidationError, match="does not divide the hour"):
        DemandWindowConfig.model_validate({"source": "power", "window": "7min"})


def test_horizon_is_refused_for_fixed_windows() -> None:
    with pytest.raises(ValidationError, match="horizon is for sliding windows"):
        DemandWindowConfig.model_validate({"source": "power", "horizon": "1min"})


def test_counter_settings_are_refused_for_power_source() -> None:
    with pytest.raises(ValidationError, match="counter_rollover_kwh only apply"):
        DemandWindowConfig.model_validate({"source": "power", "counter_rollover_kwh": 1e6})


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        DemandWindowConfig.model_validate({"source": "power", "timezone": "Mars/Olympus"})


@given(
    loads=st.lists(st.floats(min_value=0, max_value=2000), min_size=2, max_size=60),
    now_offset=st.integers(min_value=0, max_value=60_000),
)
def test_prediction_lies_between_the_smallest_and_largest_load(
    loads: list[float], now_offset: int
) -> None:
    demand = window(source="power", window="15min")
    start = at(10, 0)
    for i, kw in enumerate(loads):
        demand.add_power(start + i * 10_000, kw)
    reading = demand.reading(start + (len(loads) - 1) * 10_000 + now_offset)
    assert min(loads) - 1e-6 <= reading.predicted_kw <= max(loads) + 1e-6

"""The injectable clocks: lock-step time wakes sleepers in order, scaled time runs faster."""

from __future__ import annotations

import asyncio

import pytest

from controller.clock import ScaledClock, SteppedClock


async def test_stepped_clock_wakes_sleepers_in_deadline_order_only_when_advanced() -> None:
    clock = SteppedClock(start_wall_ms=1_700_000_000_000)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, d)) for n, d in (("b", 2.0), ("a", 1.0), ("c", 5.0))]
    await asyncio.sleep(0.01)
    assert woke == []
    clock.advance(1.5)
    await asyncio.sleep(0)
    assert woke == [("a", 1.5)]
    clock.advance(1.0)
    await asyncio.sleep(0)
    assert woke == [("a", 1.5), ("b", 2.5)]
    assert clock.wall_ms() == 1_700_000_002_500
    clock.advance(10)
    await asyncio.gather(*tasks)
    assert [name for name, _ in woke] == ["a", "b", "c"]


async def test_stepped_clock_refuses_to_go_back() -> None:
    clock = SteppedClock(start_wall_ms=0)
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)


async def test_scaled_clock_runs_speed_times_faster_than_real_time() -> None:
    clock = ScaledClock(speed=100.0, start_wall_ms=0)
    start = clock.monotonic()
    await clock.sleep_until(start + 5.0)  # 5 simulated seconds = 50 ms
    elapsed = clock.monotonic() - start
    assert 5.0 <= elapsed < 50.0
    assert clock.wall_ms() >= 5000

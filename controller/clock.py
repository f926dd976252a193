"""One injectable clock for the whole daemon.

Schedules use `monotonic()`; timestamps use `wall_ms()`. The same code then runs in real time,
at a speed factor, or in lock-step with the simulated cell, where simulated time is set by the
co-simulation driver.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Protocol


class Clock(Protocol):
    """Where time comes from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for schedules and timeouts."""
        ...

    def wall_ms(self) -> int:
        """Epoch milliseconds; for timestamps in samples and messages."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until `monotonic()` reaches `deadline` (return at once if it has)."""
        ...


class SystemClock:
    """Real time: the event loop's monotonic clock and the system's wall clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            # Yield once so a loop that is always late still lets others run.
            await asyncio.sleep(0)


SYSTEM_CLOCK = SystemClock()


class ScaledClock:
    """Real time sped up: `speed` simulated seconds per real second, from `start_wall_ms`.

    Used when the controller runs against the simulated cell at a speed factor, so that demand
    windows, timers and timestamps follow the cell's time.
    """

    def __init__(self, speed: float, start_wall_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be above 0, not {speed}")
        self.speed = speed
        self._t0 = time.monotonic()
        now_ms = time.time_ns() // 1_000_000
        self._start_wall_ms = now_ms if start_wall_ms is None else start_wall_ms

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def wall_ms(self) -> int:
        return self._start_wall_ms + int(self.monotonic() * 1000)

    async def sleep_until(self, deadline: float) -> None:
        delay = (deadline - self.monotonic()) / self.speed
        await asyncio.sleep(max(delay, 0.0))


class SteppedClock:
    """Simulated time that moves only when `advance()` is called: lock-step co-simulation.

    Sleepers wake in deadline order as time passes them, so a simulated day runs as fast as
    the protocol stack allows while every timer sees the time it would see in real life.
    """

    def __init__(self, start_wall_ms: int) -> None:
        self._now = 0.0
        self._start_wall_ms = start_wall_ms
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = 0

    def monotonic(self) -> float:
        return self._now

    def wall_ms(self) -> int:
        return self._start_wall_ms + round(self._now * 1000)

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._counter += 1
        heapq.heappush(self._sleepers, (deadline, self._counter, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("time does not go back")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _deadline, _n, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

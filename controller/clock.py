"""One injectable clock for the whole daemon.

Schedules use `monotonic()`; timestamps use `wall_ms()`. The same code then runs in real time,
at a speed factor, or in lock-step with the simulated cell, where simulated time is set by the
co-simulation driver.
"""

from __future__ import annotations

import asyncio
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

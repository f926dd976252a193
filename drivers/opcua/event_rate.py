"""A token bucket for a device's events: a server that floods events must not flood the broker.

`max_rate` events a second on average, bursts of up to one second's worth (at least 10).
"""

from __future__ import annotations


class EventBudget:
    def __init__(self, max_rate: float) -> None:
        self._rate = max_rate
        self._capacity = max(10.0, max_rate)
        self._tokens = self._capacity
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """One event at monotonic time `now`: True when it may be published."""
        if self._last is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

"""Time-weighted moving average over a window of time, for smoothing measurements that arrive at
irregular intervals (a poll that was late, a device that reports on change only).
"""

from __future__ import annotations

import math
from collections import deque

from controller.configtypes import PositiveDuration, StrictModel
from controller.rules.blocks import NoSampleError, require_finite, require_forward


class MovingAverageConfig(StrictModel):
    """The length of time the average looks back over."""

    window: PositiveDuration


class MovingAverage:
    """Average of the input over the last `window` seconds, each value weighted by how long it
    was the latest value (it holds until the next sample). A burst of samples therefore counts
    no more than one sample held for the same time. Before a full window of history exists the
    average covers the history there is.
    """

    def __init__(self, config: MovingAverageConfig) -> None:
        self.config = config
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        require_finite("moving average input", value)
        require_forward("moving average", now, self._samples[-1][0] if self._samples else None)
        self._samples.append((now, value))
        self._forget(now)

    def update(self, now: float, value: float) -> float:
        """Add a sample and return the average at its time."""
        self.add(now, value)
        return self.value(now)

    def value(self, now: float) -> float:
        """The average over [now - window, now]; the latest sample holds until `now`."""
        if not self._samples:
            raise NoSampleError("moving average has had no input yet")
        require_forward("moving average", now, self._samples[-1][0])
        self._forget(now)
        start = now - self.config.window
        weighted: list[float] = []
        weights: list[float] = []
        low = high = self._samples[-1][1]
        ends = [*(t for t, _ in self._samples), now][1:]
        for (begin, value), end in zip(self._samples, ends, strict=True):
            weight = end - max(begin, start)
            if weight > 0:
                weighted.append(value * weight)
                weights.append(weight)
                low, high = min(low, value), max(high, value)
        total = math.fsum(weights)
        if total <= 0:
            return self._samples[-1][1]
        # Rounding can put a weighted mean of equal values one ulp outside them; it is never
        # outside mathematically, so clamp to the inputs it was made of.
        return min(high, max(low, math.fsum(weighted) / total))

    def _forget(self, now: float) -> None:
        """Drop samples replaced by a later sample before the window starts."""
        start = now - self.config.window
        while len(self._samples) > 1 and self._samples[1][0] <= start:
            self._samples.popleft()

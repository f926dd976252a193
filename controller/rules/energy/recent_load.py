"""The mean of a load over the last stretch of time (peak shaving's last window length), kept
in constant time per sample: each value holds until the next one, as `MovingAverage` weighs
it, but with a running sum, because the rule asks for it every cycle over a window of several
hundred samples."""

from __future__ import annotations

from collections import deque

from controller.rules.blocks import require_finite


class RecentMean:
    """Time-weighted mean of the values added over the last `span` seconds: each value counts
    for the time until the next one. Before `span` of history it covers what there is; with a
    single value, that value."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._segments: deque[tuple[float, float, float]] = deque()  # (begin, end, value)
        self._last: tuple[float, float] | None = None
        self._sum = 0.0  # value x seconds over the segments
        self._seconds = 0.0

    def clear(self) -> None:
        self._segments.clear()
        self._last = None
        self._sum = self._seconds = 0.0

    def add(self, t: float, value: float) -> None:
        require_finite("recent mean input", value)
        last = self._last
        if last is not None and t > last[0]:
            begin, held = last
            self._segments.append((begin, t, held))
            self._sum += held * (t - begin)
            self._seconds += t - begin
        if last is None or t > last[0]:
            self._last = (t, value)
        start = t - self.span
        while self._segments and self._segments[0][1] <= start:
            begin, end, held = self._segments.popleft()
            self._sum -= held * (end - begin)
            self._seconds -= end - begin

    @property
    def mean(self) -> float:
        """The mean over the last `span` up to the latest value's time."""
        if self._last is None:
            raise ValueError("no value yet")
        if not self._segments:
            return self._last[1]
        start = self._last[0] - self.span
        begin, _, held = self._segments[0]
        cut = max(0.0, start - begin)  # the first segment's part before the span
        seconds = self._seconds - cut
        if seconds <= 0:
            return self._last[1]
        return (self._sum - held * cut) / seconds

"""A raised leak alarm whose estimate steps up by a leak's size: another leak of the same kind
in the same place (or the first one growing), found while the alarm is still raised.

One alarm per rule and place cannot be raised twice while it holds, so a second leak would
otherwise be hidden by the first. The estimate is what tells them apart: a leak adds its rate
to it. After a raise (or a step, or a change of basis) the estimate may still be settling (a
moving window filling with the leak), so for `settle` seconds of measured estimates (a cycle
without one, e.g. while the rule does not judge, does not count) its level follows it up.
Afterwards the level is the median of the settled level and of the estimates measured since
within `step` of it (the last `span` seconds of them): an estimate held `step` or more above
it for `hold` seconds is a step, and the level moves to it; one held `step` or more below it
for `hold` is a fall (a leak repaired, a smaller flow), and the level starts again from there.

The median, not the lowest estimate: a moving window's estimate wanders with what the window
holds (machines working harder for a while), and the top of a wander stands further above its
lowest point than any one window stands from the middle; judged from its lowest point, a long
enough episode would always find a step (the leak scenario's air alarm at 16:23, traced in
bench/README.md, "Session 6: shipped scenarios"). docs/rules.md, "Alarms", gives the
convention and how `edgecell report` scores it.
"""

from __future__ import annotations

import bisect
from collections import deque

# How far back the level's median looks: long enough that a wander of a moving window (its
# length is minutes) is many times in it, short enough that memory stays small.
_SPAN_S = 4 * 3600.0


class EstimateSteps:
    """Counts the steps of one alarm's estimate within its present episode."""

    def __init__(self, step: float, hold: float, settle: float, span: float = _SPAN_S) -> None:
        self.step = step
        self.hold = hold
        self.settle = settle
        self.span = span
        self.count = 0
        self.level: float | None = None
        self._settle_left = 0.0
        self._last_t: float | None = None  # the last cycle with an estimate
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._basis = ""
        # The settled estimates the level is the median of: in arrival order and sorted.
        self._measured: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []

    def update(
        self,
        t: float,
        raised: bool,
        estimate: float | None,
        basis: str = "",
        hold: float | None = None,
    ) -> int:
        """This cycle's state of the alarm and its estimate; the steps of this episode.
        An estimate on another `basis` (another method) is not comparable: it starts a new
        level, settling. `hold` overrides the constructor's for this estimate (one that holds
        a persistence of its own, e.g. a floor over a window, needs no second wait)."""
        hold = self.hold if hold is None else hold
        if not raised:
            self.count = 0
            self.level = None
            self._last_t = None
            self._reset_timers()
            self._forget()
            return 0
        if estimate is None:
            self._last_t = None
            self._reset_timers()
            return self.count
        last_t, self._last_t = self._last_t, t
        if self.level is None or basis != self._basis:
            self._basis = basis
            self._reset_timers()
            self._forget()
            self.level = estimate
            self._settle_left = self.settle
            return self.count
        if self._settle_left > 0:
            self._settle_left -= 0.0 if last_t is None else t - last_t
            self.level = max(self.level, estimate)
            if self._settle_left <= 0:
                self._add(t, self.level)  # the settled level: the median's first value
            return self.count
        if estimate - self.level >= self.step:
            self._below_since = None
            if self._above_since is None:
                self._above_since = t
            if t - self._above_since >= hold:
                self.count += 1
                self.level = estimate
                self._settle_left = self.settle
                self._reset_timers()
                self._forget()
        elif self.level - estimate >= self.step:
            self._above_since = None
            if self._below_since is None:
                self._below_since = t
            if t - self._below_since >= hold:
                self._reset_timers()
                self._forget()
                self.level = self._add(t, estimate)
        else:
            # Within a step of the level: measured wander, the level's median takes it. An
            # estimate a step away is not (until it holds): a burst does not move the level.
            self._reset_timers()
            self.level = self._add(t, estimate)
        return self.count

    def _reset_timers(self) -> None:
        self._above_since = None
        self._below_since = None

    def _forget(self) -> None:
        self._measured.clear()
        self._sorted.clear()

    def _add(self, t: float, estimate: float) -> float:
        """Keep `estimate` (dropping those older than `span`); the median of those kept."""
        self._measured.append((t, estimate))
        bisect.insort(self._sorted, estimate)
        while self._measured and self._measured[0][0] < t - self.span:
            _, old = self._measured.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        values, n = self._sorted, len(self._sorted)
        return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

"""A raised leak alarm whose estimate steps up by a leak's size: another leak of the same kind
in the same place (or the first one growing), found while the alarm is still raised.

One alarm per rule and place cannot be raised twice while it holds, so a second leak would
otherwise be hidden by the first. The estimate is what tells them apart: a leak adds its rate
to it. After a raise (or a step, or a change of basis) the estimate may still be settling (a
moving window filling with the leak), so for `settle` seconds of measured estimates (a cycle
without one, e.g. while the rule does not judge, does not count) its level follows it up;
afterwards an estimate held
`step` or more above the level for `hold` seconds is a step, and the level moves to it. The
level follows the estimate down (a leak repaired, a smaller flow), never up by itself.
docs/rules.md, "Alarms", gives the convention and how `edgecell report` scores it.
"""

from __future__ import annotations


class EstimateSteps:
    """Counts the steps of one alarm's estimate within its present episode."""

    def __init__(self, step: float, hold: float, settle: float) -> None:
        self.step = step
        self.hold = hold
        self.settle = settle
        self.count = 0
        self.level: float | None = None
        self._settle_left = 0.0
        self._last_t: float | None = None  # the last cycle with an estimate
        self._above_since: float | None = None
        self._basis = ""

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
            self._above_since = None
            self._last_t = None
            return 0
        if estimate is None:
            self._last_t = None
            self._above_since = None
            return self.count
        last_t, self._last_t = self._last_t, t
        if self.level is None or basis != self._basis:
            self._basis = basis
            self._above_since = None
            self.level = estimate
            self._settle_left = self.settle
            return self.count
        if self._settle_left > 0:
            self._settle_left -= 0.0 if last_t is None else t - last_t
            self.level = max(self.level, estimate)
            return self.count
        self.level = min(self.level, estimate)
        if estimate - self.level >= self.step:
            if self._above_since is None:
                self._above_since = t
            if t - self._above_since >= hold:
                self.count += 1
                self.level = estimate
                self._settle_left = self.settle
                self._above_since = None
        else:
            self._above_since = None
        return self.count

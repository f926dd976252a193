"""Which readings of the air-use fit's work signals (`leak_test.explained_by`: each machine's
power, a part rate) are plausible, judged by each signal's own learned history.

Its own module because it is a filter with its own state (how long readings have been out of
bounds) between the rule's readings and the air-use fit. A positive reading far above anything
the signal did in its mode's learned windows (a meter glitch: 10x a machine's draw) would, fitted,
explain more air than flowed, bend the mode's slopes for as long as its window stays in the
history (4 h) and hide a leak there. Such a poll is left out of the fit, as a negative or missing
one is. A reading out of bounds for longer than a whole window is no glitch but the signal's new
level (a heavier product): it is taken, so that the mode can learn it rather than never judging
again.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

log = structlog.get_logger(__name__)

# A reading more than this many times the highest one in its mode's learned windows is taken for
# a fault. A machine's power within one production mode (the same machines in the same states)
# moves with its work by tens of percent, not by three times its highest.
PLAUSIBLE_FACTOR = 3.0


class PlausibleWork:
    """Fed each poll's work signals with the highest value each reached in the mode's learned
    windows; answers the signals, or None when one is out of bounds (the poll is left out)."""

    def __init__(self, names: Sequence[str], window_s: float) -> None:
        self.names = tuple(names)
        self.window_s = window_s
        self._out_since: float | None = None
        self.rejected = 0  # polls left out since the start

    def check(
        self, t: float, work: tuple[float, ...], tops: Sequence[float] | None
    ) -> tuple[float, ...] | None:
        """`work` when each signal is at most PLAUSIBLE_FACTOR times its learned top (a signal
        with no positive top has no bound: nothing learned to judge by), else None, unless the
        readings have been out of bounds for longer than `window_s` (a new level: taken)."""
        out = [
            (i, value, PLAUSIBLE_FACTOR * top)
            for i, (value, top) in enumerate(zip(work, tops or (), strict=False))
            if top > 0.0 and value > PLAUSIBLE_FACTOR * top
        ]
        if not out:
            self._out_since = None
            return work
        if self._out_since is None:
            self._out_since = t
            i, value, bound = out[0]
            log.warning(
                "work_signal_implausible",
                signal=self.names[i] if i < len(self.names) else i,
                value=value,
                bound=round(bound, 3),
                left_out_for_s=self.window_s,
            )
        if t - self._out_since > self.window_s:
            return work
        self.rejected += 1
        return None

"""Anti short-cycling for on/off equipment (compressors, pumps, heaters): minimum on and off
times and a maximum number of starts per hour. A switch asked for too early is deferred, not lost.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pydantic import Field

from controller.configtypes import Duration, StrictModel, format_duration
from controller.rules.blocks import require_forward

_HOUR = 3600.0


class MinOnOffConfig(StrictModel):
    """Protection times of one piece of equipment."""

    min_on: Duration = 0.0
    min_off: Duration = 0.0
    max_starts_per_hour: int | None = Field(default=None, ge=1)


@dataclass(frozen=True, slots=True)
class SwitchDecision:
    """What to do with the equipment now.

    `state` is what it should be; when the request was deferred, `deferred_until` is the monotonic
    time the switch becomes allowed and `reason` says which protection holds it.
    """

    state: bool
    requested: bool
    deferred_until: float | None = None
    reason: str = ""

    @property
    def deferred(self) -> bool:
        return self.deferred_until is not None


class MinOnOffTimes:
    """Grants or defers requests to switch one piece of equipment on or off.

    `state` and `since` describe the equipment when the block is built: pass the present state and
    `since=now` when it is not known how long it has been in that state (the safe assumption: it
    has just switched, so the minimum times run from now).
    """

    def __init__(self, config: MinOnOffConfig, *, state: bool, since: float) -> None:
        self.config = config
        self.state = state
        self.since = since
        self._last_time = since
        self._starts: deque[float] = deque()

    def starts_in_last_hour(self, now: float) -> int:
        self._forget_old_starts(now)
        return len(self._starts)

    def allowed_at(self, want: bool) -> tuple[float, str]:
        """The earliest monotonic time a switch to `want` is allowed, and what holds it until then
        ("" when nothing does). Switching to the present state is always allowed."""
        if want == self.state:
            return self._last_time, ""
        if not want:
            return self.since + self.config.min_on, f"min_on {format_duration(self.config.min_on)}"
        at = self.since + self.config.min_off
        reason = f"min_off {format_duration(self.config.min_off)}"
        limit = self.config.max_starts_per_hour
        if limit is not None and len(self._starts) >= limit:
            # The start that must leave the hour before one more start fits in it.
            free_at = self._starts[-limit] + _HOUR
            if free_at > at:
                at, reason = free_at, f"max_starts_per_hour {limit}"
        return at, reason

    def request(self, now: float, want: bool) -> SwitchDecision:
        """Ask for the equipment to be `want`; switches when its protections allow, else defers."""
        require_forward("min on/off", now, self._last_time)
        self._last_time = now
        self._forget_old_starts(now)
        if want == self.state:
            return SwitchDecision(state=self.state, requested=want)
        at, reason = self.allowed_at(want)
        if now < at:
            return SwitchDecision(
                state=self.state, requested=want, deferred_until=at, reason=reason
            )
        self._switch(now, want)
        return SwitchDecision(state=self.state, requested=want)

    def observe(self, now: float, state: bool) -> None:
        """The equipment's actual state, read back from the device. A switch made by someone else
        (the PLC, an operator at the panel) restarts the minimum times and counts as a start."""
        require_forward("min on/off", now, self._last_time)
        self._last_time = now
        self._forget_old_starts(now)
        if state != self.state:
            self._switch(now, state)

    def _switch(self, now: float, state: bool) -> None:
        self.state = state
        self.since = now
        if state:
            self._starts.append(now)

    def _forget_old_starts(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - _HOUR:
            self._starts.popleft()

"""What the actuator says about a write: the outcomes, the result of one tag in one cycle (the
payload of `{base}/events/writes`), the engine's decision it is given, and the refusals an
operator's write can meet."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controller.model import Value, WriteError
from controller.rules.common import OutputValue
from controller.rules.rule import Proposal


class Outcome(StrEnum):
    """What became of one proposal or command for one tag."""

    WRITTEN = "written"  # the device accepted the write (verification follows)
    UNCHANGED = "unchanged"  # the tag already holds the value: nothing written
    SHADOW = "shadow"  # would be written; the rule is in shadow mode
    REFUSED = "refused"  # a check refused it: nothing written
    DEFERRED = "deferred"  # equipment protection or a first reading holds it: written later
    FAILED = "failed"  # the device refused or did not answer
    VERIFY_FAILED = "verify_failed"  # written, but the reading does not show it in time
    OVERRULED = "overruled"  # another rule or the operator won the tag
    RELEASED = "released"  # nobody wants the tag any more: left to the PLC
    EXPIRED = "expired"  # an operator's override ran out
    CLEARED = "cleared"  # an operator's override was cleared


ERRORS = frozenset({Outcome.REFUSED, Outcome.FAILED, Outcome.VERIFY_FAILED})


class ActuationRefusedError(WriteError):
    """An operator's write refused before anything was written; the message says why."""


class ManualWritesDisabledError(ActuationRefusedError):
    """`actuation.manual_writes` is false."""


class UnknownTagError(ActuationRefusedError):
    """No device has this tag."""


class NotWritableError(ActuationRefusedError):
    """The tag is not declared `writable: true`."""


class OutOfRangeError(ActuationRefusedError):
    """The value is outside the tag's min/max (an operator's value is refused, not clamped)."""


class NotEncodableError(OutOfRangeError):
    """The tag's type cannot hold the value (outside the type's range, a fraction for an
    integer tag, true/false for a number)."""


class NotReadYetError(ActuationRefusedError):
    """The tag has had no good reading since the start: edgecell reads before it writes."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one tag in one cycle (or one command): what was asked, what was (or would
    be) written, which limits changed it and why."""

    tag: str
    outcome: Outcome
    source: str  # rule:<name> | fallback:<name> | command:<operator> | heartbeat
    requested: OutputValue | None
    value: OutputValue | None  # written, would be written, or held
    old: Value | None
    reason: str = ""
    rule: str | None = None
    mode: str = "auto"
    clamps: tuple[str, ...] = ()
    checks: Mapping[str, str] = field(default_factory=dict)
    overruled: tuple[Proposal, ...] = ()
    ts: int = 0

    @property
    def by_operator(self) -> bool:
        return self.source.startswith("command:")

    def event(self, repeats: int = 0) -> dict[str, Any]:
        """The payload of `{base}/events/writes` (docs/mqtt-topics.md); `repeats` is how many
        times the tag's previous event recurred, unpublished, before this one."""
        event: dict[str, Any] = {
            "ts": self.ts,
            "source": self.source,
            "tag": self.tag,
            "old": self.old,
            "new": self.value,
            "requested": self.requested,
            "checks": [f"{check}: {result}" for check, result in self.checks.items()],
            "outcome": self.outcome.value,
            "rule": self.rule,
            "mode": self.mode,
            "clamps": list(self.clamps),
            "reason": self.reason,
            "overruled": [
                {"rule": p.rule, "value": p.value, "priority": p.priority, "mode": p.mode}
                for p in self.overruled
            ],
            "repeats": repeats,
        }
        if self.outcome in ERRORS:
            event["error"] = self.reason
        return event

    def with_losers(self, losers: tuple[Proposal, ...]) -> WriteResult:
        """This result naming the proposals that lost the tag (unless it names some already)."""
        if not losers or self.overruled:
            return self
        return WriteResult(
            self.tag, self.outcome, self.source, self.requested, self.value, self.old,
            reason=self.reason, rule=self.rule, mode=self.mode, clamps=self.clamps,
            checks=self.checks, overruled=losers, ts=self.ts,
        )


@dataclass(frozen=True, slots=True)
class TagDecision:
    """The engine's arbitration for one tag: the winning proposal of the rules in auto mode,
    the shadow proposal that would have won over all of them, and every losing proposal."""

    tag: str
    winner: Proposal | None = None
    shadow: Proposal | None = None
    losers: tuple[Proposal, ...] = ()

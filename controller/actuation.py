"""The only code in edgecell that writes to a device. Every value a rule or an operator wants
passes the checks of DESIGN.md "Safety of writes" here, and every attempt is published on
`{base}/events/writes` and logged with its outcome.

Order of the checks for one tag and one cycle: the operator's override wins over every rule;
the tag must be declared writable and have been read (a start is bumpless: read first, then
act); numbers are clamped to min/max and moved no more than max_step per write and max_rate per
minute; the value must be one the tag's type can hold (integer tags take whole steps); equipment
switched by a boolean tag keeps its minimum on/off times; shadow proposals are computed and
published but never written. After a write, the next reading of the tag must show the value
within `verify_timeout`. A refused or failed operator's write changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import structlog

from controller.clock import Clock
from controller.configtypes import WriteLimits, format_duration
from controller.model import Quality, Sample, Value, WriteError
from controller.mqtt import topics
from controller.rules.blocks import RateLimiter, RateLimiterConfig
from controller.rules.config import ActuationConfig, OutputConfig, OutputValue
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes
from controller.rules.rule import Proposal
from controller.tagtable import TagTable
from drivers.base import Driver, UnencodableValueError, WholeSteps

log = structlog.get_logger(__name__)

# The device driver for a device name (the runtime's `driver(name)`); KeyError when not running.
Writers = Callable[[str], Driver]


class EventSink(Protocol):
    """Where write events and retained rule states go (the MQTT publisher implements it)."""

    def publish_event(self, topic: str, payload: bytes) -> None: ...

    def publish_retained(self, topic: str, payload: bytes) -> None: ...


class Outcome(StrEnum):
    """What became of one proposal or command for one tag."""

    WRITTEN = "written"  # the device accepted the write (verification follows)
    UNCHANGED = "unchanged"  # the tag already holds the value: nothing written
    SHADOW = "shadow"  # would be written; the rule is in shadow mode
    REFUSED = "refused"  # a check refused it: nothing written
    DEFERRED = "deferred"  # equipment protection holds it: written when allowed
    FAILED = "failed"  # the device refused or did not answer
    VERIFY_FAILED = "verify_failed"  # written, but the reading does not show it in time
    OVERRULED = "overruled"  # another rule or the operator won the tag
    RELEASED = "released"  # nobody wants the tag any more: left to the PLC
    EXPIRED = "expired"  # an operator's override ran out
    CLEARED = "cleared"  # an operator's override was cleared


# Outcomes published every time; the others only when they differ from the last event of the
# tag, so a rule held off for minutes, or a device down for an hour, does not publish the same
# refusal or failure every cycle. The repeats left unpublished are counted in the next event of
# the tag (`repeats`).
_ALWAYS_PUBLISHED = frozenset(
    {Outcome.WRITTEN, Outcome.VERIFY_FAILED, Outcome.EXPIRED, Outcome.CLEARED}
)
# A failure that goes on is published again this often (seconds), with its count of repeats.
REPEAT_SUMMARY = 60.0


_ERRORS = frozenset({Outcome.REFUSED, Outcome.FAILED, Outcome.VERIFY_FAILED})


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
        if self.outcome in _ERRORS:
            event["error"] = self.reason
        return event


@dataclass(frozen=True, slots=True)
class TagDecision:
    """The engine's arbitration for one tag: the winning proposal of the rules in auto mode,
    the shadow proposal that would have won over all of them, and every losing proposal."""

    tag: str
    winner: Proposal | None = None
    shadow: Proposal | None = None
    losers: tuple[Proposal, ...] = ()


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's value for a tag, winning over every rule until `expires_at` (monotonic)."""

    tag: str
    value: OutputValue
    expires_at: float
    expires_ms: int
    by: str


@dataclass(frozen=True, slots=True)
class _Pending:
    """A write waiting for a reading of the tag that shows it."""

    value: OutputValue
    deadline: float
    written_ms: int
    source: str
    rule: str | None


@dataclass
class _TagState:
    """What the actuator remembers about one written tag (one for real writes, one for shadow)."""

    last_value: OutputValue | None = None
    last_time: float | None = None
    pending: _Pending | None = None
    equipment: MinOnOffTimes | None = None
    holder: str | None = None  # the source that held the tag last cycle
    last_event: tuple[Any, ...] | None = None
    repeats: int = 0  # events like the last one published, not published since
    published_at: float = -math.inf  # monotonic time of the last event published


@dataclass(slots=True)
class _Plan:
    """A write the checks allowed, about to be sent."""

    tag: str
    value: OutputValue
    requested: OutputValue
    old: Value | None
    source: str
    rule: str | None
    mode: str
    reason: str
    clamps: tuple[str, ...]
    checks: dict[str, str]
    overruled: tuple[Proposal, ...] = ()
    # The equipment protection as it was before this switch was granted: restored when the
    # write fails, so a switch that did not happen neither counts as a start nor resets timers.
    equipment_before: MinOnOffTimes | None = None


@dataclass
class _Heartbeat:
    tag: str
    period: float
    modulo: int
    counter: int = 0
    due: float = -math.inf
    failing: bool = False


@dataclass
class ActuatorStats:
    """Counts for the health topic."""

    writes: int = 0
    failures: int = 0
    verify_failures: int = 0
    refusals: int = 0
    heartbeats: int = 0
    heartbeat_failures: int = 0


def write_limits(devices: Sequence[Any]) -> dict[str, WriteLimits]:
    """The write limits of every tag of every device, by `device.tag`."""
    return {f"{device.name}.{tag.name}": tag for device in devices for tag in device.tags}


class Actuator:
    """Applies the engine's decisions and operators' overrides to the devices, safely.

    `limits` are the write limits of every tag by `device.tag` (`write_limits(config.devices)`),
    `writers(device)` gives a device's driver, `table` the latest readings (the old value of a
    write, its read-back verification), `events` receives write events (None: log only).
    """

    def __init__(
        self,
        limits: Mapping[str, WriteLimits],
        config: ActuationConfig,
        *,
        writers: Writers,
        table: TagTable,
        clock: Clock,
        events: EventSink | None = None,
        base_topic: str = "edgecell",
    ) -> None:
        self._writers = writers
        self._table = table
        self._clock = clock
        self._events = events
        self._base = base_topic
        self._lock = asyncio.Lock()
        self._overrides: dict[str, Override] = {}
        self._states: dict[str, _TagState] = {}
        self._shadow_states: dict[str, _TagState] = {}
        self.stats = ActuatorStats()
        self.limits: Mapping[str, WriteLimits] = {}
        self.config = config
        self._heartbeats: list[_Heartbeat] = []
        # Writable tags with no good reading since the start: not written (heartbeats apart).
        self._read_once: set[str] = set()
        self._unread: set[str] = set()
        self.reconfigure(limits, config)

    # --- configuration ---------------------------------------------------------------------

    def reconfigure(self, limits: Mapping[str, WriteLimits], config: ActuationConfig) -> None:
        """A new config (reload): overrides of tags no longer writable are dropped, the state of
        tags whose limits changed starts afresh, heartbeat counters carry on."""
        old_limits, old_outputs = self.limits, self.config.outputs
        self.limits = dict(limits)
        self.config = config
        self._unread = {
            tag for tag, tag_limits in self.limits.items()
            if tag_limits.writable and tag not in self._read_once
        }
        for tag in list(self._overrides):
            if not self._writable(tag):
                log.warning("override_dropped", tag=tag, reason="tag no longer writable")
                del self._overrides[tag]
        for states in (self._states, self._shadow_states):
            for tag in list(states):
                if old_limits.get(tag) != self.limits.get(tag) or old_outputs.get(
                    tag
                ) != config.outputs.get(tag):
                    del states[tag]
        counters = {beat.tag: beat for beat in self._heartbeats}
        self._heartbeats = []
        for beat in config.heartbeat:
            previous = counters.get(beat.tag)
            self._heartbeats.append(
                _Heartbeat(
                    beat.tag,
                    beat.period,
                    beat.modulo,
                    counter=previous.counter if previous else 0,
                    due=previous.due if previous else -math.inf,
                    failing=previous.failing if previous else False,
                )
            )

    def _output(self, tag: str) -> MinOnOffConfig | None:
        """The equipment protection of a boolean tag, None when it has none."""
        output = self.config.outputs.get(tag)
        return output if output is not None and output.is_equipment else None

    def _writable(self, tag: str) -> bool:
        limits = self.limits.get(tag)
        return limits is not None and limits.writable

    def _driver(self, tag: str) -> tuple[Driver, str] | None:
        """The driver of the tag's device and the tag's name on it; None when not running."""
        device, _, name = tag.partition(".")
        try:
            return self._writers(device), name
        except KeyError:
            return None

    def _note_readings(self, snapshot: Mapping[str, Sample]) -> None:
        """Writable tags that have a good reading now have been read since the start."""
        if not self._unread:
            return
        for tag in [t for t in self._unread if self._present(snapshot, t) is not None]:
            self._unread.discard(tag)
            self._read_once.add(tag)

    def fallback(self, tag: str) -> OutputValue | None:
        """The configured fallback of a tag (None: released to the PLC's own control)."""
        limits = self.limits.get(tag)
        return None if limits is None else limits.fallback

    # --- operators ---------------------------------------------------------------------------

    def overrides(self) -> dict[str, Override]:
        return dict(self._overrides)

    def check_manual(self, tag: str, value: OutputValue, ttl: float) -> None:
        """Raise `ActuationRefusedError` (a subclass saying which check) unless an operator may
        write `value` to `tag` for `ttl` seconds."""
        if not self.config.manual_writes:
            raise ManualWritesDisabledError(
                "manual writes are disabled: set actuation.manual_writes: true to allow them"
            )
        limits = self.limits.get(tag)
        if limits is None:
            raise UnknownTagError(f"unknown tag {tag!r}")
        if not limits.writable:
            raise NotWritableError(f"{tag} is not declared writable")
        if not isinstance(value, bool):
            if not math.isfinite(value):
                raise OutOfRangeError(f"{value!r} is not a finite number")
            if limits.min is not None and value < limits.min:
                raise OutOfRangeError(f"{value:g} is below the min {limits.min:g} of {tag}")
            if limits.max is not None and value > limits.max:
                raise OutOfRangeError(f"{value:g} is above the max {limits.max:g} of {tag}")
        elif self._output(tag) is None and (limits.min is not None or limits.max is not None):
            raise OutOfRangeError(f"{tag} takes a number between its min and max, not {value}")
        if self._output(tag) is not None and not isinstance(value, bool):
            raise OutOfRangeError(f"{tag} switches equipment: write true or false")
        found = self._driver(tag)
        if found is not None:
            driver, name = found
            try:
                driver.check_write(name, value)
            except UnencodableValueError as exc:
                raise NotEncodableError(str(exc)) from None
        if ttl > self.config.manual_max_ttl:
            raise OutOfRangeError(
                f"ttl {format_duration(ttl)} is longer than actuation.manual_max_ttl "
                f"{format_duration(self.config.manual_max_ttl)}"
            )

    async def override(
        self, tag: str, value: OutputValue, ttl: float, *, by: str = "command"
    ) -> WriteResult:
        """An operator's write: checked (`check_manual`), then held for `ttl` seconds over every
        rule and written now through the same limits as a rule's value (ramped, deferred by
        equipment protection). A write refused by a check or by the device raises `WriteError`
        and changes nothing: an override it would have replaced (another operator's) is kept
        as it was, with its value and expiry."""
        self.check_manual(tag, value, ttl)
        async with self._lock:
            now = self._clock.monotonic()
            snapshot = self._table.snapshot()
            self._note_readings(snapshot)
            if tag in self._unread:
                raise NotReadYetError(
                    f"{tag} has not been read since the start: edgecell writes a tag only "
                    "after a good reading of it"
                )
            expires_ms = self._clock.wall_ms() + round(ttl * 1000)
            previous = self._overrides.get(tag)
            state = self._states.get(tag)
            holder = state.holder if state is not None else None
            self._overrides[tag] = Override(tag, value, now + ttl, expires_ms, by)
            self._check_verifications(snapshot, now)
            result = await self._apply_tags([TagDecision(tag)], snapshot, now, shadow=False)
            outcome = result[tag]
            if outcome.outcome in (Outcome.FAILED, Outcome.REFUSED):
                if previous is not None:
                    self._overrides[tag] = previous
                else:
                    del self._overrides[tag]
                self._states[tag].holder = holder  # nobody took the tag: nothing to release
                log.info(
                    "override_not_set", tag=tag, value=value, by=by, reason=outcome.reason,
                    kept=previous.by if previous is not None else None,
                )
                raise WriteError(outcome.reason)
            log.info("override_set", tag=tag, value=value, ttl_s=ttl, by=by)
            return outcome

    async def clear_override(self, tag: str, *, by: str = "command") -> bool:
        """End an operator's override now; the rules take the tag back next cycle. False when
        the tag had none."""
        async with self._lock:
            override = self._overrides.pop(tag, None)
            if override is None:
                return False
            self._publish(
                WriteResult(
                    tag,
                    Outcome.CLEARED,
                    f"command:{by}",
                    override.value,
                    None,
                    self._present(self._table.snapshot(), tag),
                    reason=f"override cleared by {by}",
                    ts=self._clock.wall_ms(),
                ),
                self._states,
            )
            return True

    # --- the cycle ----------------------------------------------------------------------------

    async def apply(
        self, decisions: Sequence[TagDecision], snapshot: Mapping[str, Sample], now: float
    ) -> tuple[dict[str, WriteResult], dict[str, WriteResult]]:
        """One cycle: check earlier writes' read-back, expire overrides, write the winners (and
        the overrides), compute what shadow rules would write, release tags nobody wants any
        more, keep the heartbeats alive. Returns the results by tag: real, shadow."""
        async with self._lock:
            self._note_readings(snapshot)
            self._check_verifications(snapshot, now)
            self._expire_overrides(snapshot, now)
            held = [d for d in decisions if d.winner is not None or d.tag in self._overrides]
            held += [TagDecision(t) for t in self._overrides if all(d.tag != t for d in held)]
            real = await self._apply_tags(
                held,
                snapshot,
                now,
                shadow=False,
            )
            shadow = await self._apply_tags(
                [
                    TagDecision(d.tag, winner=d.shadow, losers=d.losers)
                    for d in decisions
                    if d.shadow is not None
                ],
                snapshot,
                now,
                shadow=True,
            )
            self._release(real, snapshot, self._states)
            self._release(shadow, snapshot, self._shadow_states)
            await self._beat(now)
            return real, shadow

    async def _apply_tags(
        self,
        decisions: Sequence[TagDecision],
        snapshot: Mapping[str, Sample],
        now: float,
        *,
        shadow: bool,
    ) -> dict[str, WriteResult]:
        states = self._shadow_states if shadow else self._states
        results: dict[str, WriteResult] = {}
        plans: list[_Plan] = []
        for decision in decisions:
            tag = decision.tag
            override = None if shadow else self._overrides.get(tag)
            if override is not None:
                losers = tuple(p for p in (decision.winner, *decision.losers) if p is not None)
                source, rule, mode = f"command:{override.by}", None, "auto"
                requested: OutputValue = override.value
                reason = f"operator override by {override.by} until {override.expires_ms}"
            else:
                winner = decision.winner
                assert winner is not None  # callers pass decided tags only
                losers = decision.losers
                source = f"{'fallback' if winner.fallback else 'rule'}:{winner.rule}"
                rule, mode, requested = winner.rule, winner.mode, winner.value
                reason = winner.reason
            state = states.setdefault(tag, _TagState())
            state.holder = source
            planned = self._plan(
                tag, requested, snapshot, now, state, shadow=shadow, source=source, rule=rule,
                mode=mode, reason=reason,
            )
            if isinstance(planned, WriteResult):
                results[tag] = planned
            else:
                planned.overruled = losers
                if shadow:
                    results[tag] = self._result(planned, Outcome.SHADOW)
                    state.last_value, state.last_time = planned.value, now
                else:
                    plans.append(planned)
            if tag in results:
                results[tag] = _with_losers(results[tag], losers)
        for plan, error in zip(plans, await self._write_all(plans), strict=True):
            state = states[plan.tag]
            if error is None:
                self.stats.writes += 1
                state.last_value, state.last_time = plan.value, now
                state.pending = _Pending(
                    plan.value,
                    now + self.config.verify_timeout,
                    self._clock.wall_ms(),
                    plan.source,
                    plan.rule,
                )
                results[plan.tag] = self._result(plan, Outcome.WRITTEN)
            else:
                self.stats.failures += 1
                if plan.equipment_before is not None:
                    state.equipment = plan.equipment_before
                # Nothing to verify: the checks say what was checked, and that the write failed.
                plan.checks.pop("verify", None)
                plan.checks["write"] = "failed"
                results[plan.tag] = self._result(plan, Outcome.FAILED, error)
        for result in results.values():
            self._publish(result, states)
        return results

    def _result(self, plan: _Plan, outcome: Outcome, error: str = "") -> WriteResult:
        return WriteResult(
            plan.tag,
            outcome,
            plan.source,
            plan.requested,
            plan.value,
            plan.old,
            reason=error or plan.reason,
            rule=plan.rule,
            mode="shadow" if outcome is Outcome.SHADOW else plan.mode,
            clamps=plan.clamps,
            checks=plan.checks,
            overruled=plan.overruled,
            ts=self._clock.wall_ms(),
        )

    # --- the checks -----------------------------------------------------------------------

    def _plan(
        self,
        tag: str,
        requested: OutputValue,
        snapshot: Mapping[str, Sample],
        now: float,
        state: _TagState,
        *,
        shadow: bool,
        source: str,
        rule: str | None,
        mode: str,
        reason: str,
    ) -> _Plan | WriteResult:
        """The value the checks allow for `requested`, or the result that refuses or defers it."""
        old = self._present(snapshot, tag)

        def stop(outcome: Outcome, why: str, checks: dict[str, str]) -> WriteResult:
            if outcome is Outcome.REFUSED:
                self.stats.refusals += 1
            return WriteResult(
                tag, outcome, source, requested,
                old if outcome is Outcome.DEFERRED and isinstance(old, bool) else None,
                old, reason=why, rule=rule, mode="shadow" if shadow else mode, checks=checks,
                ts=self._clock.wall_ms(),
            )

        checks: dict[str, str] = {}
        limits = self.limits.get(tag)
        if limits is None:
            return stop(Outcome.REFUSED, f"unknown tag {tag}", {"writable": "unknown tag"})
        if not limits.writable:
            return stop(Outcome.REFUSED, f"{tag} is not declared writable", {"writable": "no"})
        checks["writable"] = "ok"
        if tag in self._unread:
            checks["read"] = "no reading yet"
            return stop(
                Outcome.DEFERRED,
                f"{tag} has not been read since the start: written once it has a good reading",
                checks,
            )
        checks["read"] = "ok"
        equipment = self._output(tag)
        before: MinOnOffTimes | None = None
        if isinstance(requested, bool):
            value: OutputValue = requested
            clamps: tuple[str, ...] = ()
            typed = self._fit_type(tag, value, limits, None, checks)
            if isinstance(typed, str):
                return stop(Outcome.REFUSED, typed, checks)
            if equipment is not None:
                block = self._equipment(tag, requested, old, state, now)
                before = copy.deepcopy(block)
                held = self._equipment_check(block, requested, now, shadow=shadow)
                if held:
                    checks["min_on_off"] = "deferred"
                    return stop(Outcome.DEFERRED, f"{held} (wanted {requested})", checks)
                checks["min_on_off"] = "ok"
        else:
            if equipment is not None:
                return stop(Outcome.REFUSED, f"{tag} switches equipment: needs true/false", checks)
            if not math.isfinite(requested):
                checks["range"] = "not a number"
                return stop(Outcome.REFUSED, f"{requested!r} is not a finite number", checks)
            limited = self._limit(
                tag, value=float(requested), limits=limits, old=old, state=state, now=now,
                checks=checks,
            )
            if isinstance(limited, str):
                return stop(Outcome.REFUSED, limited, checks)
            number, clamps, window = limited
            typed = self._fit_type(tag, number, limits, window, checks)
            if isinstance(typed, str):
                return stop(Outcome.REFUSED, typed, checks)
            value = typed
            if checks.get("type") == "rounded":
                clamps = (*clamps, "integer")
        pending = state.pending
        if (pending is not None and _same(pending.value, value, self._tolerance(tag))) or (
            pending is None and old is not None and _same(old, value, self._tolerance(tag))
        ):
            return WriteResult(
                tag, Outcome.UNCHANGED, source, requested, value, old, reason=reason, rule=rule,
                mode="shadow" if shadow else mode, clamps=clamps, checks=checks,
                ts=self._clock.wall_ms(),
            )
        if not shadow:
            checks["verify"] = "pending"
        return _Plan(
            tag, value, requested, old, source, rule, mode, reason, clamps, checks,
            equipment_before=before,
        )

    def _limit(
        self,
        tag: str,
        *,
        value: float,
        limits: WriteLimits,
        old: Value | None,
        state: _TagState,
        now: float,
        checks: dict[str, str],
    ) -> tuple[float, tuple[str, ...], tuple[float, float] | None] | str:
        """Clamp to min/max, then limit the move from the present value by max_step and
        max_rate. min/max always win: a device left outside them is brought back inside.
        Returns the value, the clamps, and the move allowed (where it starts, how far it may
        go) when max_step or max_rate holds; or why nothing may be written."""
        clamps: list[str] = []
        if limits.min is not None or limits.max is not None:
            checks["range"] = "ok"
        if limits.min is not None and value < limits.min:
            value, checks["range"] = limits.min, "clamped"
            clamps.append(f"min {limits.min:g}")
        if limits.max is not None and value > limits.max:
            value, checks["range"] = limits.max, "clamped"
            clamps.append(f"max {limits.max:g}")
        if limits.max_step is None and limits.max_rate is None:
            return value, tuple(clamps), None
        reference = self._reference(tag, old, state, now)
        if reference is None:
            checks["max_step" if limits.max_step is not None else "max_rate"] = "no present value"
            return (
                f"the present value of {tag} is unknown: its max_step/max_rate cannot be "
                "kept (no good reading yet)"
            )
        start, since = reference
        limiter = RateLimiter(
            RateLimiterConfig(
                max_step=limits.max_step,
                max_rate_per_s=None if limits.max_rate is None else limits.max_rate / 60.0,
            )
        )
        limiter.reset(since, start)
        limited = limiter.update(now, value)
        allowed = min(
            math.inf if limits.max_step is None else limits.max_step,
            math.inf if limits.max_rate is None else limits.max_rate / 60.0 * (now - since),
        )
        if limits.max_step is not None:
            checks["max_step"] = "ok"
        if limits.max_rate is not None:
            checks["max_rate"] = "ok"
        if limited != value:
            by_rate = (
                math.inf if limits.max_rate is None else limits.max_rate / 60.0 * (now - since)
            )
            if limits.max_step is not None and limits.max_step <= by_rate:
                checks["max_step"] = "limited"
                clamps.append(f"max_step {limits.max_step:g}")
            else:
                checks["max_rate"] = "limited"
                clamps.append(f"max_rate {limits.max_rate:g}/min")
            value = limited
        if limits.min is not None and value < limits.min:
            value = limits.min
        if limits.max is not None and value > limits.max:
            value = limits.max
        return value, tuple(clamps), (start, allowed)

    def _fit_type(
        self,
        tag: str,
        value: OutputValue,
        limits: WriteLimits,
        window: tuple[float, float] | None,
        checks: dict[str, str],
    ) -> OutputValue | str:
        """The value as the tag's type holds it, or why the type cannot hold it. A number for
        an integer tag is rounded to the nearest whole step inside min/max (and inside the
        move `window` allows); an operator's value was checked whole before (`check_manual`),
        so only the steps of a ramp towards it are ever rounded. Nothing is checked when the
        device is not running (the write fails and says so)."""
        found = self._driver(tag)
        if found is None:
            return value
        driver, name = found
        rounded = False
        if not isinstance(value, bool):
            steps = driver.whole_steps(name)
            if steps is not None:
                snapped = snap_to_steps(value, steps, low=limits.min, high=limits.max, move=window)
                if snapped is None:
                    checks["type"] = "no whole step"
                    return no_whole_step(tag, steps, limits, window)
                rounded = snapped != value
                value = snapped
        try:
            driver.check_write(name, value)
        except UnencodableValueError as exc:
            checks["type"] = "refused"
            return str(exc)
        checks["type"] = "rounded" if rounded else "ok"
        return value

    def _reference(
        self, tag: str, old: Value | None, state: _TagState, now: float
    ) -> tuple[float, float] | None:
        """Where a move starts from, and since when: our last write while the device shows it
        (or has not been read since), else the device's present value one cycle ago."""
        present = _as_number(old)
        last = _as_number(state.last_value)
        if last is not None and state.last_time is not None and (
            state.pending is not None
            or present is None
            or _same(present, last, self._tolerance(tag))
        ):
            return last, state.last_time
        if present is not None:
            return present, now - self.config.cycle
        return None

    def _equipment(
        self, tag: str, want: bool, old: Value | None, state: _TagState, now: float
    ) -> MinOnOffTimes:
        """The tag's equipment protection, brought up to date with the state read back."""
        config = self._output(tag)
        assert config is not None  # called for equipment tags only
        present = old if isinstance(old, bool) else None
        block = state.equipment
        if block is None:
            # Not known how long it has been in this state: the protection times run from now.
            start = present if present is not None else not want
            block = state.equipment = MinOnOffTimes(config, state=start, since=now)
        elif present is not None and state.pending is None and present != block.state:
            block.observe(now, present)  # switched by someone else (the PLC, the panel)
        return block

    @staticmethod
    def _equipment_check(block: MinOnOffTimes, want: bool, now: float, *, shadow: bool) -> str:
        """'' when equipment may be switched to `want` now, else what holds it and until when.
        A granted switch is recorded in the block (not in shadow)."""
        if shadow:
            at, held_by = block.allowed_at(want)
            return "" if now >= at else f"{held_by}: allowed in {format_duration(at - now)}"
        decision = block.request(now, want)
        if decision.deferred_until is None:
            return ""
        return f"{decision.reason}: allowed in {format_duration(decision.deferred_until - now)}"

    def _tolerance(self, tag: str) -> float:
        output: OutputConfig | None = self.config.outputs.get(tag)
        return output.tolerance if output is not None else 0.0

    @staticmethod
    def _present(snapshot: Mapping[str, Sample], tag: str) -> Value | None:
        sample = snapshot.get(tag)
        if sample is None or sample.quality is not Quality.GOOD:
            return None
        return sample.value

    # --- writing ----------------------------------------------------------------------------

    async def _write_all(self, plans: Sequence[_Plan]) -> list[str | None]:
        """Send the writes, one device's in order, devices side by side; the error of each
        (None: the device accepted it)."""
        errors: list[str | None] = [None] * len(plans)
        by_device: dict[str, list[int]] = {}
        for index, plan in enumerate(plans):
            by_device.setdefault(plan.tag.split(".", 1)[0], []).append(index)

        async def device_writes(indexes: list[int]) -> None:
            for index in indexes:
                plan = plans[index]
                errors[index] = await self._write(plan.tag, plan.value)

        if len(by_device) == 1:
            await device_writes(next(iter(by_device.values())))
        elif by_device:
            async with asyncio.TaskGroup() as group:
                for device, indexes in by_device.items():
                    group.create_task(device_writes(indexes), name=f"write:{device}")
        return errors

    async def _write(self, tag: str, value: Value) -> str | None:
        device, name = tag.split(".", 1)
        try:
            driver = self._writers(device)
        except KeyError:
            return f"device {device} is not running"
        try:
            async with asyncio.timeout(self.config.write_timeout):
                await driver.write(name, value)
        except WriteError as exc:
            return str(exc)
        except TimeoutError:
            return f"no answer within {format_duration(self.config.write_timeout)}"
        except Exception as exc:  # a driver bug must not stop the control loop
            log.exception("driver_write_crashed", tag=tag)
            return f"driver error: {exc!r}"
        return None

    # --- after the writes ------------------------------------------------------------------

    def _check_verifications(self, snapshot: Mapping[str, Sample], now: float) -> None:
        for tag, state in self._states.items():
            pending = state.pending
            if pending is None:
                continue
            sample = snapshot.get(tag)
            # Strictly later: a reading taken in the same millisecond may predate the write.
            fresh = sample is not None and sample.read_ts > pending.written_ms
            if (
                fresh
                and sample is not None
                and sample.quality is Quality.GOOD
                and _same(sample.value, pending.value, self._tolerance(tag))
            ):
                state.pending = None
                log.debug("write_verified", tag=tag, value=pending.value)
                continue
            if now < pending.deadline:
                continue
            state.pending = None
            self.stats.verify_failures += 1
            if not fresh or sample is None:
                why = "no reading of the tag since the write"
            elif sample.quality is not Quality.GOOD:
                why = f"its reading is {sample.quality.value}: {sample.reason}"
            else:
                why = f"it reads {sample.value!r}"
            self._publish(
                WriteResult(
                    tag,
                    Outcome.VERIFY_FAILED,
                    pending.source,
                    pending.value,
                    pending.value,
                    sample.value if sample is not None else None,
                    reason=(
                        f"wrote {pending.value!r} but after "
                        f"{format_duration(self.config.verify_timeout)} {why}"
                    ),
                    rule=pending.rule,
                    checks={"verify": "failed"},
                    ts=self._clock.wall_ms(),
                ),
                self._states,
            )

    def _expire_overrides(self, snapshot: Mapping[str, Sample], now: float) -> None:
        for tag, override in list(self._overrides.items()):
            if now >= override.expires_at:
                del self._overrides[tag]
                self._publish(
                    WriteResult(
                        tag,
                        Outcome.EXPIRED,
                        f"command:{override.by}",
                        override.value,
                        None,
                        self._present(snapshot, tag),
                        reason=f"override by {override.by} expired: the rules take the tag back",
                        ts=self._clock.wall_ms(),
                    ),
                    self._states,
                )

    def _release(
        self,
        results: Mapping[str, WriteResult],
        snapshot: Mapping[str, Sample],
        states: dict[str, _TagState],
    ) -> None:
        """Tags held last cycle that no rule or override holds now: published once."""
        for tag, state in states.items():
            if tag in results or state.holder is None:
                continue
            holder, state.holder = state.holder, None
            self._publish(
                WriteResult(
                    tag,
                    Outcome.RELEASED,
                    holder,
                    None,
                    None,
                    self._present(snapshot, tag),
                    reason="no rule proposes a value: the tag is left to the PLC",
                    rule=holder.split(":", 1)[1] if not holder.startswith("command:") else None,
                    mode="shadow" if states is self._shadow_states else "auto",
                    ts=self._clock.wall_ms(),
                ),
                states,
            )

    async def _beat(self, now: float) -> None:
        # Half a cycle of slack: a cycle that starts a little early still beats on time.
        slack = self.config.cycle / 2
        due = [beat for beat in self._heartbeats if now + slack >= beat.due]
        for beat in due:
            # On the grid of the first beat; after a stall the grid restarts, beats never queue.
            following = beat.due + beat.period
            beat.due = following if following + slack > now else now + beat.period
            beat.counter = (beat.counter + 1) % beat.modulo
            error = await self._write(beat.tag, beat.counter)
            self.stats.heartbeats += 1
            if error is not None:
                self.stats.heartbeat_failures += 1
            if (error is not None) != beat.failing:
                beat.failing = error is not None
                # Published on a change only: a heartbeat every second is not news.
                self._publish(
                    WriteResult(
                        beat.tag,
                        Outcome.FAILED if error else Outcome.WRITTEN,
                        "heartbeat",
                        beat.counter,
                        beat.counter,
                        None,
                        reason=error or "heartbeat written again",
                        ts=self._clock.wall_ms(),
                    ),
                    None,
                )

    def _publish(self, result: WriteResult, states: dict[str, _TagState] | None) -> None:
        repeats = 0
        if states is not None:
            state = states.setdefault(result.tag, _TagState())
            if result.outcome is Outcome.UNCHANGED:  # not an event: nothing was attempted
                state.last_event = _signature(result)
                return
            now = self._clock.monotonic()
            if result.outcome in _ALWAYS_PUBLISHED:
                state.last_event = None
            else:
                signature = _signature(result)
                if signature == state.last_event and not (
                    result.outcome is Outcome.FAILED
                    and now - state.published_at >= REPEAT_SUMMARY
                ):
                    state.repeats += 1
                    return
                state.last_event = signature
            repeats, state.repeats = state.repeats, 0
            state.published_at = now
        event = result.event(repeats)
        level = "warning" if result.outcome in (Outcome.FAILED, Outcome.VERIFY_FAILED) else "info"
        getattr(log, level)(
            "write_" + result.outcome.value,
            tag=result.tag,
            source=result.source,
            rule=result.rule,
            mode=result.mode,
            old=result.old,
            requested=result.requested,
            new=result.value,
            clamps=list(result.clamps) or None,
            reason=result.reason,
            repeats=repeats or None,
        )
        if self._events is not None:
            self._events.publish_event(topics.write_events(self._base), topics.encode(event))


def _signature(result: WriteResult) -> tuple[Any, ...]:
    """What makes two events of a tag the same event. A failure is the same failure whatever
    value it was for: a rule that keeps proposing while its device is down repeats one event."""
    value = None if result.outcome is Outcome.FAILED else result.value
    return (result.outcome, result.source, result.rule, value, result.reason)


def snap_to_steps(
    value: float,
    steps: WholeSteps,
    *,
    low: float | None,
    high: float | None,
    move: tuple[float, float] | None = None,
) -> float | None:
    """The whole step nearest to `value` (halves go towards the start of the move, else down)
    that lies within low..high and, when `move` = (start, allowed) is given, no further than
    `allowed` from start. From a start outside low..high, min/max win over the move (as in
    `_limit`). None when no step fits."""
    origin, step = steps.origin, steps.step
    index = (value - origin) / step
    slack = 1e-9 * max(1.0, abs(value))

    def at(n: int) -> float:
        return float(f"{origin + n * step:.12g}")  # 0.1 * 3 is 0.30000000000000004

    candidates = {at(n) for n in (math.floor(index), math.ceil(index))}
    inside = [
        c for c in candidates
        if (low is None or c >= low - slack) and (high is None or c <= high + slack)
    ]
    start = move[0] if move is not None else None
    inside.sort(key=lambda c: (abs(c - value), abs(c - start) if start is not None else c))
    if move is None or not inside:
        return inside[0] if inside else None
    allowed = move[1]
    gentle = [c for c in inside if abs(c - move[0]) <= allowed + slack]
    if gentle:
        return gentle[0]
    outside = (low is not None and move[0] < low) or (high is not None and move[0] > high)
    return inside[0] if outside else None


def no_whole_step(
    tag: str, steps: WholeSteps, limits: WriteLimits, window: tuple[float, float] | None
) -> str:
    """Why no whole step of an integer tag may be written."""
    if window is not None and window[1] < steps.step:
        return (
            f"{tag} takes whole steps of {steps.step:g}: max_step/max_rate allow a move of "
            f"{window[1]:g} this cycle, less than one step"
        )
    return f"{tag} takes whole steps of {steps.step:g}: none lies within its min and max"


def _with_losers(result: WriteResult, losers: tuple[Proposal, ...]) -> WriteResult:
    if not losers or result.overruled:
        return result
    return WriteResult(
        result.tag, result.outcome, result.source, result.requested, result.value, result.old,
        reason=result.reason, rule=result.rule, mode=result.mode, clamps=result.clamps,
        checks=result.checks, overruled=losers, ts=result.ts,
    )


def _as_number(value: Value | OutputValue | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _same(a: Value | OutputValue | None, b: Value | OutputValue | None, tolerance: float) -> bool:
    """Equal for a read-back: bools exactly (0/1 count as false/true), numbers within the tag's
    tolerance or float32 precision."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is not None and b is not None and bool(a) == bool(b) and (
            isinstance(a, bool | int) and isinstance(b, bool | int)
        )
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return False
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=max(tolerance, 1e-9))

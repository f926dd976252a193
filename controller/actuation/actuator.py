"""The actuator: the one object that writes to devices. It gives the checks (checks.py) each
tag's state (state.py), sends the writes they allow through the drivers, verifies them on the
next readings, holds operators' overrides, beats the heartbeats, and publishes every attempt
on `{base}/events/writes` and in the log."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from controller.actuation import checks
from controller.actuation.checks import Held, Plan, Request, TagSetup
from controller.actuation.outcomes import (
    NotReadYetError,
    Outcome,
    TagDecision,
    WriteResult,
)
from controller.actuation.state import (
    ActuatorStats,
    FirstReadings,
    Heartbeat,
    Override,
    Pending,
    TagState,
    present,
    to_publish,
    verification,
)
from controller.clock import Clock
from controller.configtypes import WriteLimits, format_duration
from controller.model import Sample, Value, WriteError
from controller.mqtt import topics
from controller.rules.common import OutputValue
from controller.rules.config import ActuationConfig, OutputConfig
from controller.rules.cycling import MinOnOffConfig
from controller.tagtable import TagTable
from drivers.base import Driver, WholeSteps

log = structlog.get_logger(__name__)

# The device driver for a device name (the runtime's `driver(name)`); KeyError when not running.
Writers = Callable[[str], Driver]


class EventSink(Protocol):
    """Where write events and retained rule states go (the MQTT publisher implements it)."""

    def publish_event(self, topic: str, payload: bytes) -> None: ...

    def publish_retained(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverValueType:
    """The checks' `ValueType` of one tag: its driver's answers, without I/O."""

    driver: Driver
    name: str

    def check(self, value: OutputValue) -> None:
        self.driver.check_write(self.name, value)

    def steps(self) -> WholeSteps | None:
        return self.driver.whole_steps(self.name)


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
        self._states: dict[str, TagState] = {}
        self._shadow_states: dict[str, TagState] = {}
        self.stats = ActuatorStats()
        self.limits: Mapping[str, WriteLimits] = {}
        self.config = config
        self._heartbeats: list[Heartbeat] = []
        # Writable tags with no good reading since the start are not written (heartbeats apart).
        self._first_readings = FirstReadings()
        self.reconfigure(limits, config)

    # --- configuration ---------------------------------------------------------------------

    def reconfigure(self, limits: Mapping[str, WriteLimits], config: ActuationConfig) -> None:
        """A new config (reload): overrides of tags no longer writable are dropped, the state of
        tags whose limits changed starts afresh, heartbeat counters carry on."""
        old_limits, old_outputs = self.limits, self.config.outputs
        self.limits = dict(limits)
        self.config = config
        self._first_readings.expect(t for t, lim in self.limits.items() if lim.writable)
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
                Heartbeat(
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

    def _tolerance(self, tag: str) -> float:
        output: OutputConfig | None = self.config.outputs.get(tag)
        return output.tolerance if output is not None else 0.0

    def _refresh(self, tag: str) -> float | None:
        output: OutputConfig | None = self.config.outputs.get(tag)
        return output.refresh if output is not None else None

    def _setup(self, tag: str) -> TagSetup:
        """What the checks know of `tag` now."""
        device, _, name = tag.partition(".")
        try:
            value_type: DriverValueType | None = DriverValueType(self._writers(device), name)
        except KeyError:
            value_type = None
        return TagSetup(
            self.limits.get(tag),
            equipment=self._output(tag),
            tolerance=self._tolerance(tag),
            cycle=self.config.cycle,
            value_type=value_type,
            read=self._first_readings.read(tag),
            refresh=self._refresh(tag),
        )

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
        checks.check_manual(tag, value, ttl, config=self.config, setup=self._setup(tag))

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
            self._first_readings.note(snapshot)
            if not self._first_readings.read(tag):
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

    def record_refusal(
        self, tag: str, value: OutputValue | None, reason: str, *, by: str = "command"
    ) -> None:
        """A manual write refused before it reached the cycle (by `check_manual`, or by the
        command's own reading of its payload): published on `{base}/events/writes` with outcome
        `refused`, as a refusal inside the cycle is. Protocols without an answer channel
        (Sparkplug DCMD) report their refusals here."""
        self.stats.refusals += 1
        self._publish(
            WriteResult(
                tag,
                Outcome.REFUSED,
                f"command:{by}",
                value,
                None,
                present(self._table.snapshot(), tag),
                reason=reason,
                checks={"command": "refused"},
                ts=self._clock.wall_ms(),
            ),
            None,
        )

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
                    present(self._table.snapshot(), tag),
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
            self._first_readings.note(snapshot)
            self._check_verifications(snapshot, now)
            self._expire_overrides(snapshot, now)
            held = [d for d in decisions if d.winner is not None or d.tag in self._overrides]
            held += [TagDecision(t) for t in self._overrides if all(d.tag != t for d in held)]
            real = await self._apply_tags(held, snapshot, now, shadow=False)
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

    def _request(self, decision: TagDecision, *, shadow: bool) -> Request:
        """What is asked of the tag: the operator's override, else the winning proposal."""
        override = None if shadow else self._overrides.get(decision.tag)
        if override is not None:
            return Request(
                decision.tag, override.value, f"command:{override.by}",
                reason=f"operator override by {override.by} until {override.expires_ms}",
            )
        winner = decision.winner
        assert winner is not None  # callers pass decided tags only
        source = f"{'fallback' if winner.fallback else 'rule'}:{winner.rule}"
        return Request(
            decision.tag, winner.value, source,
            rule=winner.rule, mode=winner.mode, reason=winner.reason, shadow=shadow,
        )

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
        plans: list[Plan] = []
        for decision in decisions:
            tag = decision.tag
            request = self._request(decision, shadow=shadow)
            if request.source.startswith("command:"):
                losers = tuple(p for p in (decision.winner, *decision.losers) if p is not None)
            else:
                losers = decision.losers
            state = states.setdefault(tag, TagState())
            state.holder = request.source
            old = present(snapshot, tag)
            planned = checks.plan(request, self._setup(tag), state, old, now)
            if isinstance(planned, Held):
                if planned.outcome is Outcome.REFUSED:
                    self.stats.refusals += 1
                results[tag] = self._held(request, planned, old)
            else:
                planned.overruled = losers
                if shadow:
                    results[tag] = self._result(planned, Outcome.SHADOW)
                    state.last_value, state.last_time = planned.value, now
                else:
                    plans.append(planned)
            if tag in results:
                results[tag] = results[tag].with_losers(losers)
        for plan, error in zip(plans, await self._write_all(plans), strict=True):
            state = states[plan.tag]
            if error is None:
                if plan.checks.get("refresh") == "due":
                    self.stats.refreshes += 1
                else:
                    self.stats.writes += 1
                state.last_value, state.last_time = plan.value, now
                state.pending = Pending(
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
            if result.outcome is Outcome.WRITTEN and result.checks.get("refresh") == "due":
                # A value already in place written again: counted (stats.refreshes), not news.
                log.debug("write_refreshed", tag=result.tag, value=result.value)
                continue
            self._publish(result, states)
        return results

    def _held(self, request: Request, held: Held, old: Value | None) -> WriteResult:
        return WriteResult(
            request.tag, held.outcome, request.source, request.value, held.value, old,
            reason=held.reason, rule=request.rule,
            mode="shadow" if request.shadow else request.mode,
            clamps=held.clamps, checks=held.checks, ts=self._clock.wall_ms(),
        )

    def _result(self, plan: Plan, outcome: Outcome, error: str = "") -> WriteResult:
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

    # --- writing ----------------------------------------------------------------------------

    async def _write_all(self, plans: Sequence[Plan]) -> list[str | None]:
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
            verdict = verification(pending, sample, now, self._tolerance(tag))
            if verdict is None:
                continue
            state.pending = None
            if verdict is True:
                log.debug("write_verified", tag=tag, value=pending.value)
                continue
            self.stats.verify_failures += 1
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
                        f"{format_duration(self.config.verify_timeout)} {verdict}"
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
                        present(snapshot, tag),
                        reason=f"override by {override.by} expired: the rules take the tag back",
                        ts=self._clock.wall_ms(),
                    ),
                    self._states,
                )

    def _release(
        self,
        results: Mapping[str, WriteResult],
        snapshot: Mapping[str, Sample],
        states: dict[str, TagState],
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
                    present(snapshot, tag),
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

    def _publish(self, result: WriteResult, states: dict[str, TagState] | None) -> None:
        repeats = 0
        if states is not None:
            state = states.setdefault(result.tag, TagState())
            counted = to_publish(state, result, self._clock.monotonic())
            if counted is None:
                return
            repeats = counted
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
            event = result.event(repeats)
            self._events.publish_event(topics.write_events(self._base), topics.encode(event))

"""The rule engine: on a fixed cycle, one consistent snapshot of the tags, every enabled rule's
proposals, arbitration per tag, and the winners handed to the actuator.

Before a rule runs the engine checks its inputs: a stale or bad input stops the rule and its
outputs go to their configured fallback (or are released to the PLC). The fallback is for a
controller that lost its inputs: a rule whose inputs have not yet all been fresh and good since
the start proposes nothing, so a start is bumpless (read first, then act). A cycle that overruns
its period is measured and reported, never queued: the next cycle starts on the next free slot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from controller.actuation import Actuator, EventSink, Outcome, TagDecision, WriteResult
from controller.alarms import AlarmBoard
from controller.clock import Clock
from controller.configtypes import format_duration
from controller.model import Quality, Sample
from controller.mqtt import topics
from controller.rules.common import RULE_MODES, OutputValue, RuleMode
from controller.rules.memory import RememberingRule, RuleMemory
from controller.rules.rule import Now, Proposal, Rule, RuleInputError
from controller.tagtable import TagTable

log = structlog.get_logger(__name__)

# Retained rule states are published at once when something an operator cares about changes
# (mode, active, stopped, outcomes); changes of numbers only, at most this often.
STATE_INTERVAL = 10.0


class UnknownRuleError(KeyError):
    """No rule has this name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown rule"


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did, for tests, co-simulation and the health topic."""

    now: Now
    proposals: tuple[Proposal, ...]
    decisions: tuple[TagDecision, ...]
    results: Mapping[str, WriteResult]
    shadow: Mapping[str, WriteResult]
    stopped: Mapping[str, str]  # rule -> why it did not run (stale or bad input, error)
    duration_s: float


@dataclass
class EngineStats:
    """Counts for the health topic."""

    cycles: int = 0
    overruns: int = 0
    skipped_cycles: int = 0
    rule_errors: int = 0
    last_cycle_ms: float = 0.0
    max_cycle_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "overruns": self.overruns,
            "skipped_cycles": self.skipped_cycles,
            "rule_errors": self.rule_errors,
            "last_cycle_ms": round(self.last_cycle_ms, 3),
            "max_cycle_ms": round(self.max_cycle_ms, 3),
        }


@dataclass
class _RuleStatus:
    running: bool = False  # evaluated last cycle (a restart follows a stop)
    # Its inputs have all been fresh and good at least once since the start: from then on a
    # stop sends its outputs to their fallback; before, it proposes nothing.
    ready: bool = False
    problem: str = ""  # why it is stopped ("" while it runs)
    mode_set_by: str = "config"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str = ""
    active: bool = False
    signature: tuple[Any, ...] | None = None
    published_at: float = -math.inf
    payload: dict[str, Any] | None = None


def arbitrate(proposals: Sequence[Proposal]) -> list[TagDecision]:
    """Per tag: the highest priority wins, ties go to the proposal listed first (rule order).
    A shadow proposal never takes a tag from an auto one: the auto winner is the first auto
    proposal; a shadow proposal on top is what would have won (published, not written)."""
    by_tag: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        by_tag.setdefault(proposal.tag, []).append(proposal)
    decisions: list[TagDecision] = []
    for tag, group in by_tag.items():
        ordered = sorted(group, key=lambda p: -p.priority)  # stable: rule order breaks ties
        top = ordered[0]
        shadow = top if top.mode == "shadow" else None
        winner = next((p for p in ordered if p.mode == "auto"), None)
        losers = tuple(p for p in ordered if p is not winner and p is not shadow)
        decisions.append(TagDecision(tag, winner=winner, shadow=shadow, losers=losers))
    return decisions


class RuleEngine:
    """Runs the rules. `await cycle()` runs one cycle now (lock-step co-simulation);
    `run()` runs cycles every `period` seconds of the clock until cancelled."""

    def __init__(
        self,
        rules: Sequence[Rule],
        table: TagTable,
        actuator: Actuator,
        clock: Clock,
        *,
        period: float = 1.0,
        events: EventSink | None = None,
        base_topic: str = "edgecell",
        alarms: AlarmBoard | None = None,
        memory: RuleMemory | None = None,
    ) -> None:
        self._table = table
        # What rules learned, kept across restarts; the revision each rule's file was saved at.
        self.memory = memory
        self._saved_revision: dict[str, int] = {}
        self.alarms = alarms
        self._actuator = actuator
        self._clock = clock
        self.period = period
        self._events = events
        self._base = base_topic
        self._rules: list[Rule] = []
        self._status: dict[str, _RuleStatus] = {}
        self.stats = EngineStats()
        self._overrunning = False
        self.replace_rules(rules)

    # --- rules and modes ------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def rule(self, name: str) -> Rule:
        for rule in self._rules:
            if rule.name == name:
                return rule
        raise UnknownRuleError(f"unknown rule {name!r}")

    def set_mode(self, name: str, mode: RuleMode, *, by: str = "command") -> None:
        """Switch a rule to auto, shadow or off; kept across reloads unless the config changes
        that rule's mode."""
        if mode not in RULE_MODES:
            raise ValueError(f"mode must be one of {', '.join(RULE_MODES)}, not {mode!r}")
        rule = self.rule(name)
        if rule.mode != mode:
            log.info("rule_mode", rule=name, mode=mode, previous=rule.mode, by=by)
        rule.mode = mode
        status = self._status[name]
        status.mode_set_by = by
        status.signature = None  # publish the new mode at the next cycle

    def replace_rules(self, rules: Sequence[Rule]) -> None:
        """Take a new set of rules (a reload). A rule whose config is unchanged keeps its state
        (a PID its integrator) and a mode an operator gave it; removed rules' retained states
        are cleared and their outputs released at the next cycle."""
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        old = {rule.name: rule for rule in self._rules}
        kept: list[Rule] = []
        for rule in rules:
            previous = old.get(rule.name)
            same = previous is not None and _config_of(previous) == _config_of(rule)
            if previous is not None and same and _config_of(rule) is not None:
                kept.append(previous)
                continue
            status = self._status.get(rule.name)
            if previous is not None and status is not None:
                if status.mode_set_by != "config" and _mode_of(previous) == _mode_of(rule):
                    rule.mode = previous.mode  # the operator's mode outlives the reload
                else:
                    status.mode_set_by = "config"
                status.running = False
                status.signature = None
            kept.append(rule)
        for name in set(old) - set(names):
            del self._status[name]
            if self._events is not None:
                self._events.publish_retained(topics.rule_state(self._base, name), b"")
        self._rules = kept
        kept_ids = {id(rule) for rule in kept if old.get(rule.name) is rule}
        for rule in kept:
            self._status.setdefault(rule.name, _RuleStatus())
            if isinstance(rule, RememberingRule) and id(rule) not in kept_ids:
                if self.memory is not None:
                    self.memory.restore(rule)  # a new rule, or one whose config changed
                self._saved_revision[rule.name] = rule.memory_revision
        for name in set(self._saved_revision) - set(names):
            del self._saved_revision[name]

    def _remember(self, wall_ms: int) -> None:
        """Save what rules learned this cycle (a rare event: a night's minimum, not a sample)."""
        if self.memory is None:
            return
        for rule in self._rules:
            if not isinstance(rule, RememberingRule):
                continue
            if self._saved_revision.get(rule.name) != rule.memory_revision:
                # Recorded even when the disk refused: one log line, retried at the next change.
                self._saved_revision[rule.name] = rule.memory_revision
                self.memory.save(rule, wall_ms)

    def republish(self) -> None:
        """Publish every rule's state again at the next cycle (a rebirth)."""
        for status in self._status.values():
            status.signature = None

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Cycles on a fixed grid, one every `period` seconds of the clock whatever a cycle
        took. An overrun skips the slots it missed (counted in the stats) and is logged when
        it starts and when it ends; `period` may change between cycles (a reload)."""
        clock = self._clock
        next_at = clock.monotonic()
        while True:
            await clock.sleep_until(next_at)
            await self.cycle()
            next_at += self.period
            late = clock.monotonic() - next_at
            if late > 0:
                missed = math.ceil(late / self.period)
                self.stats.overruns += 1
                self.stats.skipped_cycles += missed
                next_at += missed * self.period
                if not self._overrunning:
                    self._overrunning = True
                    log.warning(
                        "rule_cycle_overrun",
                        period_s=self.period,
                        late_s=round(late, 3),
                        skipped=missed,
                    )
            elif self._overrunning:
                self._overrunning = False
                log.info("rule_cycle_on_time", period_s=self.period)

    async def cycle(self) -> CycleReport:
        """One cycle now."""
        started = time.perf_counter()  # the cost of a cycle is a physical measurement
        clock = self._clock
        now = Now(clock.monotonic(), clock.wall_ms())
        snapshot = self._table.snapshot()
        proposals: list[Proposal] = []
        stopped: dict[str, str] = {}
        for rule in self._rules:
            made, problem = self._run_rule(rule, snapshot, now)
            if problem:
                stopped[rule.name] = problem
            proposals.extend(made)
        decisions = arbitrate(proposals)
        results, shadow = await self._actuator.apply(decisions, snapshot, now.monotonic)
        for rule in self._rules:
            self._settle(rule, proposals, results, shadow, now)
        if self.alarms is not None:
            # The rules' alarm conditions after this cycle: raised, still active, or cleared.
            self.alarms.observe_rules(self._rules, now.wall_ms)
        self._remember(now.wall_ms)
        duration = time.perf_counter() - started
        stats = self.stats
        stats.cycles += 1
        stats.last_cycle_ms = duration * 1000
        stats.max_cycle_ms = max(stats.max_cycle_ms, stats.last_cycle_ms)
        return CycleReport(
            now, tuple(proposals), tuple(decisions), results, shadow, stopped, duration
        )

    def _run_rule(
        self, rule: Rule, snapshot: Mapping[str, Sample], now: Now
    ) -> tuple[list[Proposal], str]:
        """The rule's proposals (with its name and mode), or its fallbacks and why it stopped."""
        status = self._status[rule.name]
        if rule.mode == "off":
            if status.running:
                log.info("rule_off", rule=rule.name)
            status.running, status.problem = False, ""
            return [], ""
        problem = self._input_problem(rule, snapshot, now)
        made: list[Proposal] = []
        if not problem:
            status.ready = True
            try:
                if not status.running:
                    rule.restart(snapshot, now)
                made = rule.evaluate(snapshot, now)
            except RuleInputError as exc:
                problem = str(exc)
            except Exception as exc:  # a rule's bug stops that rule, not the engine
                self.stats.rule_errors += 1
                problem = f"rule error: {exc!r}"
                if status.problem != problem:
                    log.exception("rule_crashed", rule=rule.name)
        if problem and not status.ready:
            # Not read yet since the start: nothing is proposed, the PLC keeps its outputs.
            if status.problem != problem:
                log.info("rule_waiting", rule=rule.name, mode=rule.mode, reason=problem)
            status.running, status.problem = False, problem
        elif problem:
            if status.problem != problem:
                log.warning("rule_stopped", rule=rule.name, mode=rule.mode, reason=problem)
            status.running, status.problem = False, problem
            made = self._fallbacks(rule, problem)
        else:
            if status.problem:
                log.info("rule_resumed", rule=rule.name, mode=rule.mode)
            status.running, status.problem = True, ""
        out: list[Proposal] = []
        for proposal in made:
            if proposal.tag not in rule.outputs:
                log.error("rule_undeclared_output", rule=rule.name, tag=proposal.tag)
                continue
            out.append(replace(proposal, rule=rule.name, mode=rule.mode))
        return out, problem

    def _fallbacks(self, rule: Rule, problem: str) -> list[Proposal]:
        out: list[Proposal] = []
        for tag in rule.outputs:
            value = self._actuator.fallback(tag)
            if value is not None:
                reason = f"fallback: rule {rule.name} stopped: {problem}"
                out.append(Proposal(tag, value, rule.priority, reason, fallback=True))
        return out

    def _input_problem(self, rule: Rule, snapshot: Mapping[str, Sample], now: Now) -> str:
        """Why the rule may not run now ('' when its inputs are fresh and good)."""
        for tag, max_age in rule.inputs.items():
            sample = snapshot.get(tag)
            if sample is None:
                return f"input {tag} has no reading yet"
            if sample.quality is Quality.BAD or (
                sample.quality is Quality.UNCERTAIN and not rule.accept_uncertain
            ):
                why = f": {sample.reason}" if sample.reason else ""
                return f"input {tag} is {sample.quality.value}{why}"
            if max_age is not None:
                age = (now.wall_ms - sample.read_ts) / 1000
                if age > max_age:
                    return (
                        f"input {tag} is stale: last reading {format_duration(round(age, 1))} "
                        f"ago (max_age {format_duration(max_age)})"
                    )
        return ""

    # --- after the actuator ------------------------------------------------------------------

    def _settle(
        self,
        rule: Rule,
        proposals: Sequence[Proposal],
        results: Mapping[str, WriteResult],
        shadow: Mapping[str, WriteResult],
        now: Now,
    ) -> None:
        status = self._status[rule.name]
        own = {p.tag: p for p in proposals if p.rule == rule.name}
        outputs: dict[str, dict[str, Any]] = {}
        applied: dict[str, OutputValue] = {}
        for tag in rule.outputs:
            proposal = own.get(tag)
            real, would = results.get(tag), shadow.get(tag)
            if rule.mode == "shadow" and would is not None and would.rule == rule.name:
                mine: WriteResult | None = would
            elif real is not None and real.rule == rule.name and not real.by_operator:
                mine = real
            else:
                mine = None
            in_effect = would if rule.mode == "shadow" and would is not None else real
            if in_effect is not None and in_effect.outcome in _IN_EFFECT:
                value = in_effect.value
                if isinstance(value, bool | float | int):
                    applied[tag] = value if isinstance(value, bool) else float(value)
            if proposal is None:
                continue
            entry: dict[str, Any] = {"proposed": proposal.value}
            if mine is not None:
                entry.update(outcome=mine.outcome.value, value=mine.value)
                if mine.clamps:
                    entry["clamps"] = list(mine.clamps)
                if mine.outcome in (Outcome.REFUSED, Outcome.DEFERRED, Outcome.FAILED):
                    entry["reason"] = mine.reason
            else:
                winner = real if real is not None else would
                by = "operator" if winner is not None and winner.by_operator else (
                    winner.rule if winner is not None else None
                )
                entry.update(outcome=Outcome.OVERRULED.value, by=by)
            outputs[tag] = entry
        if status.running:
            rule.settle(applied)
        status.outputs = outputs
        status.active = bool(own) and status.running
        waiting = "" if status.ready else "waiting for a first good reading: "
        status.reason = (
            "mode off"
            if rule.mode == "off"
            else (status.problem and waiting + status.problem)
            or next((p.reason for p in own.values()), "no proposal")
        )
        self._publish_state(rule, status, now)

    def _publish_state(self, rule: Rule, status: _RuleStatus, now: Now) -> None:
        signature = (
            rule.mode,
            status.active,
            status.problem,
            tuple((tag, e.get("outcome"), e.get("by")) for tag, e in status.outputs.items()),
        )
        significant = signature != status.signature
        if not significant and now.monotonic - status.published_at < STATE_INTERVAL:
            return
        payload = {
            "ts": now.wall_ms,
            "rule": rule.name,
            "kind": rule.kind,
            "mode": rule.mode,
            "priority": rule.priority,
            "active": status.active,
            "inputs_ok": None if rule.mode == "off" else not status.problem,
            "reason": status.reason,
            "outputs": {tag: entry["proposed"] for tag, entry in status.outputs.items()},
            "results": {
                tag: {k: v for k, v in entry.items() if k != "proposed"}
                for tag, entry in status.outputs.items()
            },
            "detail": rule.detail(),
        }
        if not significant and payload | {"ts": 0} == (status.payload or {}) | {"ts": 0}:
            return
        status.signature = signature
        status.published_at = now.monotonic
        status.payload = payload
        if self._events is not None:
            self._events.publish_retained(
                topics.rule_state(self._base, rule.name), topics.encode(payload)
            )

    def health(self) -> dict[str, Any]:
        """What `{base}/health` reports about the closed loop."""
        actuator = self._actuator
        return {
            **self.stats.as_dict(),
            "overrunning": self._overrunning,
            "rules": len(self._rules),
            "stopped": sorted(n for n, s in self._status.items() if s.problem),
            "overrides": sorted(actuator.overrides()),
            "writes": vars(actuator.stats).copy(),
        }

    def states(self) -> dict[str, dict[str, Any]]:
        """The last published state of every rule (for tests and `edgecell watch`)."""
        return {name: dict(s.payload) for name, s in self._status.items() if s.payload}


_IN_EFFECT = (Outcome.WRITTEN, Outcome.UNCHANGED, Outcome.SHADOW)


def _config_of(rule: Rule) -> Any:
    return getattr(rule, "config", None)


def _mode_of(rule: Rule) -> Any:
    config = _config_of(rule)
    return getattr(config, "mode", None)

"""What the console knows about one gateway, kept up to date from its MQTT topics.

Every message goes through `CellState.ingest`, which never raises: a payload that is too large,
not JSON, not an object, or names a thing past the bounds below is counted and described in
`ignored`, and the console goes on. Fields of the wrong type read as unknown (None), strings are
made safe for a terminal once, when they arrive (tag values, the many, only when shown).

Coalescing: a tag keeps only its latest sample (by the sample's own `ts`, so a backlog replayed
after an outage does not overwrite newer values), and every part carries a version number that
rises when it changes; the screen is redrawn at a fixed rate from whatever is here then, so its
cost does not grow with the message rate (bench/README.md, "Console").
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from controller.watch.text import safe, value

# Payload bounds, bytes: a data batch of 10,000 values is ~600 KB; everything else is small.
MAX_DATA_BYTES = 4 * 1024 * 1024
MAX_OTHER_BYTES = 256 * 1024
# Bounds on the number of things kept; beyond them new names are ignored and counted.
MAX_TAGS = 250_000
MAX_DEVICES = 2_000
MAX_RULES = 2_000
MAX_ALARMS = 5_000
MAX_NAME = 200  # characters of a device, tag, rule or alarm name
WRITES_KEPT = 200
ANSWERS_KEPT = 20
QUALITIES = frozenset({"good", "uncertain", "bad"})


class TagSample(NamedTuple):
    """The latest sample of one tag: value as received (formatted only when shown)."""

    value: Any
    quality: str
    ts: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceRow:
    state: str
    since: int | None
    latency_ms: float | None
    last_error: str
    failures: int | None
    polls: int | None
    reconnects: int | None
    skipped: int | None


@dataclass(frozen=True, slots=True)
class RuleRow:
    kind: str
    mode: str
    active: bool | None
    inputs_ok: bool | None
    reason: str
    outputs: tuple[tuple[str, str, str], ...]  # (tag, proposed value, outcome)
    ts: int | None


@dataclass(frozen=True, slots=True)
class AlarmRow:
    rule: str
    state: str
    acknowledged: bool | None
    acked_by: str
    first: int | None
    cleared: int | None
    raised_count: int | None
    message: str


@dataclass(frozen=True, slots=True)
class WriteRow:
    ts: int | None
    source: str
    tag: str
    old: Any
    new: Any
    outcome: str
    why: str  # the error when there is one, else the reason


@dataclass(frozen=True, slots=True)
class Answer:
    """A command the console sent, and what became of it."""

    command: str
    sent: float  # monotonic
    ok: bool | None  # None while waiting
    text: str


@dataclass(slots=True)
class Ignored:
    count: int = 0
    last: str = ""


@dataclass
class Versions:
    """Each rises when its part changes; the screen redraws a part only when it moved."""

    gateway: int = 0
    health: int = 0
    devices: int = 0
    tag_names: int = 0  # a tag appeared (the sorted list must be rebuilt)
    tags: int = 0  # a tag's sample changed
    rules: int = 0
    alarms: int = 0
    writes: int = 0
    plan: int = 0
    answers: int = 0
    ignored: int = 0


class _Bad(Exception):
    """A message the console ignores; the text says why."""


def _int(obj: Any) -> int | None:
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else None


def _num(obj: Any) -> float | None:
    return float(obj) if isinstance(obj, int | float) and not isinstance(obj, bool) else None


def _bool(obj: Any) -> bool | None:
    return obj if isinstance(obj, bool) else None


def _str(obj: Any, limit: int = 200) -> str:
    return safe(obj, limit) if isinstance(obj, str) else ""


def _name(level: str) -> str:
    if not level or len(level) > MAX_NAME:
        raise _Bad(f"a name of {len(level)} characters")
    return level


@dataclass
class CellState:
    """The console's picture of the gateway under `base` (its topic prefix)."""

    base: str
    gateway: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    health_received: float | None = None  # monotonic
    devices: dict[str, DeviceRow] = field(default_factory=dict)
    tags: dict[str, TagSample] = field(default_factory=dict)
    rules: dict[str, RuleRow] = field(default_factory=dict)
    alarms: dict[str, AlarmRow] = field(default_factory=dict)
    writes: deque[WriteRow] = field(default_factory=lambda: deque(maxlen=WRITES_KEPT))
    plan: dict[str, Any] | None = None
    answers: deque[Answer] = field(default_factory=lambda: deque(maxlen=ANSWERS_KEPT))
    broker: str = "connecting"
    ignored: Ignored = field(default_factory=Ignored)
    versions: Versions = field(default_factory=Versions)
    messages: int = 0
    samples: int = 0

    # --- entry point ---------------------------------------------------------------------

    def ingest(self, topic: str, payload: bytes) -> None:
        """Take one message from the broker. Never raises for what the message holds."""
        self.messages += 1
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return
        levels = topic[len(prefix) :].split("/")
        try:
            self._route(levels, payload)
        except _Bad as exc:
            self._ignore(topic, str(exc))
        except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            self._ignore(topic, f"not JSON: {exc}")
        except RecursionError:
            self._ignore(topic, "nested too deeply")

    def _ignore(self, topic: str, why: str) -> None:
        self.ignored.count += 1
        self.ignored.last = f"{safe(topic, 100)}: {safe(why, 100)}"
        self.versions.ignored += 1

    def _route(self, levels: list[str], payload: bytes) -> None:
        head = levels[0]
        count = len(levels)
        if head == "data" and count == 2:
            self._data(_name(levels[1]), self._object(payload, MAX_DATA_BYTES))
        elif head == "tags" and count == 3:
            self._tag(_name(levels[1]), _name(levels[2]), self._object(payload))
        elif head == "devices" and count == 3 and levels[2] == "status":
            self._device(_name(levels[1]), payload)
        elif head == "rules" and count == 3 and levels[2] == "state":
            self._rule(_name(levels[1]), payload)
        elif head == "alarms" and count == 2:
            self._alarm(_name(levels[1]), payload)
        elif levels == ["events", "writes"]:
            self._write(self._object(payload))
        elif levels == ["health"]:
            self.health = self._object(payload)
            self.health_received = time.monotonic()
            self.versions.health += 1
        elif levels == ["status"]:
            self.gateway = self._object(payload)
            self.versions.gateway += 1
        elif levels == ["plan"]:
            self.plan = self._object(payload) if payload else None
            self.versions.plan += 1
        # Anything else under the base (commands, answers, topics of a newer gateway) is not
        # for this screen: left alone, not counted as bad.

    @staticmethod
    def _object(payload: bytes, limit: int = MAX_OTHER_BYTES) -> dict[str, Any]:
        if len(payload) > limit:
            raise _Bad(f"{len(payload)} bytes, over the console's bound of {limit}")
        obj = orjson.loads(payload)
        if not isinstance(obj, dict):
            raise _Bad(f"a JSON {type(obj).__name__}, not an object")
        return obj

    # --- parts ---------------------------------------------------------------------------

    def _data(self, device: str, batch: dict[str, Any]) -> None:
        """The hot path (10,000 samples/s at the bench's workload): `_put`, inlined."""
        values = batch.get("values")
        if not isinstance(values, dict):
            raise _Bad("no 'values' object")
        tags = self.tags
        qualities = QUALITIES
        bad = new = 0
        prefix = device + "."
        for name, sample in values.items():
            if type(sample) is not dict or not name or len(name) > MAX_NAME:
                bad += 1
                continue
            key = prefix + name
            ts = sample.get("ts")
            if type(ts) is not int:
                ts = None
            held = tags.get(key)
            if held is None:
                if len(tags) >= MAX_TAGS:
                    bad += 1
                    continue
                new += 1
            elif ts is not None and held.ts is not None and ts < held.ts:
                continue  # a backlog older than what is shown
            quality = sample.get("q")
            reason = sample.get("r")
            tags[key] = TagSample(
                sample.get("v"),
                quality if type(quality) is str and quality in qualities else "?",
                ts,
                reason if type(reason) is str else "",
            )
        self.samples += len(values)
        self.versions.tags += 1
        if new:
            self.versions.tag_names += 1
        if bad:
            raise _Bad(
                f"{bad} of {len(values)} samples are not {{v, q, ts}} objects, or past the "
                f"bound of {MAX_TAGS} tags"
            )

    def _tag(self, device: str, name: str, sample: dict[str, Any]) -> None:
        self.samples += 1
        if self._put(self.tags, f"{device}.{name}", sample):
            self.versions.tags += 1

    def _put(self, tags: dict[str, TagSample], key: str, sample: dict[str, Any]) -> bool:
        """Keep `sample` for `key` unless the one held is newer. Returns whether it changed."""
        ts = sample.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool):
            ts = None
        held = tags.get(key)
        if held is None:
            if len(tags) >= MAX_TAGS:
                self._ignore(key, f"more than {MAX_TAGS} tags: not shown")
                return False
            self.versions.tag_names += 1
        elif ts is not None and held.ts is not None and ts < held.ts:
            return False  # a backlog older than what is shown
        quality = sample.get("q")
        reason = sample.get("r")
        tags[key] = TagSample(
            sample.get("v"),
            quality if type(quality) is str and quality in QUALITIES else "?",
            ts,
            reason if isinstance(reason, str) else "",
        )
        return True

    def _device(self, device: str, payload: bytes) -> None:
        if not payload:  # a cleared retained topic: the device is gone
            self.devices.pop(device, None)
            self.versions.devices += 1
            return
        obj = self._object(payload)
        if device not in self.devices and len(self.devices) >= MAX_DEVICES:
            raise _Bad(f"more than {MAX_DEVICES} devices")
        self.devices[device] = DeviceRow(
            state=_str(obj.get("state"), 20) or "?",
            since=_int(obj.get("since")),
            latency_ms=_num(obj.get("latency_ms")),
            last_error=_str(obj.get("last_error")),
            failures=_int(obj.get("consecutive_failures")),
            polls=_int(obj.get("polls")),
            reconnects=_int(obj.get("reconnects")),
            skipped=_int(obj.get("skipped_cycles")),
        )
        self.versions.devices += 1

    def _rule(self, rule: str, payload: bytes) -> None:
        if not payload:  # a removed rule's topic is cleared
            self.rules.pop(rule, None)
            self.versions.rules += 1
            return
        obj = self._object(payload)
        if rule not in self.rules and len(self.rules) >= MAX_RULES:
            raise _Bad(f"more than {MAX_RULES} rules")
        outputs = obj.get("outputs")
        results = obj.get("results")
        results = results if isinstance(results, dict) else {}
        shown: list[tuple[str, str, str]] = []
        if isinstance(outputs, dict):
            for tag, proposed in list(outputs.items())[:8]:
                result = results.get(tag)
                outcome = _str(result.get("outcome"), 20) if isinstance(result, dict) else ""
                shown.append((safe(tag, 60), value(proposed, 20), outcome))
        self.rules[rule] = RuleRow(
            kind=_str(obj.get("kind"), 40),
            mode=_str(obj.get("mode"), 20) or "?",
            active=_bool(obj.get("active")),
            inputs_ok=_bool(obj.get("inputs_ok")),
            reason=_str(obj.get("reason"), 300),
            outputs=tuple(shown),
            ts=_int(obj.get("ts")),
        )
        self.versions.rules += 1

    def _alarm(self, alarm: str, payload: bytes) -> None:
        if not payload:
            self.alarms.pop(alarm, None)
            self.versions.alarms += 1
            return
        obj = self._object(payload)
        if alarm not in self.alarms and len(self.alarms) >= MAX_ALARMS:
            raise _Bad(f"more than {MAX_ALARMS} alarms")
        self.alarms[alarm] = AlarmRow(
            rule=_str(obj.get("rule"), 60),
            state=_str(obj.get("state"), 20) or "?",
            acknowledged=_bool(obj.get("acknowledged")),
            acked_by=_str(obj.get("acked_by"), 64),
            first=_int(obj.get("first")),
            cleared=_int(obj.get("cleared")),
            raised_count=_int(obj.get("raised_count")),
            message=_str(obj.get("message"), 300),
        )
        self.versions.alarms += 1

    def _write(self, obj: dict[str, Any]) -> None:
        error = _str(obj.get("error"), 200)
        self.writes.appendleft(
            WriteRow(
                ts=_int(obj.get("ts")),
                source=_str(obj.get("source"), 60),
                tag=_str(obj.get("tag"), 80),
                old=obj.get("old"),
                new=obj.get("new"),
                outcome=_str(obj.get("outcome"), 20) or "?",
                why=error or _str(obj.get("reason"), 200),
            )
        )
        self.versions.writes += 1

    # --- what the console itself did -----------------------------------------------------

    def answered(self, answer: Answer) -> None:
        self.answers.appendleft(answer)
        self.versions.answers += 1

    def link(self, state: str) -> None:
        """The console's own connection to the broker: `connected`, or why it is not."""
        self.broker = safe(state, 200)
        self.versions.gateway += 1

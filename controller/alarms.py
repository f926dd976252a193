"""The alarms rules raise (a leak, a bleed valve open too long, a pressure not reached): each one
active, acknowledged by an operator, or cleared, with its first and last time and the estimate
that raised it, published retained on `{base}/alarms/{alarm}`.

Rules do not publish alarms themselves: each cycle they report the conditions they watch
(`AlarmSource.alarm_conditions`), and the one `AlarmBoard` of the gateway turns those into
alarm states, publishes every change and takes operators' acknowledgements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import structlog
from pydantic import Field

from controller.clock import SYSTEM_CLOCK, Clock
from controller.configtypes import StrictModel
from controller.mqtt import topics

log = structlog.get_logger(__name__)

# While an alarm stays active its estimate is republished when it changes, at most this often
# (a leak estimate moves a little every cycle; operators need the trend, not every wobble).
ESTIMATE_INTERVAL_MS = 60_000


class Indicates(StrEnum):
    """What an alarm says is wrong, declared by its rule (`DeclaredAlarm`) and carried in the
    payload, so a host and `edgecell report` match on it, never on words in a message."""

    WATER_LEAK = "water_leak"  # water leaves the pipes or a vessel unmetered
    AIR_LEAK = "air_leak"  # compressed air escapes: the compressor makes up for a leak
    PROCESS_LIMIT = "process_limit"  # a process value outside its limit (pressure, chemistry)
    EQUIPMENT = "equipment"  # equipment does not do what it was told (a valve open too long)
    # A standing condition worth a work order, not a new event (air leakage above its target).
    MAINTENANCE = "maintenance"
    # The controller's own planning cannot do its job (no valid plan: solver failed, timed out,
    # killed, or its inputs stale); the reactive rules decide meanwhile.
    CONTROL = "control"


LEAKS = frozenset({Indicates.WATER_LEAK, Indicates.AIR_LEAK})


@dataclass(frozen=True, slots=True)
class DeclaredAlarm:
    """One alarm a rule kind can raise, as data: what it indicates and where (`location`: the
    part of the plant it watches, e.g. `main` for the water behind the main meter that no
    submeter accounts for, `cooling_tower`, `compressed_air`)."""

    indicates: Indicates
    location: str


def declare(**alarms: DeclaredAlarm) -> Mapping[str, DeclaredAlarm]:
    """A rule kind's alarms by `what` (the alarm's name is `rule.what`), read-only."""
    return MappingProxyType(alarms)


class AlarmState(StrEnum):
    """Where an alarm is in its life (ISA-18.2, simplified: no shelving or suppression)."""

    ACTIVE = "active"  # the condition holds and nobody has acknowledged it
    ACKNOWLEDGED = "acknowledged"  # the condition holds and an operator has seen it
    CLEARED = "cleared"  # the condition has gone (acknowledged or not)


@dataclass(frozen=True, slots=True)
class AlarmCondition:
    """What a rule reports about one alarm it watches, every cycle.

    `name` is the alarm's name (one MQTT topic level, conventionally `rule.what`); `estimate` is
    the quantities that raised it (a leak rate, the kW it costs, its basis), JSON-ready.
    """

    name: str
    active: bool
    message: str = ""
    estimate: Mapping[str, Any] = field(default_factory=dict)
    rule: str = ""
    # Set for an alarm a device raised (an OPC UA condition): where it came from, its severity
    # (1-1000) and the device's time of the change (epoch ms).
    origin: Mapping[str, Any] | None = None
    indicates: str | None = None
    location: str | None = None
    # Times the estimate stepped up by a leak's size while the alarm stayed raised (another
    # leak, or one that grew): counted by the rule within the episode, 0 when it is raised.
    steps: int = 0


@runtime_checkable
class AlarmSource(Protocol):
    """A rule that watches alarm conditions."""

    name: str
    mode: str

    def alarm_conditions(self) -> list[AlarmCondition]:
        """The present state of every alarm the rule watches (active or not)."""
        ...


class AlarmSink(Protocol):
    """Where alarm states go (the MQTT publisher implements it)."""

    def publish_retained(self, topic: str, payload: bytes) -> None: ...


class UnknownAlarmError(KeyError):
    """No alarm of this name has ever been raised."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown alarm"


class AcknowledgeCommand(StrictModel):
    """Payload of the `{base}/cmd/alarms/ack` command."""

    alarm: str = Field(min_length=1)
    by: str = Field(default="operator", min_length=1, max_length=100)


@dataclass
class Alarm:
    """One alarm and its present episode (from raised to cleared)."""

    name: str
    rule: str
    state: AlarmState
    first_ms: int
    last_ms: int
    message: str
    estimate: dict[str, Any]
    acknowledged: bool = False
    acked_by: str | None = None
    acked_ms: int | None = None
    cleared_ms: int | None = None
    raised_count: int = 1
    published_ms: int = 0
    origin: dict[str, Any] | None = None
    indicates: str | None = None
    location: str | None = None
    steps: int = 0
    stepped_ms: int | None = None

    def payload(self, ts: int) -> dict[str, Any]:
        """The JSON of `{base}/alarms/{alarm}` (docs/mqtt-topics.md)."""
        return {
            "ts": ts,
            "alarm": self.name,
            "rule": self.rule,
            "indicates": self.indicates,
            "location": self.location,
            "state": self.state.value,
            "acknowledged": self.acknowledged,
            "acked_by": self.acked_by,
            "acked_at": self.acked_ms,
            "first": self.first_ms,
            "last": self.last_ms,
            "cleared": self.cleared_ms,
            "raised_count": self.raised_count,
            "steps": self.steps,
            "stepped_at": self.stepped_ms,
            "message": self.message,
            "estimate": self.estimate,
            **({"origin": self.origin} if self.origin is not None else {}),
        }


class AlarmBoard:
    """Every alarm of the gateway. `observe` takes the rules' conditions each cycle;
    `acknowledge` takes an operator's acknowledgement. Each change is published retained and
    logged once.

    Life of an alarm: a condition that turns active raises it (`active`, `first` = now); an
    acknowledgement makes it `acknowledged`; when the condition goes it is `cleared` (whether
    acknowledged or not: the payload's `acknowledged` says which). Raised again after clearing,
    it starts a new episode with a new `first`. While it stays raised, each step of its estimate
    by a leak's size (the rule's `steps` going up: another leak of the same kind and place) is
    published at once, with `stepped_at` = now.
    """

    def __init__(
        self,
        sink: AlarmSink | None = None,
        *,
        base_topic: str = "edgecell",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sink = sink
        self._base = base_topic
        self._clock = clock
        self._alarms: dict[str, Alarm] = {}

    def __getitem__(self, name: str) -> Alarm:
        try:
            return self._alarms[name]
        except KeyError:
            raise UnknownAlarmError(f"unknown alarm {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._alarms

    def alarms(self) -> dict[str, Alarm]:
        return dict(self._alarms)

    def active(self) -> list[str]:
        """Names of the alarms whose condition holds now (acknowledged or not)."""
        return [name for name, alarm in self._alarms.items() if alarm.state != AlarmState.CLEARED]

    def observe(self, conditions: Iterable[AlarmCondition], now_ms: int) -> None:
        """Apply the conditions of one cycle."""
        for condition in conditions:
            alarm = self._alarms.get(condition.name)
            if condition.active:
                self._raise(alarm, condition, now_ms)
            elif alarm is not None and alarm.state != AlarmState.CLEARED:
                self._clear(alarm, condition.message or "condition gone", now_ms)

    def observe_rules(self, rules: Iterable[object], now_ms: int) -> None:
        """`observe` the conditions of every rule that watches alarms. A rule switched off
        watches nothing: its alarms are cleared."""
        for rule in rules:
            if not isinstance(rule, AlarmSource):
                continue
            if rule.mode == "off":
                for alarm in self._alarms.values():
                    if alarm.rule == rule.name and alarm.state != AlarmState.CLEARED:
                        self._clear(alarm, f"rule {rule.name} switched off", now_ms)
                continue
            self.observe(rule.alarm_conditions(), now_ms)

    def acknowledge(self, name: str, by: str, now_ms: int | None = None) -> Alarm:
        """An operator has seen the alarm (at `now_ms`, else now by the board's clock).
        Acknowledging twice is harmless; a cleared alarm can be acknowledged too (it stays
        cleared). `UnknownAlarmError` for a name never raised."""
        alarm = self[name]
        if now_ms is None:
            now_ms = self._clock.wall_ms()
        if alarm.acknowledged:
            return alarm
        alarm.acknowledged = True
        alarm.acked_by = by
        alarm.acked_ms = now_ms
        if alarm.state == AlarmState.ACTIVE:
            alarm.state = AlarmState.ACKNOWLEDGED
        log.info("alarm_acknowledged", alarm=name, by=by, state=alarm.state.value)
        self._publish(alarm, now_ms)
        return alarm

    def republish(self, now_ms: int) -> None:
        """Publish every alarm again (a rebirth)."""
        for alarm in self._alarms.values():
            self._publish(alarm, now_ms)

    def _raise(self, alarm: Alarm | None, condition: AlarmCondition, now_ms: int) -> None:
        estimate = dict(condition.estimate)
        if alarm is None or alarm.state == AlarmState.CLEARED:
            count = 1 if alarm is None else alarm.raised_count + 1
            alarm = Alarm(
                name=condition.name,
                rule=condition.rule,
                state=AlarmState.ACTIVE,
                first_ms=now_ms,
                last_ms=now_ms,
                message=condition.message,
                estimate=estimate,
                raised_count=count,
                origin=dict(condition.origin) if condition.origin is not None else None,
                indicates=condition.indicates,
                location=condition.location,
            )
            self._alarms[condition.name] = alarm
            log.warning(
                "alarm_raised",
                alarm=alarm.name,
                rule=alarm.rule,
                message=alarm.message,
                estimate=estimate,
            )
            self._publish(alarm, now_ms)
            return
        alarm.last_ms = now_ms
        origin = dict(condition.origin) if condition.origin is not None else None
        changed = (
            estimate != alarm.estimate
            or condition.message != alarm.message
            or origin != alarm.origin
        )
        alarm.estimate = estimate
        alarm.message = condition.message
        alarm.origin = origin
        if condition.steps > alarm.steps:
            # Another leak found under the raised alarm: published at once, like a raise.
            alarm.steps = condition.steps
            alarm.stepped_ms = now_ms
            log.warning(
                "alarm_stepped",
                alarm=alarm.name,
                rule=alarm.rule,
                steps=alarm.steps,
                message=alarm.message,
                estimate=estimate,
            )
            self._publish(alarm, now_ms)
        elif changed and now_ms - alarm.published_ms >= ESTIMATE_INTERVAL_MS:
            self._publish(alarm, now_ms)

    def _clear(self, alarm: Alarm, why: str, now_ms: int) -> None:
        alarm.state = AlarmState.CLEARED
        alarm.cleared_ms = now_ms
        log.info(
            "alarm_cleared",
            alarm=alarm.name,
            rule=alarm.rule,
            reason=why,
            acknowledged=alarm.acknowledged,
        )
        self._publish(alarm, now_ms)

    def _publish(self, alarm: Alarm, now_ms: int) -> None:
        alarm.published_ms = now_ms
        if self._sink is not None:
            self._sink.publish_retained(
                topics.alarm(self._base, alarm.name), topics.encode(alarm.payload(now_ms))
            )

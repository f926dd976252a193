"""Operators' commands on `{base}/cmd/...`: a rule's mode, a manual write with a time to live,
clearing an override, reload and rebirth. Each is validated (unknown keys refused), applied
through the same actuator checks as a rule's value, and answered with `{ok: true, ...}` or
`{ok: false, error}` on the MQTT 5 response topic (or `{base}/cmd/response` for 3.1.1).
A command acts once: a stale `ts` is refused here, a retained copy by the publisher; what a
refusal echoes of the payload is bounded, so a huge payload cannot make a huge answer or log line.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
import structlog
from paho.mqtt.properties import Properties
from pydantic import Field, ValidationError, field_validator

from controller.actuation import ActuationRefusedError, Actuator, Outcome
from controller.alarms import AcknowledgeCommand, AlarmBoard, UnknownAlarmError
from controller.clock import SYSTEM_CLOCK, Clock
from controller.configtypes import PositiveDuration, StrictModel
from controller.device_alarms import DeviceAlarms
from controller.model import WriteError
from controller.mqtt import topics
from controller.rules.common import OutputValue, RuleMode, TagKey
from controller.rules.engine import RuleEngine, UnknownRuleError
from drivers.base import ConditionCallError

log = structlog.get_logger(__name__)

_M = TypeVar("_M", bound=StrictModel)

# The largest payload read (a write with every field is ~200 bytes): a bigger one is refused
# before it is parsed. The broker's message_size_limit bounds what reaches us at all.
COMMAND_MAX_BYTES = 16 * 1024
# A command carrying `ts` (epoch ms) older than this is not carried out (it waited somewhere:
# a broker queue, a retained copy, a replaying client); one this far ahead of our clock neither.
COMMAND_MAX_AGE_S = 30
COMMAND_CLOCK_SKEW_S = 5
# Refusals echo at most this many validation errors, each cut to ECHO_CHARS characters.
ECHO_ERRORS = 3
ECHO_CHARS = 100


class Responder(Protocol):
    """Answers a command (the MQTT publisher implements it)."""

    def respond(
        self,
        request_properties: Properties | None,
        payload: bytes,
        fallback_topic: str | None = None,
    ) -> None: ...


class CommandRefusedError(Exception):
    """A command that cannot be carried out; the message is the answer's `error`."""


# --- payloads ---------------------------------------------------------------------------------


class ModeCommand(StrictModel):
    """`cmd/rules/{rule}/mode`."""

    mode: RuleMode
    by: str = Field(default="mqtt", min_length=1, max_length=64)


class WriteCommand(StrictModel):
    """`cmd/write`: hold `value` on `tag` over every rule for `ttl` ('10min')."""

    tag: TagKey
    value: OutputValue
    ttl: PositiveDuration
    by: str = Field(default="mqtt", min_length=1, max_length=64)

    @field_validator("value", mode="before")
    @classmethod
    def _number_or_state(cls, value: Any) -> Any:
        # Strictly JSON numbers and true/false: "7.5" as text is refused, not guessed at.
        ok = isinstance(value, bool) or (
            isinstance(value, int | float) and math.isfinite(value)
        )
        if not ok:
            raise ValueError(f"value must be a finite number or true/false, not {value!r}")
        return value


class ClearCommand(StrictModel):
    """`cmd/override/clear`."""

    tag: TagKey
    by: str = Field(default="mqtt", min_length=1, max_length=64)


class EmptyCommand(StrictModel):
    """`cmd/reload` and `cmd/rebirth` take no arguments."""


# --- the handler ------------------------------------------------------------------------------


class CommandHandler:
    """`publisher.subscribe_commands(handler)`: called for every message on `{base}/cmd/#`.

    `on_reload()` reloads the config file and returns whether the new one was taken;
    `on_rebirth()` publishes the birth and every retained state again. `clock` is the real
    wall clock a command's `ts` is checked against (an operator's clock is not simulated).
    """

    def __init__(
        self,
        *,
        engine: RuleEngine,
        actuator: Actuator,
        responder: Responder,
        base_topic: str,
        on_reload: Callable[[], Awaitable[bool]],
        on_rebirth: Callable[[], Awaitable[None]],
        alarms: AlarmBoard | None = None,
        device_alarms: DeviceAlarms | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._alarms = alarms
        self._device_alarms = device_alarms
        self._clock = clock
        self._engine = engine
        self._actuator = actuator
        self._responder = responder
        self._prefix = f"{base_topic}/cmd/"
        self._response_topic = topics.command_response(base_topic)
        self._on_reload = on_reload
        self._on_rebirth = on_rebirth

    async def __call__(self, topic: str, payload: bytes, properties: Properties | None) -> None:
        if topic == self._response_topic or not topic.startswith(self._prefix):
            return
        levels = topic[len(self._prefix) :]
        command = cut(levels)
        try:
            answer = await self._dispatch(levels, payload)
        except CommandRefusedError as exc:
            error = cut(str(exc), 10 * ECHO_CHARS)  # a name taken from the topic, at worst
            log.warning("command_refused", command=command, error=error)
            self._answer(properties, {"ok": False, "command": command, "error": error})
            return
        log.info("command", command=command, **{k: v for k, v in answer.items() if k != "ok"})
        self._answer(properties, {"ok": True, "command": command, **answer})

    def _answer(self, properties: Properties | None, answer: dict[str, Any]) -> None:
        self._responder.respond(properties, topics.encode(answer), self._response_topic)

    async def _dispatch(self, command: str, payload: bytes) -> dict[str, Any]:
        if len(payload) > COMMAND_MAX_BYTES:  # refused unread: nothing is parsed or echoed
            raise CommandRefusedError(
                f"the payload is {len(payload)} bytes; commands are at most "
                f"{COMMAND_MAX_BYTES} bytes"
            )
        levels = command.split("/")
        if len(levels) == 3 and levels[0] == "rules" and levels[2] == "mode":
            return self._set_mode(levels[1], self._parse(ModeCommand, payload))
        if command == "write":
            return await self._write(self._parse(WriteCommand, payload))
        if command == "override/clear":
            return await self._clear(self._parse(ClearCommand, payload))
        if command == "reload":
            self._parse(EmptyCommand, payload)
            if not await self._on_reload():
                raise CommandRefusedError(
                    "the config file was refused; the running config stays (see events/config)"
                )
            return {}
        if command == "rebirth":
            self._parse(EmptyCommand, payload)
            await self._on_rebirth()
            return {}
        if command == "alarms/ack" and self._alarms is not None:
            return await self._acknowledge(self._alarms, self._parse(AcknowledgeCommand, payload))
        raise CommandRefusedError(
            f"unknown command {cut(command)!r}: known are rules/<rule>/mode, write, "
            "override/clear, reload, rebirth, alarms/ack"
        )

    async def _acknowledge(
        self, alarms: AlarmBoard, command: AcknowledgeCommand
    ) -> dict[str, Any]:
        device = self._device_alarms
        try:
            if device is not None and device.owns(command.alarm):
                # The device's condition: acknowledged there first (it is the authority).
                await device.acknowledge(command.alarm, command.by)
                alarm = alarms[command.alarm]
            else:
                alarm = alarms.acknowledge(command.alarm, command.by)
        except (UnknownAlarmError, ConditionCallError) as exc:
            raise CommandRefusedError(str(exc)) from None
        return {"alarm": alarm.name, "state": alarm.state.value, "by": alarm.acked_by}

    def _set_mode(self, rule: str, command: ModeCommand) -> dict[str, Any]:
        try:
            self._engine.set_mode(rule, command.mode, by=command.by)
        except UnknownRuleError as exc:
            raise CommandRefusedError(str(exc)) from None
        return {"rule": rule, "mode": command.mode}

    async def _write(self, command: WriteCommand) -> dict[str, Any]:
        try:
            result = await self._actuator.override(
                command.tag, command.value, command.ttl, by=command.by
            )
        except ActuationRefusedError as exc:
            # Refused before the cycle (check_manual, no reading yet): published here, as the
            # refusals inside the cycle are by the actuator, so every refused write is an event.
            self._actuator.record_refusal(command.tag, command.value, str(exc), by=command.by)
            raise CommandRefusedError(str(exc)) from None
        except WriteError as exc:  # refused in the cycle or failed: the actuator published it
            raise CommandRefusedError(str(exc)) from None
        override = self._actuator.overrides().get(command.tag)
        answer: dict[str, Any] = {
            "tag": command.tag,
            "value": result.value,
            "outcome": result.outcome.value,
            "expires": override.expires_ms if override is not None else None,
        }
        if result.clamps:
            answer["clamps"] = list(result.clamps)
        if result.outcome is Outcome.DEFERRED:
            answer["reason"] = result.reason
        return answer

    def _parse(self, model: type[_M], payload: bytes) -> _M:
        """The payload as `model`, or CommandRefusedError saying what is wrong with it.
        Every command may carry `ts` (epoch ms, when it was sent): checked here, then dropped."""
        try:
            data = orjson.loads(payload) if payload.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise CommandRefusedError(f"malformed JSON: {cut(str(exc))}") from None
        if not isinstance(data, dict):
            raise CommandRefusedError("the payload must be a JSON object")
        if "ts" in data:
            self._check_age(data.pop("ts"))
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise CommandRefusedError(_problems(exc)) from None

    def _check_age(self, ts: Any) -> None:
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise CommandRefusedError(
                f"ts: epoch milliseconds as a JSON integer, not {cut(repr(ts))}"
            )
        age = (self._clock.wall_ms() - ts) / 1000
        if age > COMMAND_MAX_AGE_S:
            raise CommandRefusedError(
                f"the command is {age:.0f} s old (ts {ts}); commands older than "
                f"{COMMAND_MAX_AGE_S} s are not carried out"
            )
        if -age > COMMAND_CLOCK_SKEW_S:
            raise CommandRefusedError(
                f"the command's ts is {-age:.0f} s in the future (ts {ts}); clocks may differ "
                f"by at most {COMMAND_CLOCK_SKEW_S} s"
            )

    async def _clear(self, command: ClearCommand) -> dict[str, Any]:
        if not await self._actuator.clear_override(command.tag, by=command.by):
            raise CommandRefusedError(f"{command.tag} has no override")
        return {"tag": command.tag}


def _problems(exc: ValidationError) -> str:
    """The first ECHO_ERRORS errors, each cut short, and how many more there were."""
    out: list[str] = []
    for error in exc.errors(include_url=False, include_input=False)[:ECHO_ERRORS]:
        where = cut(".".join(str(part) for part in error["loc"]) or "payload")
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(f"{where}: {cut(message, 2 * ECHO_CHARS)}")
    if exc.error_count() > ECHO_ERRORS:
        out.append(f"and {exc.error_count() - ECHO_ERRORS} more errors")
    return "; ".join(out)


def cut(text: str, limit: int = ECHO_CHARS) -> str:
    """`text`, or its first `limit` characters and its length: what answers and logs echo of
    what a client sent."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"

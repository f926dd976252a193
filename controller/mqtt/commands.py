"""Operators' commands on `{base}/cmd/...`: a rule's mode, a manual write with a time to live,
clearing an override, reload and rebirth. Each is validated (unknown keys refused), applied
through the same actuator checks as a rule's value, and answered with `{ok: true, ...}` or
`{ok: false, error}` on the MQTT 5 response topic (or `{base}/cmd/response` for 3.1.1).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
import structlog
from paho.mqtt.properties import Properties
from pydantic import Field, ValidationError, field_validator

from controller.actuation import Actuator, Outcome
from controller.alarms import AcknowledgeCommand, AlarmBoard, UnknownAlarmError
from controller.configtypes import PositiveDuration, StrictModel
from controller.model import WriteError
from controller.mqtt import topics
from controller.rules.config import OutputValue, RuleMode, TagKey
from controller.rules.engine import RuleEngine, UnknownRuleError

log = structlog.get_logger(__name__)

_M = TypeVar("_M", bound=StrictModel)


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
    `on_rebirth()` publishes the birth and every retained state again.
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
    ) -> None:
        self._alarms = alarms
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
        command = topic[len(self._prefix) :]
        try:
            answer = await self._dispatch(command, payload)
        except CommandRefusedError as exc:
            log.warning("command_refused", command=command, error=str(exc))
            self._answer(properties, {"ok": False, "command": command, "error": str(exc)})
            return
        log.info("command", command=command, **{k: v for k, v in answer.items() if k != "ok"})
        self._answer(properties, {"ok": True, "command": command, **answer})

    def _answer(self, properties: Properties | None, answer: dict[str, Any]) -> None:
        self._responder.respond(properties, topics.encode(answer), self._response_topic)

    async def _dispatch(self, command: str, payload: bytes) -> dict[str, Any]:
        levels = command.split("/")
        if len(levels) == 3 and levels[0] == "rules" and levels[2] == "mode":
            return self._set_mode(levels[1], _parse(ModeCommand, payload))
        if command == "write":
            return await self._write(_parse(WriteCommand, payload))
        if command == "override/clear":
            return await self._clear(_parse(ClearCommand, payload))
        if command == "reload":
            _parse(EmptyCommand, payload)
            if not await self._on_reload():
                raise CommandRefusedError(
                    "the config file was refused; the running config stays (see events/config)"
                )
            return {}
        if command == "rebirth":
            _parse(EmptyCommand, payload)
            await self._on_rebirth()
            return {}
        if command == "alarms/ack" and self._alarms is not None:
            return self._acknowledge(self._alarms, _parse(AcknowledgeCommand, payload))
        raise CommandRefusedError(
            f"unknown command {command!r}: known are rules/<rule>/mode, write, override/clear, "
            "reload, rebirth, alarms/ack"
        )

    def _acknowledge(self, alarms: AlarmBoard, command: AcknowledgeCommand) -> dict[str, Any]:
        try:
            alarm = alarms.acknowledge(command.alarm, command.by)
        except UnknownAlarmError as exc:
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
        except WriteError as exc:
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

    async def _clear(self, command: ClearCommand) -> dict[str, Any]:
        if not await self._actuator.clear_override(command.tag, by=command.by):
            raise CommandRefusedError(f"{command.tag} has no override")
        return {"tag": command.tag}


def _parse(model: type[_M], payload: bytes) -> _M:
    """The payload as `model`, or CommandRefusedError saying what is wrong with it."""
    try:
        data = orjson.loads(payload) if payload.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise CommandRefusedError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandRefusedError("the payload must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CommandRefusedError(_problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    out: list[str] = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(f"{where}: {message}")
    return "; ".join(out)

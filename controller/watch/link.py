"""The console's MQTT side: where the broker is and how to log in (from the command line or
from the gateway's own config file), the subscriptions, and commands with their answers.

The console only reads the gateway's topics and publishes on `{base}/cmd/...`; it never
publishes anything retained and never on the gateway's state topics. Its client id is its own
(`edgecell-watch-...`), so it cannot throw the gateway off the broker.
"""

from __future__ import annotations

import asyncio
import getpass
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.mqtt.config import TlsConfig
from controller.watch.state import Answer, CellState
from controller.watch.text import safe

ANSWER_TIMEOUT_S = 10.0
RECONNECT_MAX_S = 10.0
# The gateway's state topics the console reads (docs/mqtt-topics.md); `plan` is published by
# the scheduler when it runs.
SUBSCRIPTIONS = (
    "status",
    "health",
    "data/+",
    "tags/+/+",
    "devices/+/status",
    "rules/+/state",
    "events/writes",
    "alarms/+",
    "plan",
    "cmd/response",
)


class BrokerAddressError(ValueError):
    """`--broker` is not `host[:port]`."""


def parse_broker(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `[::1]:1883` -> (host, port); port 1883 by default."""
    host, port = text, "1883"
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise BrokerAddressError(f"--broker {text!r}: an IPv6 address needs its closing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise BrokerAddressError(f"--broker {text!r}: expected ':port' after ']'")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise BrokerAddressError(f"--broker {text!r}: no host")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BrokerAddressError(f"--broker {text!r}: the port must be 1-65535")
    return host, int(port)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the gateway's broker is and how to log in: the daemon's own `mqtt:` settings
    when taken from its config file."""

    host: str
    port: int
    base: str  # the gateway's base topic
    protocol: str = "5"
    username: str | None = None
    password: Callable[[], str | None] = lambda: None  # read at every connection attempt
    tls: TlsConfig | None = None
    by: str = "watch"  # recorded by the gateway as who sent a command

    def tls_context(self) -> ssl.SSLContext | None:
        return self.tls.ssl_context() if self.tls is not None else None


def default_by() -> str:
    """`<user>@watch`, at most 64 characters (the commands' `by` bound)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return f"{user}@watch"[-64:]


@dataclass
class _Pending:
    command: str
    sent: float


class WatchLink:
    """Keeps a session with the broker for `state`, reconnecting with a capped backoff."""

    def __init__(self, settings: BrokerSettings, state: CellState) -> None:
        self.settings = settings
        self.state = state
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, _Pending] = {}
        self._client_id = f"edgecell-watch-{uuid.uuid4().hex[:10]}"

    # --- session ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: connect, subscribe, feed `state`; on a lost session, again."""
        attempt = 0
        while True:
            try:
                await self._session()
                attempt = 0
            except (aiomqtt.MqttError, OSError, ssl.SSLError, ValueError) as exc:
                self._client = None
                self.state.link(f"not connected: {exc}")
                attempt += 1
            await asyncio.sleep(min(RECONNECT_MAX_S, 0.5 * 2 ** min(attempt, 5)))

    async def _session(self) -> None:
        settings = self.settings
        password, tls_context = await asyncio.to_thread(
            lambda: (settings.password(), settings.tls_context())
        )
        v5 = settings.protocol == "5"
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            tls_context=tls_context,
            timeout=10,
        )
        async with client:
            base = settings.base
            await client.subscribe([(f"{base}/{level}", 1) for level in SUBSCRIPTIONS])
            self._client = client
            self.state.link("connected")  # and subscribed: what is published now is seen
            tags_filter = f"{base}/tags/+/+"
            tags_prefix = f"{base}/tags/"
            response = f"{base}/cmd/response"
            following_tags = True
            try:
                async for message in client.messages:
                    topic = message.topic.value
                    payload = message.payload
                    data = payload if isinstance(payload, bytes) else _as_bytes(payload)
                    if topic == response:
                        self._answer(data, message.properties)
                        continue
                    if following_tags and topic.startswith(tags_prefix) and not message.retain:
                        # The retained tag values gave the picture at subscribe time; live
                        # values come on data/+ as well, so the per-tag stream is let go.
                        following_tags = False
                        await client.unsubscribe(tags_filter)
                    self.state.ingest(topic, data)
            finally:
                self._client = None

    # --- commands --------------------------------------------------------------------------

    async def command(self, path: str, body: dict[str, Any]) -> None:
        """Publish `body` on `{base}/cmd/{path}` with `by` and `ts`; the answer (or its
        absence) goes to `state.answers`."""
        client = self._client
        if client is None:
            self.state.answered(Answer(path, time.monotonic(), False, "not sent: not connected"))
            return
        settings = self.settings
        correlation = uuid.uuid4().hex
        properties: Properties | None = None
        if settings.protocol == "5":
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = f"{settings.base}/cmd/response"
            properties.CorrelationData = correlation.encode()
        payload = {**body, "by": settings.by, "ts": int(time.time() * 1000)}
        self._pending[correlation] = _Pending(path, time.monotonic())
        self.state.answered(Answer(path, time.monotonic(), None, "sent, waiting for the answer"))
        try:
            await client.publish(
                f"{settings.base}/cmd/{path}",
                orjson.dumps(payload),
                qos=1,
                properties=properties,
            )
        except aiomqtt.MqttError as exc:
            self._pending.pop(correlation, None)
            self.state.answered(Answer(path, time.monotonic(), False, f"not sent: {exc}"))

    def expire(self) -> None:
        """Say so for commands that got no answer within ANSWER_TIMEOUT_S."""
        now = time.monotonic()
        for correlation, pending in list(self._pending.items()):
            if now - pending.sent > ANSWER_TIMEOUT_S:
                del self._pending[correlation]
                self.state.answered(
                    Answer(
                        pending.command,
                        now,
                        False,
                        f"no answer within {ANSWER_TIMEOUT_S:g} s: is the gateway online?",
                    )
                )

    def _answer(self, payload: bytes, properties: Properties | None) -> None:
        """An answer on `{base}/cmd/response`: ours by its correlation data (MQTT 5), or, from
        a gateway that answers without it (MQTT 3.1.1), by the command it names."""
        try:
            answer = orjson.loads(payload) if len(payload) <= 64 * 1024 else None
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            return
        correlation = getattr(properties, "CorrelationData", None)
        key = None
        if isinstance(correlation, bytes | bytearray):
            key = bytes(correlation).decode(errors="replace")
        if key not in self._pending:
            command = answer.get("command")
            key = next(
                (k for k, pending in self._pending.items() if pending.command == command), None
            )
        if key is None:
            return  # another console's answer
        pending = self._pending.pop(key)
        self.state.answered(
            Answer(pending.command, time.monotonic(), answer.get("ok") is True, _describe(answer))
        )


def _describe(answer: dict[str, Any]) -> str:
    if answer.get("ok") is not True:
        return f"refused: {safe(str(answer.get('error', 'no reason given')), 200)}"
    details = ", ".join(
        f"{safe(str(k), 20)} {safe(str(v), 40)}"
        for k, v in answer.items()
        if k not in ("ok", "command")
    )
    return f"ok: {details}" if details else "ok"


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


def settings_from_config(path: Path, by: str) -> tuple[BrokerSettings, str]:
    """The daemon's broker, login, TLS and base topic from its config file; and its gateway
    id. Raises controller.config.ConfigError for a config the daemon would refuse."""
    from controller.config import load_config  # noqa: PLC0415

    config = load_config(path).config
    mqtt = config.mqtt
    return (
        BrokerSettings(
            host=mqtt.host,
            port=mqtt.port,
            base=config.base_topic,
            protocol=mqtt.protocol,
            username=mqtt.username,
            password=mqtt.resolve_password,
            tls=mqtt.tls,
            by=by,
        ),
        config.gateway.id,
    )

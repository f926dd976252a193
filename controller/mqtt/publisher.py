"""The one MQTT connection of the gateway: birth and Last Will, telemetry through the
store-and-forward buffer, retained state re-published after every reconnect, commands in; with
several brokers configured, a lost one is left for the next at once (`BrokerRotation`).

Drivers and rules call the synchronous `publish_*` methods, which never block and never fail
because of the broker; the loops of this module do the network work. Timestamps come from the
injected clock; network timeouts and backoff run in real time (the broker lives in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from controller.clock import Clock
from controller.model import DeviceStatus, Sample
from controller.mqtt import topics
from controller.mqtt.brokers import BrokerEndpoint, BrokerRotation
from controller.mqtt.buffer import BUFFER_FILE, Entry, MessageBuffer
from controller.mqtt.config import MqttConfig
from controller.mqtt.taskgroup import OwnedLoop

log = structlog.get_logger(__name__)

# Called for each message on {base}/cmd/#: (topic, payload, MQTT 5 properties or None).
CommandHandler = Callable[[str, bytes, Properties | None], Awaitable[None]]

WINDOW = 32  # QoS 1/2 messages in flight at once (ordering is kept: one connection, FIFO)
PUBLISH_TIMEOUT = 10.0  # no PUBACK within this: the connection is taken as broken
CONNECT_TIMEOUT = 10.0
FLUSH_TIMEOUT = 2.0  # on clean stop, time to send what is buffered ...
OFFLINE_TIMEOUT = 1.0  # ... and then to publish the offline status: 3 s at most together
STOP_TIMEOUT = FLUSH_TIMEOUT + OFFLINE_TIMEOUT + 0.5
# A reconfigure waits this long for the old session to end (offline published on it).
SWITCH_TIMEOUT = OFFLINE_TIMEOUT + 2.0
# The `mqtt:` settings a live session was made with: changing one needs a new connection.
CONNECTION_SETTINGS = (
    "host", "port", "protocol", "keepalive", "username", "password", "password_file", "tls",
    "brokers",
)


class PublisherNotRunningError(Exception):
    """A publish method was called before `__aenter__` or after `__aexit__`."""


class PublisherReentryError(Exception):
    """`async with` on a publisher that is already running (it is reusable, not reentrant)."""


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """What the health topic reports about MQTT."""

    connected: bool
    broker: str | None  # `host:port` of the broker of the session; None while not connected
    reconnects: int
    failovers: int  # sessions that began on another broker than the one before
    buffer_depth: int
    buffer_bytes: int
    buffer_oldest_age_s: float | None
    buffer_dropped: int
    buffer_memory_bytes: int
    buffer_disk_ok: bool
    buffer_storage: str
    health_skipped: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    retain: bool = False
    properties: Properties | None = None
    entry: Entry | None = None  # set for buffered messages: acknowledged in the buffer


class _ConnectionLostError(Exception):
    """The session ended (broker gone, PUBACK timeout); the connection loop reconnects."""


class MqttPublisher:
    """`async with MqttPublisher(...) as publisher:` connects in the background and keeps
    reconnecting until the block is left; leaving it flushes for at most 3 s, publishes the
    retained offline status and keeps what was not sent in the buffer file for the next start.

    `birth` is the online status (`topics.birth(...)`), published retained on every connect
    with the `epoch` of the data topics' seq added.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        base_topic: str,
        client_id: str,
        state_dir: Path,
        clock: Clock,
        birth: Mapping[str, Any],
    ) -> None:
        self._config = config
        self._rotation = BrokerRotation.from_config(config)
        self._broker: BrokerEndpoint | None = None  # of the session that is up
        self._last_broker: BrokerEndpoint | None = None  # of the last session that was up
        self._failovers = 0
        self._base = base_topic
        self._client_id = client_id
        self._buffer_path = state_dir / BUFFER_FILE
        self._clock = clock
        self._birth_fields = dict(birth)
        self._birth = topics.encode(birth)  # with the buffer's epoch once it is open
        self._buffer: MessageBuffer | None = None  # kept after exit, for stats()
        self._running = False
        self._stopping = asyncio.Event()
        self._reconnect = asyncio.Event()  # new connection settings: end the session, connect
        self._settings_in_force = asyncio.Event()  # set when a client is made with the latest
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._reconnects = 0
        self._retained: dict[str, bytes] = {}
        self._retained_dirty: dict[str, None] = {}  # an ordered set
        self._control: deque[_Outgoing] = deque(maxlen=1000)
        self._health: bytes | None = None
        self._health_skipped = 0
        self._command_handler: CommandHandler | None = None
        # Topics the gateway reads (a forecast), each with its handler; subscribed on connect.
        self._inputs: dict[str, Callable[[bytes], None]] = {}
        self._client: aiomqtt.Client | None = None
        self._receive_maximum = WINDOW
        self._lifecycle = OwnedLoop(
            "mqtt-connection",
            stop_events=(self._stopping, self._wakeup),
            stop_within=STOP_TIMEOUT,
            timeout_event="mqtt_stop_timeout",
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._lifecycle.running:
            raise PublisherReentryError("the publisher is already running")
        self._stopping.clear()
        async with contextlib.AsyncExitStack() as stack:
            buffer = MessageBuffer(self._buffer_path, self._config.buffer, self._clock)
            self._buffer = await stack.enter_async_context(buffer)
            self._birth = topics.encode(
                topics.online(self._birth_fields, epoch=buffer.epoch, broker=None)
            )
            self._running = True
            stack.callback(setattr, self, "_running", False)
            await self._lifecycle.start(stack, self._connection_loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lifecycle.stop(exc_type, exc, tb)

    async def connected(self) -> None:
        """Return once a session with the broker is up (at once if it is)."""
        await self._connected.wait()

    @property
    def base_topic(self) -> str:
        return self._base

    async def reconfigure(self, config: MqttConfig, *, client_id: str) -> bool:
        """Apply new `mqtt:` settings (a config reload) without losing a message. Buffer
        settings apply to the open buffer; a new broker address, credentials, TLS, protocol,
        keepalive or client id end the session (offline published on the old one) and connect
        with the new settings at once, the backlog following. The base topic is fixed for the
        publisher's life. Returns whether a new connection is made."""
        old, self._config = self._config, config
        old_client_id, self._client_id = self._client_id, client_id
        if old.buffer != config.buffer and self._buffer is not None and self._running:
            await self._buffer.reconfigure(config.buffer)
        reconnect = client_id != old_client_id or any(
            getattr(old, name) != getattr(config, name) for name in CONNECTION_SETTINGS
        )
        if reconnect:
            self._rotation = BrokerRotation.from_config(config, previous=self._rotation)
            log.info("mqtt_reconfigured", broker=self._rotation.current.name,
                     brokers=len(self._rotation.endpoints), client_id=client_id)
            self._settings_in_force.clear()
            self._reconnect.set()
            # What is published from now on (the reload's own event) goes to the new broker:
            # wait, bounded, for the old session to end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settings_in_force.wait(), SWITCH_TIMEOUT)
        return reconnect

    # --- the API of the runtime (synchronous, never blocks) ----------------------------------

    @property
    def epoch(self) -> str:
        """The epoch of the data topics' seq (see `MessageBuffer.epoch`)."""
        return self._open_buffer().epoch

    def publish_samples(self, device: str, samples: Sequence[Sample]) -> int | None:
        """Buffer one batch of changed samples of `device` on `{base}/data/{device}`; returns its
        seq (None when `samples` is empty), numbered within the buffer's epoch. Also updates the
        retained tag topics when `retain_tags` is set."""
        if not samples:
            return None
        buffer = self._running_buffer()
        key = f"seq/{device}"
        seq = buffer.counter(key) + 1
        buffer.set_counter(key, seq)
        payload = topics.data_batch(
            samples, epoch=buffer.epoch, seq=seq, ts=self._clock.wall_ms()
        )
        buffer.accept(topics.data(self._base, device), payload)
        if self._config.retain_tags:
            for sample in samples:
                self.publish_retained(
                    topics.tag(self._base, device, sample.tag), topics.tag_value(sample)
                )
        self._wakeup.set()
        return seq

    def publish_device_status(self, status: DeviceStatus) -> None:
        """Retained `{base}/devices/{device}/status`."""
        self.publish_retained(
            topics.device_status(self._base, status.device),
            topics.device_status_payload(status, ts=self._clock.wall_ms()),
        )

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """State, not history: only the latest payload per topic is kept, and all of them are
        published again after each reconnect. An empty payload clears the retained message."""
        self._running_buffer()
        self._retained[topic] = payload
        self._retained_dirty[topic] = None
        self._wakeup.set()

    def rebirth(self) -> None:
        """Publish the online status and every retained state topic again (the `cmd/rebirth`
        command: a consumer that lost its retained view asks for it)."""
        self._running_buffer()
        self._retained[topics.status(self._base)] = self._birth
        for topic in self._retained:
            self._retained_dirty[topic] = None
        self._wakeup.set()

    def publish_event(self, topic: str, payload: bytes) -> None:
        """Buffered like telemetry: delivered in order, kept through outages and restarts."""
        self._running_buffer().accept(topic, payload)
        self._wakeup.set()

    def publish_health(self, payload: Mapping[str, Any] | bytes) -> None:
        """Live only: sent when connected (a newer one replaces one not yet sent), else skipped."""
        self._running_buffer()
        if not self._connected.is_set():
            self._health_skipped += 1
            return
        if not isinstance(payload, bytes):
            payload = topics.health_payload(payload, ts=self._clock.wall_ms())
        self._health = payload
        self._wakeup.set()

    def subscribe_commands(self, handler: CommandHandler) -> None:
        """Call `handler` for every message on `{base}/cmd/#` (subscribed on every connect;
        takes effect at the next connect when already connected)."""
        self._command_handler = handler

    def add_input(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Call `handler` with the payload of every message on `topic` (no wildcards),
        subscribed on every connect (call it before the first, as `subscribe_commands`; when
        connected already, `subscribe_input`). The handler validates: whatever arrives there
        is input from outside."""
        self._inputs[topic] = handler

    async def subscribe_input(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """`add_input`, and subscribed now when connected (a reload that adds a scheduler)."""
        self._inputs[topic] = handler
        client = self._client
        if client is not None and self._connected.is_set():
            try:
                await client.subscribe(topic, qos=1, timeout=PUBLISH_TIMEOUT)
            except aiomqtt.MqttError as exc:  # subscribed again at the next connect
                log.warning("mqtt_subscribe_failed", topic=topic[:200], error=str(exc))

    def respond(
        self,
        request_properties: Properties | None,
        payload: bytes,
        fallback_topic: str | None = None,
    ) -> None:
        """Answer a command: on its MQTT 5 ResponseTopic with its CorrelationData, else on
        `fallback_topic` (default `{base}/cmd/response`). Not buffered."""
        self._running_buffer()
        response_topic = getattr(request_properties, "ResponseTopic", None)
        properties: Properties | None = None
        if response_topic and self._config.protocol == "5":
            topic = str(response_topic)
            correlation = getattr(request_properties, "CorrelationData", None)
            if correlation is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = correlation
        else:
            topic = fallback_topic or topics.command_response(self._base)
        self._control.append(_Outgoing(topic, payload, properties=properties))
        self._wakeup.set()

    def stats(self) -> PublisherStats:
        """Also valid after the publisher stopped (what it left in the buffer)."""
        if self._buffer is None:
            raise PublisherNotRunningError("stats() needs a publisher that was started")
        buffer = self._buffer.stats()
        return PublisherStats(
            connected=self._connected.is_set(),
            broker=self._broker.name if self._broker is not None else None,
            reconnects=self._reconnects,
            failovers=self._failovers,
            buffer_depth=buffer.depth,
            buffer_bytes=buffer.bytes,
            buffer_oldest_age_s=buffer.oldest_age_s,
            buffer_dropped=buffer.dropped,
            buffer_memory_bytes=buffer.memory_bytes,
            buffer_disk_ok=buffer.disk_ok,
            buffer_storage=buffer.storage,
            health_skipped=self._health_skipped,
        )

    async def persisted(self) -> None:
        """Return when every message accepted so far is on disk or acknowledged."""
        await self._running_buffer().persisted()

    def _open_buffer(self) -> MessageBuffer:
        if self._buffer is None:
            raise PublisherNotRunningError("the publisher was never started")
        return self._buffer

    def _running_buffer(self) -> MessageBuffer:
        if self._buffer is None or not self._running:
            raise PublisherNotRunningError("use the publisher inside `async with`")
        return self._buffer

    # --- connection --------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        lost_at: float | None = None
        # At least one attempt even when stopped at once: a clean stop flushes if it can.
        while True:
            endpoint = self._rotation.current
            try:
                client = await self._make_client(endpoint)
                async with client:
                    self._rotation.connected()
                    self._session_began(endpoint, lost_at)
                    lost_at = None
                    await self._session(client, endpoint)
                if self._stopping.is_set():
                    return  # a clean stop
                # New settings (reconfigure): connect with them at once.
                self._session_ended()
                continue
            except (aiomqtt.MqttError, _ConnectionLostError, OSError, ssl.SSLError) as exc:
                self._session_ended()
                error = str(exc) or type(exc).__name__
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.warning("mqtt_unavailable", broker=endpoint.name, error=error)
                else:
                    log.debug("mqtt_connect_failed", broker=endpoint.name, error=error)
            if self._stopping.is_set():
                return
            if self._reconnect.is_set():
                continue  # new settings: the rotation was made again, try them at once
            # The next broker at once; a backoff only once a whole round has failed.
            delay = self._rotation.failed()
            if delay > 0:
                await _first_of(self._stopping, self._reconnect, seconds=delay)

    def _session_began(self, endpoint: BrokerEndpoint, lost_at: float | None) -> None:
        previous, self._last_broker = self._last_broker, endpoint
        moved = previous is not None and previous.name != endpoint.name
        if moved:
            self._failovers += 1
        if lost_at is None and not moved:
            log.info("mqtt_connected", broker=endpoint.name, client_id=self._client_id)
            return
        log.info(
            "mqtt_reconnected",
            broker=endpoint.name,
            previous=previous.name if previous is not None else None,
            outage_s=round(time.monotonic() - lost_at, 3) if lost_at is not None else 0.0,
        )

    async def _make_client(self, endpoint: BrokerEndpoint) -> aiomqtt.Client:
        self._reconnect.clear()  # this client has the settings in force now
        self._settings_in_force.set()
        # Credentials and certificates are read on every attempt: rotated files are picked up.
        options = await endpoint.client_options()
        v5 = self._config.protocol == "5"
        will = aiomqtt.Will(
            topics.status(self._base),
            topics.death(ts=self._clock.wall_ms(), clean=False),
            qos=max(1, self._config.qos),
            retain=True,
        )
        client = aiomqtt.Client(
            **options,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=None if v5 else True,
            timeout=CONNECT_TIMEOUT,
            keepalive=max(1, round(self._config.keepalive)),
            max_inflight_messages=WINDOW,
        )
        self._watch_receive_maximum(client)
        return client

    def _watch_receive_maximum(self, client: aiomqtt.Client) -> None:
        """Keep the broker's MQTT 5 Receive Maximum from CONNACK: more unacknowledged QoS 1/2
        messages than that is a protocol error (some brokers allow 10). aiomqtt 2.x does not
        expose CONNACK properties, so its paho client's callback is wrapped (pinned: <3)."""
        paho = client._client
        aiomqtt_on_connect = paho.on_connect
        self._receive_maximum = WINDOW

        def on_connect(*args: Any) -> None:
            properties = args[4] if len(args) > 4 else None
            maximum = getattr(properties, "ReceiveMaximum", None)
            if isinstance(maximum, int) and maximum > 0:
                self._receive_maximum = min(WINDOW, maximum)
            if aiomqtt_on_connect is not None:
                aiomqtt_on_connect(*args)

        paho.on_connect = on_connect

    def _session_ended(self) -> None:
        self._client = None
        self._broker = None
        if self._connected.is_set():
            self._connected.clear()
            self._reconnects += 1
        if self._buffer is not None:
            self._buffer.session_lost()

    async def _session(self, client: aiomqtt.Client, endpoint: BrokerEndpoint) -> None:
        buffer = self._open_buffer()
        self._broker = endpoint
        # The birth names the broker it was published on: a consumer listening on several
        # independent brokers sees where the gateway is now.
        self._birth = topics.encode(
            topics.online(self._birth_fields, epoch=buffer.epoch, broker=endpoint.name)
        )
        status = topics.status(self._base)
        if status in self._retained:  # a rebirth's copy: the birth of this session replaces it
            self._retained[status] = self._birth
        client.pending_calls_threshold = WINDOW + 16  # aiomqtt warns above this many in flight
        await client.publish(
            topics.status(self._base), self._birth, qos=max(1, self._config.qos), retain=True,
            timeout=PUBLISH_TIMEOUT,
        )
        if self._command_handler is not None:
            await self._subscribe_commands(client)
        for topic in list(self._inputs):
            await client.subscribe(topic, qos=1, timeout=PUBLISH_TIMEOUT)
        buffer.session_started()
        # Retained state is state, not history: all of it again, the latest of each topic.
        for topic in self._retained:
            self._retained_dirty[topic] = None
        self._client = client
        self._connected.set()
        self._wakeup.set()
        try:
            async with asyncio.TaskGroup() as task_group:
                sender = task_group.create_task(self._send_loop(client, task_group))
                receiver = task_group.create_task(self._receive_loop(client))
                await _first_of(self._stopping, self._reconnect)
                if self._stopping.is_set():
                    await self._flush()
                sender.cancel()
                receiver.cancel()
        except BaseExceptionGroup as group:
            lost, bugs = group.split((aiomqtt.MqttError, _ConnectionLostError))
            if bugs is not None or lost is None:
                raise
            raise _ConnectionLostError(str(lost.exceptions[0])) from None
        # Clean stop: the offline status replaces the birth (the broker drops the Will).
        self._connected.clear()
        try:
            await client.publish(
                topics.status(self._base),
                topics.death(ts=self._clock.wall_ms(), clean=True),
                qos=max(1, self._config.qos),
                retain=True,
                timeout=OFFLINE_TIMEOUT,
            )
        except aiomqtt.MqttError as exc:
            log.warning("mqtt_offline_not_published", error=str(exc))
        buffer.session_lost()
        if self._stopping.is_set():
            log.info("mqtt_stopped", unsent=buffer.depth)
        else:
            log.info("mqtt_session_ended_for_new_settings", unsent=buffer.depth)

    async def _subscribe_commands(self, client: aiomqtt.Client) -> None:
        topic = topics.commands(self._base)
        if self._config.protocol == "5":
            # no_local: our own answers on {base}/cmd/response do not come back to us.
            # (paho takes the QoS from the options then, and refuses both.)
            options = SubscribeOptions(qos=1, noLocal=True)
            await client.subscribe(topic, options=options, timeout=PUBLISH_TIMEOUT)
        else:
            await client.subscribe(topic, qos=1, timeout=PUBLISH_TIMEOUT)

    async def _flush(self) -> None:
        """On stop: send the backlog unthrottled for at most FLUSH_TIMEOUT."""
        buffer = self._open_buffer()
        buffer.unthrottle()
        self._wakeup.set()
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while buffer.depth > 0 or self._retained_dirty or self._control:
            if time.monotonic() >= deadline:
                log.warning("mqtt_flush_incomplete", unsent=buffer.depth)
                return
            await asyncio.sleep(0.02)

    # --- sending and receiving ---------------------------------------------------------------

    async def _send_loop(self, client: aiomqtt.Client, task_group: asyncio.TaskGroup) -> None:
        # Every QoS 1/2 message of a session goes through here (the birth was acknowledged
        # before), so this semaphore bounds what is unacknowledged on the wire.
        window = asyncio.Semaphore(self._receive_maximum)
        while True:
            await window.acquire()
            try:
                item = await self._next_outgoing()
            except BaseException:
                window.release()
                raise
            # Tasks start in creation order and paho writes each PUBLISH when called, so the
            # broker receives messages in the order they were taken.
            task_group.create_task(self._send(client, item, window))

    async def _send(
        self, client: aiomqtt.Client, item: _Outgoing, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(
                item.topic,
                item.payload,
                qos=self._config.qos,
                retain=item.retain,
                properties=item.properties,
                timeout=PUBLISH_TIMEOUT,
            )
        finally:
            window.release()
        if item.entry is not None:
            if self._buffer is not None:
                self._buffer.ack(item.entry)
        elif item.retain and not item.payload and self._retained.get(item.topic) == b"":
            del self._retained[item.topic]  # a cleared retained topic is not re-published

    async def _next_outgoing(self) -> _Outgoing:
        buffer = self._open_buffer()
        while True:
            self._wakeup.clear()
            if self._control:
                return self._control.popleft()
            if self._health is not None:
                health, self._health = self._health, None
                return _Outgoing(topics.health(self._base), health)
            if self._retained_dirty:
                topic = next(iter(self._retained_dirty))
                del self._retained_dirty[topic]
                if topic in self._retained:
                    return _Outgoing(topic, self._retained[topic], retain=True)
                continue
            # The backlog takes its turns at drain_rate; live data goes whenever it is there.
            backlog = await buffer.take_backlog()
            if isinstance(backlog, Entry):
                return _Outgoing(backlog.topic, backlog.payload, entry=backlog)
            live = buffer.take_live()
            if live is not None:
                return _Outgoing(live.topic, live.payload, entry=live)
            timeout = None if backlog == math.inf else backlog
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        response_topic = topics.command_response(self._base)
        prefix = f"{self._base}/cmd/"
        async for message in client.messages:
            topic = message.topic.value
            on_input = self._inputs.get(topic)
            if on_input is not None:
                try:
                    on_input(_payload_bytes(message.payload))
                except Exception:
                    log.exception("input_handler_failed", topic=topic[:200])
                continue
            handler = self._command_handler
            if handler is None or topic == response_topic:
                continue
            if message.retain:
                # The broker's stored copy, handed out at every (re)subscribe: carried out, it
                # would write again what was asked once, long ago. Refused and answered; not
                # cleared (docs/rules.md, "Commands": our ACL, someone else's message, and under
                # 3.1.1 the empty retained message would come back to us as an empty command).
                shown = topic[len(prefix) :][:100]
                error = (
                    "a retained message is not a command: a command acts once, when it is "
                    "published; clear the broker's stored copy with an empty retained message "
                    "on this topic"
                )
                log.warning("command_refused", command=shown, error=error, retained=True)
                self.respond(
                    message.properties,
                    topics.encode({"ok": False, "command": shown, "error": error}),
                    response_topic,
                )
                continue
            try:
                await handler(topic, _payload_bytes(message.payload), message.properties)
            except Exception:
                log.exception("command_handler_failed", topic=topic[:200])


async def _first_of(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Wait until one of `events` is set, or `seconds` (None: no limit)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()

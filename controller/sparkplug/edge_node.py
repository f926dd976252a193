"""The Sparkplug B 3.0 edge node: one MQTT session of its own, beside the JSON contract's.

Its Will is NDEATH with the bdSeq of that CONNECT. Once connected (and, with a primary host
configured, once that host's STATE says online) it publishes NBIRTH and a DBIRTH for every
connected device, then DDATA by exception with `seq` 0-255 wrapping; DDEATH when a device fails
and DBIRTH when it returns. NCMD `Node Control/Rebirth` repeats the births; DCMD writes go to
the actuator as operators' writes. Without a session, changes go to the history file and are
replayed after the next births with `is_historical`.

Runtime calls (`publish_samples`, `device_status`, `request_rebirth`, `reconfigure`) are
synchronous and never block; the loops here do the network work.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import structlog

from controller.clock import Clock
from controller.model import DeviceStatus, LinkState, Quality, Sample
from controller.mqtt.buffer import Entry, MessageBuffer
from controller.mqtt.config import MqttConfig
from controller.mqtt.taskgroup import OwnedLoop
from controller.sparkplug import broker as brokers_
from controller.sparkplug import metrics as m
from controller.sparkplug.bdseq import BdSeqStore
from controller.sparkplug.commands import CommandReader, Writer
from controller.sparkplug.config import SparkplugConfig
from controller.sparkplug.hoststate import HostStateError, parse_state
from controller.sparkplug.sparkplug_b_pb2 import Payload
from controller.sparkplug.topics import MessageType, NodeTopics, state

log = structlog.get_logger(__name__)

HISTORY_FILE = "sparkplug-history.sqlite3"
PUBLISH_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
FIRST_NODE_ALIAS = 1
ALIVE = frozenset({LinkState.CONNECTED})
# The `mqtt:` settings the session was made with (the protocol is always 3.1.1 here).
BROKER_SETTINGS = (
    "host", "port", "brokers", "keepalive", "username", "password", "password_file", "tls",
)


class _SessionEndError(Exception):
    """The session ends: broker gone, or the primary host went offline."""


@dataclass
class NodeStats:
    connected: bool = False
    sessions: int = 0
    births: int = 0
    history_replayed: int = 0
    history_dropped: int = 0


class EdgeNode:
    """`async with EdgeNode(...) as node:` connects in the background and keeps reconnecting
    until the block is left; leaving it publishes NDEATH and disconnects."""

    def __init__(
        self,
        config: SparkplugConfig,
        mqtt: MqttConfig,
        *,
        gateway_id: str,
        devices: Sequence[Any],
        state_dir: Path,
        clock: Clock,
        node_properties: Mapping[str, str],
        current: Callable[[str], Sequence[Sample]],
        writer: Writer,
    ) -> None:
        self._config = config
        self._mqtt = mqtt
        self._rotation = brokers_.rotation(mqtt)
        self._client_id = config.resolve_client_id(gateway_id)
        assert config.group_id is not None  # the config model requires it when enabled
        self.topics = NodeTopics(config.group_id, config.resolve_edge_node_id(gateway_id))
        self._state_dir = state_dir
        self._clock = clock
        self._current = current
        self._command_reader = CommandReader(
            self.topics, writer, write_ttl=config.write_ttl, on_rebirth=self.request_rebirth
        )
        self._bdseq = BdSeqStore(state_dir)
        self._bdseq_in_use: int | None = None
        self._properties = dict(node_properties)
        self._metrics = m.device_metrics(devices, self._first_device_alias())
        self._alive: dict[str, bool] = {}
        self._born: set[str] = set()
        self._datatypes: dict[tuple[str, str], int] = {}
        self._quality_sent: dict[tuple[str, str], Quality] = {}
        self._changes: dict[str, dict[str, Sample]] = {}
        self._rebirth = False
        self._in_session = False
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._host_online = asyncio.Event()
        self._host_offline = asyncio.Event()
        self._renew = asyncio.Event()  # new broker settings: end the session, connect again
        self._host_timestamps: dict[str, int] = {}  # server -> newest STATE timestamp seen
        self._commands: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100)
        self._history: MessageBuffer | None = None
        self._lifecycle = OwnedLoop(
            "sparkplug",
            stop_events=(self._stopping, self._wakeup),
            stop_within=STOP_TIMEOUT,
            timeout_event="sparkplug_stop_timeout",
        )
        self.stats = NodeStats()
        self._dropped_commands = 0

    def _first_device_alias(self) -> int:
        return FIRST_NODE_ALIAS + 1 + len(self._properties)

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            if self._config.history:
                history = MessageBuffer(
                    self._state_dir / HISTORY_FILE, self._mqtt.buffer, self._clock
                )
                self._history = await stack.enter_async_context(history)
            await self._lifecycle.start(stack, self._connection_loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lifecycle.stop(exc_type, exc, tb)

    # --- the runtime's calls -------------------------------------------------------------------

    def publish_samples(self, device: str, samples: Sequence[Sample]) -> None:
        """Changed samples of one device: DDATA when it is born in a session, else history."""
        if not samples or device not in self._metrics:
            return
        if self._in_session:
            if device in self._born:
                pending = self._changes.setdefault(device, {})
                for sample in samples:
                    pending[sample.tag] = sample
                self._wakeup.set()
            # An unborn device's values go out in its DBIRTH.
            return
        if self._history is not None:
            self._history.accept(device, m.encode_history(samples))

    def device_status(self, status: DeviceStatus) -> None:
        alive = status.state in ALIVE
        if self._alive.get(status.device) != alive:
            self._alive[status.device] = alive
            self._wakeup.set()

    def request_rebirth(self) -> None:
        """NBIRTH and every DBIRTH again, in this session (NCMD Rebirth does this)."""
        self._rebirth = True
        self._wakeup.set()

    async def reconfigure_broker(self, mqtt: MqttConfig) -> None:
        """Reloaded `mqtt:` settings: the history file takes the new `buffer` bounds; when the
        broker, credentials, TLS or keepalive changed, the session ends (NDEATH) and a new one
        starts at once with them."""
        old, self._mqtt = self._mqtt, mqtt
        self._rotation = brokers_.rotation(mqtt, previous=self._rotation)
        if old.buffer != mqtt.buffer and self._history is not None:
            await self._history.reconfigure(mqtt.buffer)
        if any(getattr(old, name) != getattr(mqtt, name) for name in BROKER_SETTINGS):
            log.info("sparkplug_reconfigured", broker=self._rotation.current.name)
            self._renew.set()

    def reconfigure(self, devices: Sequence[Any], node_properties: Mapping[str, str]) -> None:
        """A reloaded config: new metrics, aliases and devices, announced by a full rebirth."""
        self._properties = dict(node_properties)
        self._metrics = m.device_metrics(devices, self._first_device_alias())
        for device in list(self._alive):
            if device not in self._metrics:
                del self._alive[device]
        self.request_rebirth()

    def _commands_refused(self) -> int:
        """Commands refused: by the reader, and retained or queued-out ones here."""
        return self._command_reader.refused + self._dropped_commands

    def health(self) -> dict[str, Any]:
        """What `{base}/health` says about the Sparkplug session."""
        return {
            **asdict(self.stats),
            "commands_refused": self._commands_refused(),
            "in_session": self._in_session,
            "bdseq": self._bdseq_in_use,
            "devices_born": len(self._born),
            "history_depth": self._history.depth if self._history is not None else 0,
        }

    # --- connection ----------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        while not self._stopping.is_set():
            broker = self._rotation.current
            bdseq = await asyncio.to_thread(self._bdseq.take)
            self._bdseq_in_use = bdseq
            will = aiomqtt.Will(
                self.topics.node(MessageType.NDEATH),
                m.node_death(bdseq=bdseq, now=self._clock.wall_ms()),
                qos=1,
                retain=False,
            )
            reconnect_now = False
            self._renew.clear()
            try:
                password, tls_context = await asyncio.to_thread(broker.read_secrets)
                client = brokers_.make_client(
                    self._mqtt, broker, client_id=self._client_id, will=will,
                    password=password, tls_context=tls_context,
                )
                async with client:
                    self._rotation.connected()
                    self.stats.connected = True
                    log.info("sparkplug_connected", broker=broker.name,
                             bdseq=bdseq, edge_node=self.topics.edge_node_id)
                    reconnect_now = await self._session(client, bdseq)
            except (aiomqtt.MqttError, _SessionEndError, OSError, ssl.SSLError) as exc:
                log.warning("sparkplug_session_lost", broker=broker.name,
                            error=str(exc) or type(exc).__name__)
            finally:
                self._session_ended()
            if self._stopping.is_set():
                return
            if reconnect_now and len(self._rotation.endpoints) == 1:
                continue  # the one server: at once, and wait for the host to return there
            # The next server at once (after a lost session, a refusal, or the primary host
            # offline on this one: Sparkplug 3.0 asks the node to walk to the next server);
            # a jittered backoff only after a whole round failed.
            delay = self._rotation.failed()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()

    def _session_ended(self) -> None:
        self.stats.connected = False
        self._in_session = False
        self._born.clear()
        self._changes.clear()
        self._host_online.clear()
        self._host_offline.clear()
        if self._history is not None:
            self._history.session_lost()

    async def _session(self, client: aiomqtt.Client, bdseq: int) -> bool:
        """One MQTT session; returns True when it ended because the primary host went offline
        or the broker settings changed (NDEATH published, the caller reconnects at once)."""
        await client.subscribe(self.topics.ncmd, qos=1, timeout=PUBLISH_TIMEOUT)
        await client.subscribe(self.topics.dcmd_filter, qos=1, timeout=PUBLISH_TIMEOUT)
        primary = self._config.primary_host_id
        if primary is not None:
            await client.subscribe(state(primary), qos=1, timeout=PUBLISH_TIMEOUT)
        else:
            self._host_online.set()
        self.stats.sessions += 1
        reconnect_now = False
        try:
            async with asyncio.TaskGroup() as group:
                receiver = group.create_task(self._receive_loop(client))
                commands = group.create_task(self._command_loop())
                await _first_of(self._stopping, self._host_online, self._renew)
                sender: asyncio.Task[None] | None = None
                reconnect_now = self._renew.is_set()
                if not (self._stopping.is_set() or self._renew.is_set()):
                    # From here changes of born devices wait for DDATA, others are in their
                    # DBIRTH (read from the tag table): none goes to the history file.
                    self._in_session = True
                    await self._births(client, bdseq)
                    if self._history is not None:
                        self._history.session_started()
                    sender = group.create_task(self._send_loop(client, bdseq))
                    await _first_of(self._stopping, self._host_offline, self._renew)
                    reconnect_now = not self._stopping.is_set()
                self._in_session = False
                for task in (receiver, commands, sender):
                    if task is not None:
                        task.cancel()
        except BaseExceptionGroup as group_error:
            lost, bugs = group_error.split((aiomqtt.MqttError, _SessionEndError))
            if bugs is not None or lost is None:
                raise
            raise _SessionEndError(str(lost.exceptions[0])) from None
        # Intentional disconnect (stop, or the primary host offline): NDEATH first
        # (tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath).
        try:
            await client.publish(
                self.topics.node(MessageType.NDEATH),
                m.node_death(bdseq=bdseq, now=self._clock.wall_ms()),
                qos=1,
                retain=False,
                timeout=1.0,
            )
        except aiomqtt.MqttError as exc:
            log.warning("sparkplug_ndeath_not_published", error=str(exc))
        reason = "stop"
        if reconnect_now:
            reason = "new broker settings" if self._renew.is_set() else "primary host offline"
        log.info("sparkplug_session_ended", bdseq=bdseq, reason=reason)
        return reconnect_now

    # --- births and data -------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: Payload) -> None:
        # QoS 0, not retained: births, data and deaths alike (tck-id-topics-*-mqtt).
        await client.publish(topic, payload.SerializeToString(), qos=0, retain=False,
                             timeout=PUBLISH_TIMEOUT)

    async def _births(self, client: aiomqtt.Client, bdseq: int) -> None:
        """NBIRTH (seq 0) and the DBIRTH of every live device, before any data."""
        self._rebirth = False
        self._born.clear()
        self._changes.clear()
        self._seq = 0
        now = self._clock.wall_ms()
        payload = m.node_birth(bdseq=bdseq, now=now, properties=self._properties,
                               first_alias=FIRST_NODE_ALIAS)
        await self._publish(client, self.topics.node(MessageType.NBIRTH), payload)
        self.stats.births += 1
        for device in self._metrics:
            if self._alive.get(device):
                await self._device_birth(client, device)

    async def _device_birth(self, client: aiomqtt.Client, device: str) -> None:
        metrics = self._metrics[device]
        now = self._clock.wall_ms()
        samples = {sample.tag: sample for sample in self._current(device)}
        payload = Payload(timestamp=now, seq=self._next_seq())
        for tag in metrics.tags.values():
            sample = samples.get(tag.name)
            value = sample.value if sample is not None else None
            datatype = tag.datatype if tag.datatype is not None else m.datatype_of(value)
            if not m.fits(datatype, value):  # a declared type the value does not fit: say so
                datatype = m.datatype_of(value)
            self._datatypes[(device, tag.name)] = datatype
            m.birth_metric(payload, tag, datatype, sample, now=now)
            if sample is not None:
                self._quality_sent[(device, tag.name)] = sample.quality
            else:
                self._quality_sent[(device, tag.name)] = Quality.BAD
        # Born from here: what changes while the DBIRTH is on its way goes in DDATA after it.
        self._changes.pop(device, None)
        self._born.add(device)
        await self._publish(client, self.topics.device(MessageType.DBIRTH, device), payload)

    async def _device_death(self, client: aiomqtt.Client, device: str) -> None:
        self._born.discard(device)
        self._changes.pop(device, None)
        payload = Payload(timestamp=self._clock.wall_ms(), seq=self._next_seq())
        await self._publish(client, self.topics.device(MessageType.DDEATH, device), payload)

    def _data(self, device: str, samples: Sequence[Sample], *, historical: bool) -> Payload:
        """DDATA of `samples` (raises `DatatypeChangedError` when one no longer fits)."""
        metrics = self._metrics[device]
        payload = Payload(timestamp=self._clock.wall_ms())
        for sample in samples:
            tag = metrics.tags.get(sample.tag)
            if tag is None:
                continue
            key = (device, sample.tag)
            datatype = self._datatypes.get(key)
            if datatype is None:
                continue  # not in this session's DBIRTH
            before = self._quality_sent.get(key, Quality.GOOD)
            with_quality = sample.quality is not Quality.GOOD or before is not Quality.GOOD
            m.data_metric(payload, tag, datatype, sample, with_quality=with_quality,
                          historical=historical)
            if not historical:
                self._quality_sent[key] = sample.quality
        return payload

    async def _send_loop(self, client: aiomqtt.Client, bdseq: int) -> None:
        while True:
            self._wakeup.clear()
            if self._rebirth:
                await self._births(client, bdseq)
            for device in list(self._metrics):
                alive = self._alive.get(device, False)
                if device in self._born and not alive:
                    await self._device_death(client, device)
                elif device not in self._born and alive:
                    await self._device_birth(client, device)
            for device in list(self._changes):
                pending = self._changes.pop(device)
                if device not in self._born:
                    continue
                try:
                    payload = self._data(device, list(pending.values()), historical=False)
                except m.DatatypeChangedError as exc:
                    log.info("sparkplug_datatype_changed", device=device, error=str(exc))
                    await self._device_death(client, device)
                    await self._device_birth(client, device)
                    continue
                if payload.metrics:
                    payload.seq = self._next_seq()
                    await self._publish(
                        client, self.topics.device(MessageType.DDATA, device), payload
                    )
            wait = await self._replay_history(client)
            if self._stopping.is_set():
                return
            if self._wakeup.is_set() or self._rebirth:
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
            # comes as the event is set (a stop sets both), and the session would not end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wait == math.inf else wait):
                    await self._wakeup.wait()

    async def _replay_history(self, client: aiomqtt.Client) -> float:
        """Send one held batch with `is_historical`; returns how long until the next may go
        (`math.inf`: none held)."""
        history = self._history
        if history is None:
            return math.inf
        entry = await history.take_backlog()
        if not isinstance(entry, Entry):
            return entry
        device = entry.topic
        if device not in self._born:
            # No DDATA before a DBIRTH: a device dead now keeps none of its history.
            self.stats.history_dropped += 1
            log.info("sparkplug_history_dropped", device=device, reason="device not born")
            history.ack(entry)
            return 0.0
        try:
            samples = m.decode_history(device, entry.payload)
            payload = self._data(device, samples, historical=True)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.stats.history_dropped += 1
            log.warning("sparkplug_history_dropped", device=device, error=str(exc))
            history.ack(entry)
            return 0.0
        if payload.metrics:
            payload.seq = self._next_seq()
            await self._publish(client, self.topics.device(MessageType.DDATA, device), payload)
            self.stats.history_replayed += 1
        history.ack(entry)
        return 0.0

    # --- what comes in ---------------------------------------------------------------------------

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        primary = self._config.primary_host_id
        state_topic = state(primary) if primary is not None else None
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            if topic == state_topic:
                self._host_state(bytes(payload))
                continue
            if message.retain:
                # A command acts once: a broker's stored copy is not one.
                self._dropped_commands += 1
                log.warning("sparkplug_command_refused", topic=topic[:200],
                            error="a retained message is not a command")
                continue
            try:
                self._commands.put_nowait((topic, bytes(payload)))
            except asyncio.QueueFull:
                self._dropped_commands += 1
                log.warning("sparkplug_command_refused", topic=topic[:200],
                            error="too many commands waiting")

    def _host_state(self, payload: bytes) -> None:
        try:
            host = parse_state(payload)
        except HostStateError as exc:
            log.warning("sparkplug_state_refused", host=self._config.primary_host_id,
                        error=str(exc))
            return
        # Newest per server: with several, the host publishes its STATE on each on its own,
        # and an online on the next server may be older than the offline that ended this one.
        newest = self._host_timestamps.get(self._rotation.current.name, -1)
        if host.timestamp < newest:
            log.info("sparkplug_state_stale", host=self._config.primary_host_id,
                     timestamp=host.timestamp, newest=newest)
            return
        self._host_timestamps[self._rotation.current.name] = host.timestamp
        log.info("sparkplug_primary_host", host=self._config.primary_host_id, online=host.online)
        if host.online:
            self._host_online.set()
        else:
            if self._host_online.is_set() or self._in_session:
                self._host_offline.set()
            self._host_online.clear()

    async def _command_loop(self) -> None:
        while True:
            topic, payload = await self._commands.get()
            try:
                await self._command_reader.handle(topic, payload, self._metrics, self._datatypes)
            except Exception:
                log.exception("sparkplug_command_failed", topic=topic[:200])


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

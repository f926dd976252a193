"""Real peers for every test: a private mosquitto per test on a free loopback port (stoppable and
restartable on the same port, with persistence so sessions survive a restart), a subscriber that
collects messages, and topic / client-id names unique to the test.

Fixtures: `mosquitto` (a running broker), `mosquitto_factory` (brokers with extra config: TLS,
passwords), `mqtt_names` (unique names), `mqtt_collect` (start a collecting subscriber).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.waiting import until

HOST = "127.0.0.1"


def mosquitto_binary() -> str:
    """The mosquitto executable; a missing broker is an error, never a skip."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if found is None:
        pytest.fail("mosquitto is not installed (scripts/setup installs it with apt-get)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    """One mosquitto process. `stop()` and `start()` keep the port, the config and the
    persistence file, so persistent sessions and retained messages survive a restart."""

    workdir: Path
    port: int
    listener_options: Sequence[str] = ()
    global_options: Sequence[str] = ()
    allow_anonymous: bool = True
    host: str = HOST
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            *self.listener_options,
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 100000",
            # Started as root, mosquitto switches to user "mosquitto", which cannot write the
            # test's private directory: stay who we are.
            f"user {getpass.getuser()}",
            f"log_dest file {self.log_path}",
            "log_type all",
            *self.global_options,
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 10.0) -> None:
        """Start (again) and return once the port accepts connections."""
        if self.running:
            return
        self.write_config()
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read() if self.process.stderr else b""
                pytest.fail(
                    f"mosquitto exited with {self.process.returncode}: "
                    f"{stderr.decode(errors='replace')}\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop(kill=True)
        pytest.fail(f"mosquitto did not accept connections on {self.port} within {timeout} s")

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (mosquitto saves its persistence file), or SIGKILL with `kill=True`."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no mosquitto log)"


class MosquittoFactory:
    """Starts brokers with extra config; all of them are stopped at the end of the test."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._brokers: list[Broker] = []

    def __call__(
        self,
        *,
        listener_options: Sequence[str] = (),
        global_options: Sequence[str] = (),
        allow_anonymous: bool = True,
    ) -> Broker:
        workdir = self._root / f"mosquitto-{len(self._brokers)}"
        workdir.mkdir(parents=True)
        broker = Broker(
            workdir=workdir,
            port=free_port(),
            listener_options=listener_options,
            global_options=global_options,
            allow_anonymous=allow_anonymous,
        )
        self._brokers.append(broker)
        broker.start()
        return broker

    def close(self) -> None:
        for broker in self._brokers:
            broker.stop(kill=True)


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    factory = MosquittoFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Broker:
    """A running anonymous broker on 127.0.0.1 and a free port."""
    return mosquitto_factory()


@dataclass(frozen=True)
class MqttNames:
    """Topics and client ids unique to one test (derived from its name)."""

    stem: str

    def topic(self, *levels: str) -> str:
        return "/".join(("test", self.stem, *levels))

    def client_id(self, role: str = "client") -> str:
        return f"{self.stem[:40]}-{role}"


@pytest.fixture
def mqtt_names(request: pytest.FixtureRequest) -> MqttNames:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)
    digest = hashlib.sha1(f"{request.node.nodeid}{time.time_ns()}".encode()).hexdigest()[:8]
    return MqttNames(f"{name[:48]}-{digest}")


class Collector:
    """A real aiomqtt subscriber that keeps every message on `topic_filter`.

    With `persistent=True` its session outlives disconnects and broker restarts: it reconnects
    by itself (without subscribing again, so retained messages are not sent twice) and the
    broker queues QoS 1 messages for it meanwhile.
    """

    def __init__(
        self,
        broker: Broker,
        topic_filter: str,
        *,
        client_id: str,
        persistent: bool = False,
        protocol: str = "5",
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.persistent = persistent
        self.protocol = protocol
        self.qos = qos
        self.username = username
        self.password = password
        self.tls_context = tls_context
        self.messages: list[aiomqtt.Message] = []
        self.connects = 0
        self._arrived = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def payloads(self) -> list[Any]:
        """Payloads decoded as JSON (None for an empty payload)."""
        return [orjson.loads(m.payload) if m.payload else None for m in self.messages]  # type: ignore[arg-type]

    def topics(self) -> list[str]:
        return [m.topic.value for m in self.messages]

    async def wait_for(
        self, condition: Callable[[list[aiomqtt.Message]], bool], within: float = 10.0
    ) -> list[aiomqtt.Message]:
        """Wait until `condition(messages)` holds; fail the test with what arrived if not."""
        await until(
            lambda: condition(self.messages),
            within=within,
            arrived=self._arrived,
            shown=lambda: [(m.topic.value, bytes(m.payload)[:200]) for m in self.messages[-20:]],  # type: ignore[arg-type]
        )
        return self.messages

    async def wait_count(self, count: int, within: float = 10.0) -> list[aiomqtt.Message]:
        return await self.wait_for(lambda messages: len(messages) >= count, within)

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run(), name=f"collector-{self.client_id}")
        try:
            async with asyncio.timeout(10):
                await self._subscribed.wait()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _client(self) -> aiomqtt.Client:
        v5 = self.protocol == "5"
        properties = None
        if v5 and self.persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else not self.persistent,
            clean_start=(self.connects == 0) if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            username=self.username,
            password=self.password,
            tls_context=self.tls_context,
            timeout=5,
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    self.connects += 1
                    if self.connects == 1 or not self.persistent:
                        await client.subscribe(self.topic_filter, qos=self.qos)
                    self._subscribed.set()
                    async for message in client.messages:
                        self.messages.append(message)
                        self._arrived.set()
            except aiomqtt.MqttError:
                pass  # broker gone or restarting: connect again
            await asyncio.sleep(0.05)


@pytest.fixture
async def mqtt_collect() -> AsyncIterator[Callable[..., Any]]:
    """`collector = await mqtt_collect(broker, "topic/#", client_id=..., persistent=...)`: a
    subscribed `Collector`, stopped at the end of the test."""
    started: list[Collector] = []

    async def start(broker: Broker, topic_filter: str, **options: Any) -> Collector:
        options.setdefault("client_id", f"collector-{len(started)}-{time.time_ns()}")
        collector = Collector(broker, topic_filter, **options)
        await collector.__aenter__()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        await collector.__aexit__(None, None, None)

"""Fixtures of the fault-injection suite: the daemon as a real process (tests/faults/daemon.py),
Modbus counter servers in this process or in their own (killable) processes, an OPC UA server
in its own (killable) process, and a state directory on a nearly full disk.

The brokers come from tests/conftest.py (`mosquitto`, `mosquitto_factory`, `mqtt_collect`).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.faults.counter_server import CounterServer
from tests.faults.daemon import ROOT, Daemon

COUNTER_SERVER = Path(__file__).with_name("counter_server.py")
OPCUA_SERVER = Path(__file__).with_name("opcua_server.py")
TINY_DISK_BYTES = 256 * 1024


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """`daemon = start_daemon(config)`: writes config.yaml and runs the daemon on it (SIGKILLed
    at the end of the test if still running). `start=False` only prepares it; `preexec_fn`
    runs in the daemon's process before it starts (resource limits)."""
    daemons: list[Daemon] = []

    def start(
        config: dict[str, Any],
        *,
        start: bool = True,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Daemon:
        daemon = Daemon(
            tmp_path / "config.yaml", tmp_path / f"daemon-{len(daemons)}.log", preexec_fn
        )
        daemon.write_config(config)
        daemons.append(daemon)
        return daemon.start() if start else daemon

    yield start
    for daemon in daemons:
        daemon.kill()


@dataclass(frozen=True)
class TinyDisk:
    """Where a daemon's state goes to find the disk full after TINY_DISK_BYTES.

    `tmpfs`: the directory is a tmpfs of that size (mounting needs root, which CI has).
    `rlimit`: when mounting is refused, the daemon runs with RLIMIT_FSIZE at that size instead
    (each file it writes stops growing there, with EFBIG as on a full disk; SIGXFSZ ignored).
    """

    path: Path
    how: str

    def limit_process(self) -> None:
        """`preexec_fn` of the daemon's process."""
        if self.how == "rlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (TINY_DISK_BYTES, TINY_DISK_BYTES))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    """A state directory with room for TINY_DISK_BYTES (see TinyDisk); unmounted at the end
    (lazily if a process still holds a file on it)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK_BYTES // 1024}k", "tmpfs",
         str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield TinyDisk(mount_point, "rlimit")
        return
    try:
        yield TinyDisk(mount_point, "tmpfs")
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
async def counter_server() -> AsyncIterator[Callable[..., Any]]:
    """`server = await counter_server()`: a CounterServer in this process, stopped at the end."""
    started: list[CounterServer] = []

    async def start(port: int = 0) -> CounterServer:
        server = await CounterServer(port).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


class CounterServerProcess:
    """tests/faults/counter_server.py as its own process: `kill()` is a SIGKILL, `start()`
    brings it back on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> CounterServerProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(COUNTER_SERVER), str(self.port),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 15)
        assert line.startswith(b"port "), f"counter server did not start: {line!r}"
        self.port = int(line.split()[1])
        return self

    async def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)


@pytest.fixture
async def counter_server_process() -> AsyncIterator[Callable[..., Any]]:
    """`server = await counter_server_process()`: a killable counter server process."""
    started: list[CounterServerProcess] = []

    async def start() -> CounterServerProcess:
        server = await CounterServerProcess().start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.kill()


class OpcUaServerProcess:
    """tests/faults/opcua_server.py as its own process: `kill()` is a SIGKILL, `start()` brings
    it back on the same port. `runs` holds what each run of it reported (its `started` time and
    its session and subscription events), read from its stdout as they come."""

    def __init__(self) -> None:
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.runs: list[OpcUaServerRun] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    @property
    def run(self) -> OpcUaServerRun:
        """The current (or last) run."""
        return self.runs[-1]

    async def start(self) -> OpcUaServerProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(OPCUA_SERVER), str(self.port),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert line.startswith(b"{"), f"OPC UA server did not start: {line!r}"
        hello = orjson.loads(line)
        self.port = int(hello["port"])
        run = OpcUaServerRun(started=float(hello["started"]))
        self.runs.append(run)
        self._reader = asyncio.create_task(self._read(self.process.stdout, run))
        return self

    async def _read(self, stdout: asyncio.StreamReader, run: OpcUaServerRun) -> None:
        while line := await stdout.readline():
            run.events.append(orjson.loads(line))
            self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until `condition()` holds, re-checked at each event the server reports."""
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def kill(self) -> None:
        process, self.process = self.process, None
        reader, self._reader = self._reader, None
        if process is not None and process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)
        if reader is not None:
            await asyncio.wait_for(reader, 10)  # the rest of its stdout, to the end


@dataclass
class OpcUaServerRun:
    """What one run of the OPC UA server process reported."""

    started: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == kind]

    @property
    def sessions(self) -> int:
        return len(self.of("session"))

    @property
    def subscriptions_created(self) -> int:
        return len(self.of("subscription_created"))

    @property
    def most_live_subscriptions(self) -> int:
        """The most subscriptions the server held at once (at each creation)."""
        return max((event["live"] for event in self.of("subscription_created")), default=0)


@pytest.fixture
async def opcua_server_process() -> AsyncIterator[Callable[..., Any]]:
    """`server = await opcua_server_process()`: a killable OPC UA server process."""
    started: list[OpcUaServerProcess] = []

    async def start() -> OpcUaServerProcess:
        server = await OpcUaServerProcess().start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.kill()

"""Real processes for the fault-injection suite: the daemon (`python -m controller run CONFIG`)
as a subprocess that can be SIGKILLed, SIGHUPed and measured from /proc, Modbus counter servers
in this process or in their own (killable) processes, and configs for them.

The brokers come from tests/conftest.py (`mosquitto`, `mosquitto_factory`, `mqtt_collect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.faults.counter_server import CounterServer

ROOT = Path(__file__).resolve().parents[2]
COUNTER_SERVER = Path(__file__).with_name("counter_server.py")
TINY_DISK_BYTES = 256 * 1024


def modbus_device(
    name: str, port: int, *, poll: str = "100ms", timeout: str = "300ms", tags: int = 1
) -> dict[str, Any]:
    """A Modbus TCP device on 127.0.0.1:`port` with `tags` uint16 registers from 0: `counter`,
    then `r1`, `r2`, ... (on a counter server, each changes at every poll)."""
    names = ["counter", *(f"r{i}" for i in range(1, tags))]
    return {
        "name": name,
        "driver": "modbus",
        "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
        "poll_interval": poll,
        "timeout": timeout,
        "tags": [{"name": tag, "address": i, "type": "uint16"} for i, tag in enumerate(names)],
    }


def gateway_config(
    gateway_id: str,
    state_dir: Path,
    broker: Any,
    devices: list[dict[str, Any]],
    *,
    buffer: dict[str, Any] | None = None,
    **mqtt: Any,
) -> dict[str, Any]:
    """A whole config: health every second and fast MQTT reconnects unless overridden."""
    section: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "health_interval": "1s",
        "reconnect_min": "50ms",
        "reconnect_max": "1s",
        **mqtt,
    }
    if buffer is not None:
        section["buffer"] = buffer
    return {
        "gateway": {"id": gateway_id, "state_dir": str(state_dir)},
        "mqtt": section,
        "devices": devices,
    }


class Daemon:
    """`edgecell run` in its own process; its JSON log lines go to `log_path`."""

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controller", "--log-format", "json", "run",
                 str(self.config_path)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=self.preexec_fn,  # noqa: PLW1509  (only setrlimit and signal)
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "the daemon was not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no offline message, nothing written after this instant."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def reload(self) -> None:
        """SIGHUP, as `systemctl reload` sends it."""
        assert self.running, f"the daemon is not running:\n{self.log_tail()}"
        self.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]

    async def stop(self, within: float = 10.0) -> int:
        """SIGTERM and the exit status."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(process.wait, within)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)

    def rss_bytes(self) -> int:
        """Resident memory of the daemon now, from /proc (VmRSS)."""
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                events.append(orjson.loads(line))
        return events

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


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

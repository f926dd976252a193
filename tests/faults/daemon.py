"""`edgecell run` as a real process for the fault-injection suite (SIGKILL, SIGHUP, SIGTERM,
RSS from /proc, its JSON log), and the configs it runs on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[2]


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


def opcua_device(
    name: str,
    port: int,
    *,
    subscribed: dict[str, str] | None = None,
    polled: dict[str, str] | None = None,
    timeout: str = "2s",
    connect_timeout: str = "5s",
    reconnect_max: str = "1s",
) -> dict[str, Any]:
    """An OPC UA device at opc.tcp://127.0.0.1:`port` with subscribed tags (publishing every
    100 ms) and polled tags (every 200 ms), each given as {tag name: NodeId}; a keep-alive read
    every second and reconnects within 100 ms to `reconnect_max`, as the fault tests want them."""
    tags = [
        {"name": tag, "node": node, "mode": mode}
        for mode, nodes in (("subscribe", subscribed), ("poll", polled))
        for tag, node in (nodes or {}).items()
    ]
    return {
        "name": name,
        "driver": "opcua",
        "endpoint": f"opc.tcp://127.0.0.1:{port}",
        "publishing_interval": "100ms",
        "poll_interval": "200ms",
        "timeout": timeout,
        "connect_timeout": connect_timeout,
        "keepalive_interval": "1s",
        "reconnect_min": "100ms",
        "reconnect_max": reconnect_max,
        "tags": tags,
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

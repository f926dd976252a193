"""Soak: the daemon against the simulated cell for an hour, with a fault every few minutes (the
broker restarted, the cell's device servers killed and restarted); prints the data messages
produced against those delivered, and the daemon's memory at the start and the end.

    .venv/bin/python -m bench.soak                    # one hour
    .venv/bin/python -m bench.soak --duration 600     # ten minutes

Every piece is a real process: mosquitto, `edgecell sim` (normal-day at --speed), `edgecell run`
on configs/demo.yaml pointed at them, and a subscriber here with a persistent session. Produced
is the seq each device's data reached (read from the buffer file after a clean stop), delivered
the distinct seqs the subscriber received; the JSON goes to bench/results/soak-<time>.json.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import getpass
import json
import os
import platform
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file, not only as `-m bench.soak`
    sys.path.insert(0, str(ROOT))

from controller.localbroker import find_mosquitto, free_port  # noqa: E402
from controller.mqtt.buffer import BUFFER_FILE  # noqa: E402
from drivers.sim.scenario import load_scenario  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
GATEWAY = "soak"
BASE = f"edgecell/{GATEWAY}"
RSS_GROWTH_LIMIT = 0.05


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and its parts (RssAnon: the heap; RssFile: mapped files, libraries, SQLite's shared
    memory) from /proc, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        key: int(fields[key].split()[0]) * 1024
        for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem")
        if key in fields
    }


def rss_bytes(pid: int) -> int:
    return memory(pid)["VmRSS"]


def free_port_run(count: int) -> int:
    """A first port such that it and the `count - 1` after it are free now."""
    for _ in range(200):
        first = free_port()
        if first + count > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((HOST, port))
            return first
        except OSError:
            continue
    raise RuntimeError(f"no run of {count} free ports found")


async def wait_for_port(port: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            async with asyncio.timeout(0.5):
                _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after {within} s") from None
            await asyncio.sleep(0.05)


class Broker:
    """mosquitto with persistence: a stop (SIGTERM) keeps the subscriber's session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.workdir}/\nmax_queued_messages 1000000\n"
            f"user {getpass.getuser()}\nlog_dest none\n",
            encoding="utf-8",
        )
        self.process = await asyncio.create_subprocess_exec(
            find_mosquitto(), "-c", str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_for_port(self.port)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


class Cell:
    """`edgecell sim` on consecutive ports from `base_port`: killed and started again on the
    same ports, which is what the daemon sees when the device servers restart."""

    def __init__(self, scenario: str, speed: float, log_path: Path) -> None:
        self.scenario = scenario
        self.speed = speed
        loaded = load_scenario(scenario)
        self.devices = len(loaded.modbus_devices) + len(loaded.opcua_devices)
        self.base_port = free_port_run(self.devices)
        self.log_path = log_path
        self.endpoints: dict[str, Any] = {}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "controller", "--log-format", "json", "sim",
                "--scenario", self.scenario, "--speed", str(self.speed),
                "--base-port", str(self.base_port),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        for _ in range(self.devices):
            line = await asyncio.wait_for(self.process.stdout.readline(), 60)
            name, _, endpoint = line.decode().strip().partition(": ")
            self.endpoints[name] = (
                endpoint if endpoint.startswith("opc.tcp://") else ast.literal_eval(endpoint)
            )

    async def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()


@dataclass
class Subscriber:
    """A persistent MQTT session on the data and health topics; reconnects by itself."""

    port: int
    seen: dict[str, set[int]] = field(default_factory=dict)
    messages: int = 0
    health: dict[str, Any] = field(default_factory=dict)
    connects: int = 0

    async def run(self, subscribed: asyncio.Event) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    HOST,
                    self.port,
                    identifier=f"{GATEWAY}-soak-subscriber",
                    protocol=aiomqtt.ProtocolVersion.V311,
                    clean_session=False,
                    timeout=10,
                ) as client:
                    self.connects += 1
                    if self.connects == 1:
                        await client.subscribe(f"{BASE}/data/+", qos=1)
                        await client.subscribe(f"{BASE}/health", qos=0)
                    subscribed.set()
                    async for message in client.messages:
                        self._take(message.topic.value, bytes(message.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _take(self, topic: str, payload: bytes) -> None:
        body = orjson.loads(payload)
        if topic.endswith("/health"):
            self.health = body
            return
        self.messages += 1
        self.seen.setdefault(topic.rsplit("/", 1)[-1], set()).add(body["seq"])

    @property
    def delivered(self) -> int:
        return sum(len(seqs) for seqs in self.seen.values())


def daemon_config(cell: Cell, broker: Broker, state_dir: Path) -> dict[str, Any]:
    """configs/demo.yaml pointed at the cell and the broker."""
    config: dict[str, Any] = yaml.safe_load(
        (ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8")
    )
    config["gateway"].update({"id": GATEWAY, "state_dir": str(state_dir)})
    config["mqtt"].update(
        {"host": HOST, "port": broker.port, "health_interval": "5s", "reconnect_max": "5s"}
    )
    for device in config["devices"]:
        endpoint = cell.endpoints.get(device["name"])
        if endpoint is None:
            continue
        if device["driver"] == "modbus":
            host, port, unit_id = endpoint
            device["link"].update({"host": host, "port": port})
            device["unit_id"] = unit_id
        else:
            device["endpoint"] = endpoint
    return config


def produced_and_unsent(state_dir: Path) -> tuple[dict[str, int], dict[str, set[int]]]:
    """After a clean stop: the last seq of every device, and the data messages left unsent."""
    db = sqlite3.connect(state_dir / BUFFER_FILE)
    try:
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        rows = db.execute("SELECT topic, payload FROM messages").fetchall()
    finally:
        db.close()
    produced = {
        name.removeprefix("seq/"): value
        for name, value in counters.items()
        if name.startswith("seq/")
    }
    unsent: dict[str, set[int]] = {}
    for topic, payload in rows:
        if topic.startswith(f"{BASE}/data/"):
            unsent.setdefault(topic.rsplit("/", 1)[-1], set()).add(orjson.loads(payload)["seq"])
    return produced, unsent


def log_summary(path: Path) -> dict[str, int]:
    """Warning and error lines of the daemon, by event."""
    counts: Counter[str] = Counter()
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            event = orjson.loads(line)
            if event.get("level") in {"warning", "error", "critical"}:
                counts[f"{event['level']}: {str(event.get('event'))[:80]}"] += 1
    return dict(counts.most_common())


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    broker = Broker(workdir)
    await broker.start()
    cell = Cell(args.scenario, args.speed, workdir / "sim.log")
    await cell.start()
    subscriber = Subscriber(broker.port)
    subscribed = asyncio.Event()
    state_dir = workdir / "state"
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(daemon_config(cell, broker, state_dir)), "utf-8")
    daemon_log = workdir / "daemon.log"
    faults: list[dict[str, Any]] = []
    rss: list[tuple[float, int]] = []
    memory_at: dict[str, dict[str, int]] = {}
    started = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        listener = tasks.create_task(subscriber.run(subscribed))
        await asyncio.wait_for(subscribed.wait(), 15)
        with daemon_log.open("ab") as stderr:
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "controller", "--log-format", "json", "run",
                str(config_path),
                cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        log(f"daemon pid {daemon.pid}, cell on ports {cell.base_port}+, broker {broker.port}; "
            f"workdir {workdir}")

        def elapsed() -> float:
            return time.monotonic() - started

        async def sample_rss_until(deadline: float) -> None:
            while elapsed() < deadline:
                if daemon.returncode is not None:
                    raise RuntimeError(f"the daemon exited with {daemon.returncode}")
                rss.append((round(elapsed(), 1), rss_bytes(daemon.pid)))
                await asyncio.sleep(min(10.0, max(0.0, deadline - elapsed())))

        await sample_rss_until(args.warm_up)
        rss_start = rss_bytes(daemon.pid)
        memory_at["start"] = memory(daemon.pid)
        log(f"warmed up: RSS {rss_start / 2**20:.1f} MiB, {subscriber.delivered} delivered")
        kind = 0
        last_fault_by = args.duration - max(60.0, args.broker_down, args.cell_down) - 30
        next_fault = args.warm_up + args.fault_every / 2
        while next_fault <= last_fault_by:
            await sample_rss_until(next_fault)
            fault: dict[str, Any] = {"at_s": round(elapsed(), 1)}
            if kind % 2 == 0:
                fault["kind"] = "broker restart"
                await broker.stop()
                await sample_rss_until(elapsed() + args.broker_down)
                await broker.start()
            else:
                fault["kind"] = "cell restart (device servers killed)"
                await cell.kill()
                await sample_rss_until(elapsed() + args.cell_down)
                await cell.start()
            fault["down_s"] = round(elapsed() - fault["at_s"], 1)
            faults.append(fault)
            log(f"fault {len(faults)}: {fault['kind']} ({fault['down_s']} s); "
                f"{subscriber.delivered} delivered so far")
            kind += 1
            next_fault += args.fault_every
        await sample_rss_until(args.duration)
        # Let the last backlog drain: the gateway's buffer is empty and nothing new is missing.
        for _ in range(60):
            if subscriber.health.get("mqtt", {}).get("buffer_depth", 1) == 0:
                break
            await asyncio.sleep(1.0)
        rss_end = rss_bytes(daemon.pid)
        memory_at["end"] = memory(daemon.pid)
        last_health = subscriber.health
        daemon.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(daemon.wait(), 15)
        await asyncio.sleep(1.0)  # what the stop flushed
        listener.cancel()
    await broker.stop()
    await cell.kill()

    produced, unsent = produced_and_unsent(state_dir)
    per_device: dict[str, dict[str, Any]] = {}
    for device, last in sorted(produced.items()):
        seen = subscriber.seen.get(device, set())
        left = unsent.get(device, set())
        missing = sorted(set(range(1, last + 1)) - seen - left)
        per_device[device] = {
            "produced": last,
            "delivered": len(seen & set(range(1, last + 1))),
            "left_in_buffer": len(left),
            "missing": len(missing),
            "first_missing": missing[:10],
        }
    total_produced = sum(d["produced"] for d in per_device.values())
    total_missing = sum(d["missing"] for d in per_device.values())
    growth = (rss_end - rss_start) / rss_start
    return {
        "benchmark": "soak",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": vars(args),
        "duration_s": round(elapsed(), 1),
        "faults": faults,
        "produced": total_produced,
        "delivered": subscriber.delivered,
        "received_messages": subscriber.messages,
        "left_in_buffer": sum(d["left_in_buffer"] for d in per_device.values()),
        "missing": total_missing,
        "devices": per_device,
        "rss_start_bytes": rss_start,
        "rss_end_bytes": rss_end,
        "rss_growth": round(growth, 4),
        "rss_growth_ok": growth < RSS_GROWTH_LIMIT,
        "rss_series": rss,
        "memory": memory_at,
        "daemon_exit": code,
        "last_health": last_health,
        "daemon_warnings": log_summary(daemon_log),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--fault-every", type=float, default=180.0, help="seconds between faults")
    parser.add_argument("--broker-down", type=float, default=20.0, help="seconds per broker fault")
    parser.add_argument("--cell-down", type=float, default=10.0, help="seconds per cell fault")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds before RSS start")
    parser.add_argument("--scenario", default="normal-day")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    parser.add_argument("--out", type=Path, default=None, help="JSON result file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgecell-soak-") as workdir:
        result = asyncio.run(soak(args, Path(workdir)))
    out = args.out or RESULTS / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nsoak {result['duration_s']:.0f} s, {len(result['faults'])} faults "
        f"({', '.join(f['kind'] for f in result['faults']) or 'none'})\n"
        f"  data messages produced  {result['produced']}\n"
        f"  delivered               {result['delivered']} "
        f"({result['received_messages']} received with duplicates)\n"
        f"  left in buffer at stop  {result['left_in_buffer']}\n"
        f"  missing                 {result['missing']}\n"
        f"  daemon RSS              {result['rss_start_bytes'] / 2**20:.1f} MiB after warm-up, "
        f"{result['rss_end_bytes'] / 2**20:.1f} MiB at the end "
        f"({result['rss_growth'] * 100:+.1f} %, limit {RSS_GROWTH_LIMIT * 100:.0f} %)\n"
        f"  results                 {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
    )
    ok = result["missing"] == 0 and result["rss_growth_ok"] and result["daemon_exit"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

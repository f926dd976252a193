"""OPC UA through the real daemon: asyncua server -> `edgecell run` -> mosquitto (not a test).

    .venv/bin/python -m bench.opcua_bench [--polled 1000] [--subscribed 1000] [--duration 20]
    .venv/bin/python -m bench.opcua_bench --nodes 20 --duration 3 --warmup 1   # smoke size

The server (drivers/sim/opcua_server.py in front of a synthetic plant) runs in its own process,
the daemon (`python -m controller run`, generated config) in another, mosquitto in a third; this
process subscribes to the daemon's data topics. Every node changes once a second, its new value
being the wall-clock time of the change, so a value's latency is its MQTT arrival time minus
its value. The server also records when each Read arrives (round trips per poll cycle) and when
each subscription notification is sent (publish -> MQTT latency). Prints a table and writes the
figures to bench/results/opcua-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file, not only as `-m bench.opcua_bench`
    sys.path.insert(0, str(ROOT))

from asyncua import ua  # noqa: E402
from asyncua.common.callback import CallbackType, ServerItemCallback  # noqa: E402
from asyncua.server.uaprocessor import UaProcessor  # noqa: E402

from bench.procstat import cpu_seconds, sample_tree  # noqa: E402
from controller.configtypes import parse_duration  # noqa: E402
from controller.localbroker import LocalMosquitto  # noqa: E402
from controller.logs import configure_logging  # noqa: E402
from drivers.sim.opcua_server import SimOpcUaServer, SimOpcUaSpec  # noqa: E402
from drivers.sim.points import PointValue  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TICK = 0.05  # the server changes a slice of the nodes this often
GATEWAY = "opcuabench"
STARTUP_TIMEOUT = 90.0  # server, daemon, session, 2,000 monitored items: first data within this
STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL
DRAIN = 2.0  # s after the window for the last changes published in it to arrive


# --- the server process -------------------------------------------------------------------------


class BenchPlant:
    """A PointSource of `polled` + `subscribed` Double points that only the changer moves."""

    def __init__(self, polled: int, subscribed: int) -> None:
        self.values: dict[str, PointValue] = {}
        for i in range(polled):
            self.values[f"poll.{i:04d}"] = 0.0
        for i in range(subscribed):
            self.values[f"sub.{i:04d}"] = 0.0

    def point_names(self) -> Iterable[str]:
        return self.values.keys()

    def read_point(self, name: str) -> PointValue:
        return self.values[name]

    def write_point(self, name: str, value: PointValue) -> None:
        raise PermissionError(name)


def _spec(polled: int, subscribed: int) -> SimOpcUaSpec:
    points: dict[str, dict[str, Any]] = {}
    for i in range(polled):
        points[f"poll.{i:04d}"] = {"node": f"Bench.Poll{i:04d}"}
    for i in range(subscribed):
        points[f"sub.{i:04d}"] = {"node": f"Bench.Sub{i:04d}"}
    return SimOpcUaSpec.model_validate({"objects": [{"name": "Bench", "points": points}]})


@dataclass
class ServerTrace:
    """What the server saw: each client Read (when, nodes, polled nodes) and each value of a
    subscription notification (when its PublishResponse was handed to the socket, the value)."""

    reads: list[tuple[float, int, int]] = field(default_factory=list)
    published: list[tuple[float, float]] = field(default_factory=list)

    async def on_read(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external:
            return
        nodes = event.request_params.NodesToRead
        polled = sum(1 for n in nodes if str(n.NodeId.Identifier).startswith("Bench.Poll"))
        self.reads.append((time.time(), len(nodes), polled))

    def trace_publishes(self) -> None:
        """Wrap asyncua's UaProcessor.forward_publish_response, the one place a subscription's
        PublishResponse is sent (asyncua/server/uaprocessor.py). Bench process only."""
        send = UaProcessor.forward_publish_response
        published = self.published

        async def forward(processor: UaProcessor, result: ua.PublishResult, request: Any) -> None:
            await send(processor, result, request)
            sent = time.time()
            for data in result.NotificationMessage.NotificationData:
                if isinstance(data, ua.DataChangeNotification):
                    for item in data.MonitoredItems:
                        value = item.Value.Value.Value if item.Value.Value is not None else None
                        if isinstance(value, float) and value > 0:
                            published.append((sent, value))

        UaProcessor.forward_publish_response = forward  # type: ignore[method-assign,assignment]


async def serve(polled: int, subscribed: int) -> None:
    """Run the server; print its endpoint as one JSON line; change nodes until terminated;
    then print the trace as one JSON line."""
    plant = BenchPlant(polled, subscribed)
    trace = ServerTrace()
    trace.trace_publishes()  # before any session binds the method
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with SimOpcUaServer(
        plant, _spec(polled, subscribed), security=("None",), server_clock=False
    ) as server:
        server.server.subscribe_server_callback(CallbackType.PreRead, trace.on_read)
        hello = {"endpoint": server.endpoint, "ns": server.namespace_index}
        sys.stdout.write(json.dumps(hello) + "\n")
        sys.stdout.flush()
        subs = [f"sub.{i:04d}" for i in range(subscribed)]
        polls = [f"poll.{i:04d}" for i in range(polled)]
        # Every node changes once a second, a slice of them each tick.
        sub_slice, poll_slice = max(1, round(subscribed * TICK)), max(1, round(polled * TICK))
        tick = 0
        next_tick = time.monotonic()
        while not stop.is_set():
            for k in range(sub_slice if subs else 0):
                await server.set_value(subs[(tick * sub_slice + k) % len(subs)], time.time())
            for k in range(poll_slice if polls else 0):
                await server.set_value(polls[(tick * poll_slice + k) % len(polls)], time.time())
            tick += 1
            next_tick += TICK
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_tick - time.monotonic()))
    sys.stdout.write(json.dumps({"reads": trace.reads, "published": trace.published}) + "\n")
    sys.stdout.flush()


# --- the daemon and the broker ------------------------------------------------------------------


def _device(endpoint: str, ns: int, polled: int, subscribed: int, args: argparse.Namespace) -> Any:
    tags: list[dict[str, Any]] = []
    for i in range(polled):
        tags.append({"name": f"p{i:04d}", "node": f"ns={ns};s=Bench.Poll{i:04d}", "mode": "poll"})
    for i in range(subscribed):
        tags.append(
            {"name": f"s{i:04d}", "node": f"ns={ns};s=Bench.Sub{i:04d}", "mode": "subscribe"}
        )
    return {
        "driver": "opcua",
        "name": "bench",
        "endpoint": endpoint,
        "publishing_interval": args.publishing_interval,
        "poll_interval": args.poll_interval,
        "timeout": "10s",
        "connect_timeout": "60s",
        "tags": tags,
    }


def _config(workdir: Path, broker_port: int, device: Any, publish: str) -> dict[str, Any]:
    return {
        "gateway": {"id": GATEWAY, "state_dir": str(workdir / "state"), "log_level": "warning"},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "qos": 1, "publish": publish},
        "devices": [device],
    }


@dataclass
class Arrivals:
    """Data messages as they arrive at this subscriber: (arrival wall time, payload)."""

    messages: list[tuple[float, bytes]] = field(default_factory=list)
    first_subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            arrived = time.time()
            payload = message.payload
            if isinstance(payload, bytes):
                self.messages.append((arrived, payload))
                if not self.first_subscribed.is_set() and b'"s0' in payload:
                    self.first_subscribed.set()


@dataclass
class Window:
    start: float
    end: float
    cpu_s: float
    peak_rss_bytes: int
    connect_s: float


async def _first_data(daemon: asyncio.subprocess.Process, arrivals: Arrivals) -> None:
    """Wait for the first subscribed value; RuntimeError if the daemon exits or stays silent."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not arrivals.first_subscribed.is_set():
        if daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no data from the daemon within {STARTUP_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


async def _stop(daemon: asyncio.subprocess.Process) -> int | None:
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await daemon.wait()
        except TimeoutError:
            daemon.kill()
            await daemon.wait()
            return None
    return daemon.returncode


@contextlib.asynccontextmanager
async def _broker(port: int | None) -> AsyncIterator[int]:
    """The given broker on 127.0.0.1 (the side-by-side harness's), or a private mosquitto."""
    if port is not None:
        yield port
        return
    async with LocalMosquitto() as broker:
        yield broker.port


async def run_daemon(
    endpoint: str, ns: int, args: argparse.Namespace, broker_port: int | None = None
) -> tuple[Arrivals, Window]:
    """mosquitto (unless `broker_port` is given), a subscriber, then the daemon; measure over
    the window; stop them all."""
    arrivals = Arrivals()
    with tempfile.TemporaryDirectory(prefix="edgecell-opcua-bench-") as tmp:
        workdir = Path(tmp)
        async with _broker(broker_port) as port:
            config = workdir / "edgecell.yaml"
            device = _device(endpoint, ns, args.polled, args.subscribed, args)
            config.write_text(
                yaml.safe_dump(_config(workdir, port, device, args.publish), sort_keys=False)
            )
            async with (
                aiomqtt.Client(
                    "127.0.0.1", port, identifier="opcua-bench-subscriber", timeout=10
                ) as client,
                asyncio.TaskGroup() as tg,
            ):
                await client.subscribe(f"edgecell/{GATEWAY}/data/#", qos=1)
                listener = tg.create_task(arrivals.listen(client))
                log_path = workdir / "daemon.log"
                with log_path.open("wb") as log_file:
                    started = time.monotonic()
                    daemon = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "controller", "--log-format", "json", "run",
                        str(config), cwd=ROOT, stdout=log_file, stderr=log_file,
                    )  # fmt: skip
                    try:
                        await _first_data(daemon, arrivals)
                        connect_s = time.monotonic() - started
                        await asyncio.sleep(args.warmup)
                        cpu0, start = cpu_seconds(daemon.pid), time.time()
                        await asyncio.sleep(args.duration)
                        cpu1, end = cpu_seconds(daemon.pid), time.time()
                        peak = sample_tree(daemon.pid).peak_rss_bytes
                        await asyncio.sleep(DRAIN)
                    except Exception:
                        await _stop(daemon)
                        tail = log_path.read_bytes()[-3000:].decode(errors="replace")
                        sys.stderr.write(f"opcua_bench: the daemon's log ends with\n{tail}\n")
                        raise
                    finally:
                        code = await _stop(daemon)
                        listener.cancel()
    window = Window(start, end, cpu1 - cpu0, peak, connect_s)
    if code is None:
        sys.stderr.write("opcua_bench: the daemon did not stop within 10 s of SIGTERM\n")
    return arrivals, window


# --- the figures --------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _spread(name: str, values: list[float]) -> dict[str, Any]:
    return {
        f"{name}_p50_ms": _percentile(values, 0.50),
        f"{name}_p99_ms": _percentile(values, 0.99),
        f"{name}_max_ms": round(max(values), 2) if values else None,
        f"{name}_mean_ms": round(statistics.fmean(values), 2) if values else None,
        f"{name}_samples": len(values),
    }


def figures(
    arrivals: Arrivals, window: Window, trace: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    start, end = window.start, window.end
    wall = end - start
    polled_values = subscribed_values = bad = messages = 0
    first_arrival: dict[float, float] = {}  # a changed value (its change time) -> first arrival
    polled_latency: list[float] = []
    for arrived, payload in arrivals.messages:
        batch: dict[str, dict[str, Any]] = orjson.loads(payload)["values"]
        in_window = start <= arrived < end
        messages += in_window
        for tag, entry in batch.items():
            value = entry.get("v")
            if in_window:
                if entry.get("q") != "good":
                    bad += 1
                elif tag.startswith("s"):
                    subscribed_values += 1
                else:
                    polled_values += 1
            if not isinstance(value, float) or value <= 0:
                continue
            if tag.startswith("s"):
                first_arrival.setdefault(value, arrived)
            elif value not in first_arrival:  # every_poll repeats a polled value: its first
                first_arrival[value] = arrived
                if start <= value < end:
                    polled_latency.append((arrived - value) * 1000)

    change_to_mqtt, publish_to_mqtt, publish_wait = [], [], []
    published_in_window = lost = 0
    for sent, changed in trace["published"]:
        if not start <= sent < end:
            continue
        published_in_window += 1
        reached = first_arrival.get(changed)
        if reached is None:
            lost += 1
            continue
        change_to_mqtt.append((reached - changed) * 1000)
        publish_to_mqtt.append((reached - sent) * 1000)
        publish_wait.append((sent - changed) * 1000)

    poll_reads = [r for r in trace["reads"] if start <= r[0] < end and r[2] > 0]
    other_reads = [r for r in trace["reads"] if start <= r[0] < end and r[2] == 0]
    polled_nodes_read = sum(r[2] for r in poll_reads)
    cycles = polled_nodes_read / args.polled if args.polled else 0.0
    values = polled_values + subscribed_values
    return {
        "window_s": round(wall, 2),
        "startup_s": round(window.connect_s, 2),
        "messages": messages,
        "values": values,
        "values_per_s": round(values / wall, 1),
        "values_completeness": round(values / wall / expected_values_per_s(args), 4)
        if args.polled or args.subscribed
        else None,
        "polled_values_per_s": round(polled_values / wall, 1),
        "subscribed_values_per_s": round(subscribed_values / wall, 1),
        "bad_values": bad,
        "daemon_cpu_s": round(window.cpu_s, 3),
        "daemon_cpu_percent_of_core": round(100 * window.cpu_s / wall, 1),
        "daemon_cpu_s_per_1000_values": (
            round(window.cpu_s / values * 1000, 4) if values else None
        ),
        "daemon_peak_rss_mb": round(window.peak_rss_bytes / 1e6, 1),
        "poll_cycles": round(cycles, 2),
        "poll_reads": len(poll_reads),
        "poll_round_trips_per_cycle": round(len(poll_reads) / cycles, 2) if cycles else None,
        "polled_nodes_per_read_max": max((r[1] for r in poll_reads), default=0),
        "polled_nodes_per_read_min": min((r[1] for r in poll_reads), default=0),
        "other_reads": len(other_reads),
        "subscribed_published": published_in_window,
        "subscribed_lost": lost,
        **_spread("change_to_mqtt", change_to_mqtt),
        **_spread("publish_to_mqtt", publish_to_mqtt),
        **_spread("publish_wait", publish_wait),
        **_spread("polled_change_to_mqtt", polled_latency),
    }


def changes_per_s(nodes: int) -> float:
    """How often `serve` changes `nodes` nodes in all: a slice of at least one node per tick
    (so more than once a second each, below 1 / TICK nodes)."""
    return max(1, round(nodes * TICK)) / TICK if nodes else 0.0


def expected_values_per_s(args: argparse.Namespace) -> float:
    """What a complete delivery gives: every subscribed change, and a polled value per node and
    poll (with mqtt.publish changes, at most one per change)."""
    polls: float = args.polled / parse_duration(args.poll_interval)
    if args.publish == "changes":
        polls = min(polls, changes_per_s(args.polled))
    return polls + changes_per_s(args.subscribed)


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "load_avg_1min": os.getloadavg()[0],
    }


def _targets(f: dict[str, Any]) -> dict[str, Any]:
    p99 = f["publish_to_mqtt_p99_ms"]
    return {
        "one_round_trip_per_poll_cycle": f["poll_round_trips_per_cycle"] == 1.0,
        "publish_to_mqtt_p99_under_50ms": p99 is not None and p99 < 50,
    }


def _table(args: argparse.Namespace, f: dict[str, Any], out: Path) -> str:
    def spread(name: str) -> str:
        return (
            f"p50 {f[f'{name}_p50_ms']} ms, p99 {f[f'{name}_p99_ms']} ms, "
            f"max {f[f'{name}_max_ms']} ms ({f[f'{name}_samples']} values)"
        )

    return (
        f"OPC UA through edgecell run: {args.polled} polled ({args.poll_interval}) + "
        f"{args.subscribed} subscribed nodes ({args.publishing_interval} publishing), "
        f"mqtt.publish {args.publish}, {f['window_s']} s window\n"
        f"  values/s at broker        {f['values_per_s']}  (polled {f['polled_values_per_s']}, "
        f"subscribed {f['subscribed_values_per_s']}; bad {f['bad_values']})\n"
        f"  daemon CPU s / 1000 val.  {f['daemon_cpu_s_per_1000_values']}  "
        f"({f['daemon_cpu_percent_of_core']} % of a core)\n"
        f"  daemon peak RSS           {f['daemon_peak_rss_mb']} MB\n"
        f"  poll round trips / cycle  {f['poll_round_trips_per_cycle']}  "
        f"({f['poll_reads']} Reads in {f['poll_cycles']} cycles, "
        f"{f['polled_nodes_per_read_max']} nodes per Read at most)\n"
        f"  subscribed change -> MQTT {spread('change_to_mqtt')}\n"
        f"  server publish -> MQTT    {spread('publish_to_mqtt')}\n"
        f"  change -> server publish  {spread('publish_wait')}\n"
        f"  polled change -> MQTT     {spread('polled_change_to_mqtt')}\n"
        f"  subscribed changes lost   {f['subscribed_lost']} of {f['subscribed_published']}\n"
        f"  results                   {out}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--polled", type=int, default=1000)
    parser.add_argument("--subscribed", type=int, default=1000)
    parser.add_argument("--nodes", type=int, help="set both --polled and --subscribed")
    parser.add_argument("--duration", type=float, default=20.0, help="measurement window, s")
    parser.add_argument("--warmup", type=float, default=3.0, help="s after the first data")
    parser.add_argument("--publishing-interval", default="100ms")
    parser.add_argument("--poll-interval", default="1s")
    parser.add_argument("--publish", choices=("changes", "every_poll"), default="changes",
                        help="the daemon's mqtt.publish")  # fmt: skip
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/opcua-*.json)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.nodes is not None:
        args.polled = args.subscribed = args.nodes
    return args


def measure(args: argparse.Namespace, broker_port: int | None = None) -> dict[str, Any]:
    """One whole run: the server process, the daemon against it, the figures. Publishes to the
    mosquitto on 127.0.0.1:`broker_port` when given (the side-by-side harness's), else to a
    private one. Returns the result (what main writes as JSON); RuntimeError if it cannot run."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.opcua_bench", "--serve",
         "--polled", str(args.polled), "--subscribed", str(args.subscribed)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        line = server.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError("the OPC UA server did not start within 60 s")
        hello = json.loads(line)
        arrivals, window = asyncio.run(
            run_daemon(hello["endpoint"], hello["ns"], args, broker_port)
        )
        server.terminate()
        rest, _ = server.communicate(timeout=30)
        trace = json.loads(rest.splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=5)

    f = figures(arrivals, window, trace, args)
    return {
        "bench": "opcua",
        "gateway": "edgecell run (daemon), asyncua server, mosquitto, all on 127.0.0.1",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": _machine(),
        "workload": {
            "polled_nodes": args.polled,
            "subscribed_nodes": args.subscribed,
            "poll_interval": args.poll_interval,
            "publishing_interval": args.publishing_interval,
            "mqtt_publish": args.publish,
            "changes_per_s": changes_per_s(args.polled) + changes_per_s(args.subscribed),
            "expected_values_per_s": expected_values_per_s(args),
        },
        "figures": f,
        "targets": _targets(f),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", json=False)  # to stderr: stdout carries the results
    if args.serve:
        asyncio.run(serve(args.polled, args.subscribed))
        return 0
    try:
        result = measure(args)
    except RuntimeError as exc:
        print(f"opcua_bench: {exc}", file=sys.stderr)
        return 1
    out = args.out or RESULTS / f"opcua-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(args, result["figures"], out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

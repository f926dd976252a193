"""OPC UA driver throughput and latency against a local asyncua server (not a test).

    .venv/bin/python -m bench.opcua_bench [--polled 1000] [--subscribed 1000] [--duration 20]

The server (drivers/sim/opcua_server.py in front of a synthetic plant) runs in its own process;
the driver runs in this one. Every subscribed node changes once a second, its new value being
the wall-clock time of the change, so the latency of a sample is its arrival time minus its
value. Prints values/s, CPU seconds of this process (driver + asyncua client) per 1,000 values,
and the change -> sample latency (p50/p99); writes the figures to bench/results/opcua-*.json.
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
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file, not only as `-m bench.opcua_bench`
    sys.path.insert(0, str(ROOT))

from controller.clock import SYSTEM_CLOCK  # noqa: E402
from controller.logs import configure_logging  # noqa: E402
from controller.model import DeviceStatus, LinkState, Quality, Sample  # noqa: E402
from drivers.base import DriverContext  # noqa: E402
from drivers.opcua.config import OpcUaDevice  # noqa: E402
from drivers.opcua.driver import OpcUaDriver  # noqa: E402
from drivers.sim.opcua_server import SimOpcUaServer, SimOpcUaSpec  # noqa: E402
from drivers.sim.points import PointValue  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TICK = 0.05  # the server changes a slice of the subscribed nodes this often


# --- the server process -------------------------------------------------------------------------


class BenchPlant:
    """A PointSource of `polled` + `subscribed` Double points that only the changer moves."""

    def __init__(self, polled: int, subscribed: int) -> None:
        self.values: dict[str, PointValue] = {}
        for i in range(polled):
            self.values[f"poll.{i:04d}"] = float(i)
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


async def serve(polled: int, subscribed: int) -> None:
    """Run the server; print its endpoint as one JSON line; change nodes until terminated."""
    plant = BenchPlant(polled, subscribed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with SimOpcUaServer(
        plant, _spec(polled, subscribed), security=("None",), server_clock=False
    ) as server:
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
            for k in range(sub_slice):
                await server.set_value(subs[(tick * sub_slice + k) % len(subs)], time.time())
            for k in range(poll_slice if polls else 0):
                await server.set_value(polls[(tick * poll_slice + k) % len(polls)], float(tick))
            tick += 1
            next_tick += TICK
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_tick - time.monotonic()))


# --- the driver side ----------------------------------------------------------------------------


@dataclass
class Tally:
    measuring: bool = False
    polled_values: int = 0
    subscribed_values: int = 0
    bad: int = 0
    batches: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    last_status: DeviceStatus | None = None

    def on_samples(self, samples: Sequence[Sample]) -> None:
        received = time.time()
        if not self.measuring:
            return
        self.batches += 1
        for sample in samples:
            if sample.quality is not Quality.GOOD:
                self.bad += 1
            elif sample.tag.startswith("s"):
                self.subscribed_values += 1
                if isinstance(sample.value, float) and sample.value > 0:
                    self.latencies_ms.append((received - sample.value) * 1000)
            else:
                self.polled_values += 1

    def on_status(self, status: DeviceStatus) -> None:
        self.last_status = status


def _device(
    endpoint: str, ns: int, polled: int, subscribed: int, args: argparse.Namespace
) -> OpcUaDevice:
    tags: list[dict[str, Any]] = []
    for i in range(polled):
        tags.append({"name": f"p{i:04d}", "node": f"ns={ns};s=Bench.Poll{i:04d}", "mode": "poll"})
    for i in range(subscribed):
        tags.append({"name": f"s{i:04d}", "node": f"ns={ns};s=Bench.Sub{i:04d}"})
    return OpcUaDevice.model_validate(
        {
            "driver": "opcua",
            "name": "bench",
            "endpoint": endpoint,
            "publishing_interval": args.publishing_interval,
            "poll_interval": args.poll_interval,
            "timeout": "10s",
            "connect_timeout": "60s",
            "tags": tags,
        }
    )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def measure(endpoint: str, ns: int, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    state_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "edgecell-opcua-bench"
    ctx = DriverContext(
        clock=SYSTEM_CLOCK,
        on_samples=tally.on_samples,
        on_status=tally.on_status,
        state_dir=state_dir,
    )
    driver = OpcUaDriver(_device(endpoint, ns, args.polled, args.subscribed, args), ctx)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(driver.run())
        connect_started = time.monotonic()
        while driver.status().state is not LinkState.CONNECTED:
            if time.monotonic() - connect_started > 60:
                raise RuntimeError(f"driver did not connect: {driver.status().last_error}")
            await asyncio.sleep(0.1)
        connect_s = time.monotonic() - connect_started
        await asyncio.sleep(args.warmup)
        cpu0, wall0 = time.process_time(), time.monotonic()
        tally.measuring = True
        await asyncio.sleep(args.duration)
        tally.measuring = False
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        status = driver.status()
        task.cancel()
    values = tally.polled_values + tally.subscribed_values
    return {
        "window_s": round(wall, 2),
        "connect_s": round(connect_s, 2),
        "values": values,
        "values_per_s": round(values / wall, 1),
        "polled_values_per_s": round(tally.polled_values / wall, 1),
        "subscribed_values_per_s": round(tally.subscribed_values / wall, 1),
        "bad_samples": tally.bad,
        "batches": tally.batches,
        "cpu_s": round(cpu, 3),
        "cpu_percent_of_core": round(100 * cpu / wall, 1),
        "cpu_s_per_1000_values": round(cpu / values * 1000, 4) if values else None,
        "latency_p50_ms": _percentile(tally.latencies_ms, 0.50),
        "latency_p99_ms": _percentile(tally.latencies_ms, 0.99),
        "latency_mean_ms": (
            round(statistics.fmean(tally.latencies_ms), 2) if tally.latencies_ms else None
        ),
        "latency_samples": len(tally.latencies_ms),
        "polls": status.polls,
        "skipped_cycles": status.skipped_cycles,
        "last_poll_ms": status.latency_ms,
    }


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--polled", type=int, default=1000)
    parser.add_argument("--subscribed", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0, help="measurement window, s")
    parser.add_argument("--warmup", type=float, default=3.0, help="s after connecting")
    parser.add_argument("--publishing-interval", default="100ms")
    parser.add_argument("--poll-interval", default="1s")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging("warning", json=False)  # to stderr: stdout carries the results
    if args.serve:
        asyncio.run(serve(args.polled, args.subscribed))
        return 0

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
            print("opcua_bench: the server did not start within 60 s", file=sys.stderr)
            return 1
        hello = json.loads(line)
        figures = asyncio.run(measure(hello["endpoint"], hello["ns"], args))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)

    result = {
        "bench": "opcua",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": _machine(),
        "workload": {
            "polled_nodes": args.polled,
            "subscribed_nodes": args.subscribed,
            "poll_interval": args.poll_interval,
            "publishing_interval": args.publishing_interval,
            "subscribed_changes_per_s": args.subscribed,
        },
        "figures": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"opcua-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    f = figures
    print(
        f"OPC UA driver, {args.polled} polled ({args.poll_interval}) + {args.subscribed} "
        f"subscribed nodes ({args.publishing_interval} publishing), {f['window_s']} s window\n"
        f"  values/s            {f['values_per_s']}  (polled {f['polled_values_per_s']}, "
        f"subscribed {f['subscribed_values_per_s']}; bad {f['bad_samples']})\n"
        f"  CPU s / 1000 values {f['cpu_s_per_1000_values']}  "
        f"({f['cpu_percent_of_core']} % of a core)\n"
        f"  change -> sample    p50 {f['latency_p50_ms']} ms, p99 {f['latency_p99_ms']} ms "
        f"({f['latency_samples']} changes)\n"
        f"  results             {out.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

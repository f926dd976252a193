"""`python -m bench --watch`: what `edgecell watch` costs at the bench's workload.

A private mosquitto, the bench's simulated devices (20 x 500 registers by default: 10,000 tags
polled every second) and `edgecell run` publishing every value of every poll (`every_poll`:
10,000 values/s on MQTT, the most the console can be sent); then the console, headless
(textual's pilot) in this process, on its Tags tab, for `--duration` seconds once it has seen
every tag. Measured over that window, for this process only (the pilot's own cost is in it,
small beside the console's):

- CPU: user + system seconds / wall seconds, as a share of one core;
- RSS and peak RSS (VmRSS, VmHWM);
- redraws: `tick` (the console's own work per frame: summary, tables whose part changed, the
  tag list's filter) and `paint` (from the start of a frame until textual has painted it);
- loop lag: how late a 50 ms sleep wakes, p50 / p99 / max: what a key press waits at worst;
- samples/s taken from MQTT, and the staleness of what is on screen: the age, at each redraw,
  of the newest sample shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.gateways import ROOT, edgecell_config
from bench.harness import RESULTS, machine, mosquitto, simulator
from bench.harness import log as _log
from bench.harness import stop as _stop
from bench.workload import REGISTER_MAPS, Workload


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _rss_mb() -> tuple[float, float]:
    found: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0]) * 1024 / 1e6
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


async def _lag_probe(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        lags.append((time.perf_counter() - started - 0.05) * 1000)


async def measure(host: str, port: int, workload: Workload, duration: float,
                  startup_timeout: float) -> dict[str, Any]:
    from controller.watch.app import WatchApp  # noqa: PLC0415  (the console extra)
    from controller.watch.link import BrokerSettings  # noqa: PLC0415

    settings = BrokerSettings(host=host, port=port, base="edgecell/bench", by="bench")
    app = WatchApp(settings, gateway="bench", broker_label=f"{host}:{port}")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("2")  # the Tags tab: the view that grows with the tags
        deadline = time.monotonic() + startup_timeout
        while len(app.state.tags) < workload.tags:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the console saw {len(app.state.tags)} of {workload.tags} tags "
                    f"within {startup_timeout:g} s"
                )
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # past the first full batches
        stats = app.stats
        ticks_before, paints_before = len(stats.tick_ms), len(stats.paint_ms)
        samples_before, messages_before = app.state.samples, app.state.messages
        staleness: list[float] = []
        lags: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(_lag_probe(lags, stop))
        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        while time.perf_counter() - wall_before < duration:
            await asyncio.sleep(1 / 4)
            shown = app.tag_view.keys
            newest = max((app.state.tags[k].ts or 0) for k in shown[:50]) if shown else 0
            staleness.append(time.time() * 1000 - newest)
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        stop.set()
        await probe
        ticks = list(stats.tick_ms)[ticks_before:]
        paints = list(stats.paint_ms)[paints_before:]
        rss, peak = _rss_mb()
        return {
            "tags_seen": len(app.state.tags),
            "samples_per_s": round((app.state.samples - samples_before) / wall),
            "messages_per_s": round((app.state.messages - messages_before) / wall, 1),
            "cpu_percent_of_core": round(100 * cpu / wall, 1),
            "rss_mb": round(rss, 1),
            "peak_rss_mb": round(peak, 1),
            "frames_per_s": round(len(ticks) / wall, 2),
            "tick_ms_p50": round(statistics.median(ticks), 2),
            "tick_ms_p99": round(_percentile(ticks, 0.99), 2),
            "paint_ms_p50": round(statistics.median(paints), 1),
            "paint_ms_p99": round(_percentile(paints, 0.99), 1),
            "paint_ms_max": round(max(paints), 1),
            "loop_lag_ms_p50": round(statistics.median(lags), 1),
            "loop_lag_ms_p99": round(_percentile(lags, 0.99), 1),
            "loop_lag_ms_max": round(max(lags), 1),
            "staleness_ms_p50": round(statistics.median(staleness)),
            "staleness_ms_p99": round(_percentile(staleness, 0.99)),
            "cpu_self_s_total": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime, 1),
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench --watch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--registers", type=int, default=500)
    parser.add_argument("--map", choices=REGISTER_MAPS, default="uint16")
    parser.add_argument("--publish", choices=("every_poll", "changes"), default="every_poll")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workload = Workload(args.devices, args.registers, 1.0, args.map)
    scratch = Path(tempfile.mkdtemp(prefix="edgecell-bench-watch-"))
    _log(f"console at {workload.tags:,} tags/s ({args.publish}), {args.duration:g} s")
    with mosquitto(scratch) as (port, _broker_pid), simulator(
        workload, args.duration + args.startup_timeout + 30, scratch / "sim.json"
    ) as (ports, _sim):
        config = edgecell_config(scratch, port, ports, workload, args.publish)
        path = scratch / "edgecell.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        with (scratch / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "controller", "--log-format", "json", "run", str(path)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=dict(os.environ),
            )
        try:
            figures = asyncio.run(
                measure("127.0.0.1", port, workload, args.duration, args.startup_timeout)
            )
        finally:
            _stop(gateway, group=True)
    result = {
        "started": time.strftime("%Y%m%dT%H%M%S"),
        "machine": machine(),
        "workload": {"devices": workload.devices, "registers": workload.registers,
                     "tags": workload.tags, "register_map": workload.register_map,
                     "publish": args.publish, "duration_s": args.duration},
        "console": figures,
    }
    out = args.out or RESULTS / f"{result['started']}-watch-{workload.tags}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    for key, figure in figures.items():
        print(f"{key:22} {figure}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

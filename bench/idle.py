"""`python -m bench.idle` (`bash scripts/bench --idle`): what each gateway costs when there is
almost nothing to do — one Modbus device of 20 registers polled every second whose values never
change, then the same device refusing connections — in CPU, wake-ups and memory, from /proc.

Users of Node-RED, the ThingsBoard gateway and Telegraf report gateways that "burn CPU while
idle"; a retry loop against an unreachable device is the classic cause. The gateways, their
configs, the broker, the devices and the subscriber are the side-by-side harness's (bench/run.py).
"""

from __future__ import annotations

import argparse
import contextlib
import operator
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from bench.gateways import DEFAULT_GATEWAYS, GATEWAYS, Gateway, installed
from bench.harness import RESULTS, gateway_running, machine, mosquitto, simulator
from bench.harness import log as _log
from bench.harness import stop as _stop
from bench.procstat import (
    CLOCK_TICKS,
    connected_to,
    cpu_seconds,
    process_tree,
    rss_bytes,
    thread_counters,
)
from bench.subscriber import Tally
from bench.workload import Workload

# static: the device answers and its values never change; refused: nothing listens on its port
# (a bound socket that does not listen: every connect is refused at once, as by a powered PLC
# whose Modbus server is off).
CASES = ("static", "refused")
CASE_LABELS = {
    "static": "device answering, values never changing",
    "refused": "device refusing connections",
}
EDGECELL_ROWS = ("edgecell", "edgecell-changes")


@dataclass
class IdleFigures:
    gateway: str
    label: str
    case: str
    round: int
    ok: bool
    note: str
    ready_after_s: float | None  # start to first data (static) or to its broker connection
    window_s: float
    samples: int  # /proc samples over the window (one per --sample-interval, plus the first)
    cpu_s: float  # user + system over the window, process tree (/proc/PID/stat, 10 ms ticks)
    thread_cpu_s: float  # the same from the threads' schedstat (ns; threads that ended are lost)
    cpu_percent_of_core: float
    cpu_percent_max_interval: float  # the busiest sampling interval
    context_switches_per_s: float  # voluntary + involuntary, every thread of the tree
    voluntary_switches_per_s: float  # ~ wake-ups: a thread went to sleep
    involuntary_switches_per_s: float  # preempted: grows with the machine's load
    rss_mb: float  # VmRSS at the end of the window, summed over the tree, 10^6 bytes
    rss_growth_mb: float  # over the window
    peak_rss_mb: float  # VmHWM (start-up included)
    processes: int
    threads: int
    values: int  # values in the data messages that reached the subscriber in the window
    values_per_s: float
    device_requests_per_s: float | None  # Modbus requests the device received (static case)
    machine_busy_percent: float  # all cores (200 = both of two cores busy)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- measuring a process tree ---------------------------------------------------------------


class TreeMeter:
    """Samples a process tree from /proc and adds up what happened between samples, per process
    and per thread, so that processes and threads coming and going in the window are counted
    (a thread that ends loses only its last interval)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.samples = 0
        self.cpu_s = 0.0
        self.thread_cpu_ns = 0
        self.voluntary = 0
        self.involuntary = 0
        self.max_interval_cpu_percent = 0.0
        self.rss_first = 0
        self.rss = 0
        self.peak_rss = 0
        self.processes = 0
        self.threads = 0
        self._cpu: dict[int, float] = {}
        self._threads: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._at = 0.0

    def sample(self) -> None:
        now = time.monotonic()
        pids = process_tree(self.root)
        first = self.samples == 0
        interval_cpu = 0.0
        cpu: dict[int, float] = {}
        threads: dict[tuple[int, int], tuple[int, int, int]] = {}
        rss = peak = 0
        for pid in pids:
            cpu[pid] = cpu_seconds(pid)
            for tid, counts in thread_counters(pid).items():
                threads[(pid, tid)] = counts
            resident, high = rss_bytes(pid)
            rss += resident
            peak += high
        if not first:  # what appeared since the last sample started in the window
            interval_cpu = sum(c - self._cpu.get(pid, 0.0) for pid, c in cpu.items())
            self.cpu_s += interval_cpu
            for key, (vol, invol, ns) in threads.items():
                vol0, invol0, ns0 = self._threads.get(key, (0, 0, 0))
                self.voluntary += vol - vol0
                self.involuntary += invol - invol0
                self.thread_cpu_ns += ns - ns0
            span = now - self._at
            if span > 0:
                self.max_interval_cpu_percent = max(self.max_interval_cpu_percent,
                                                    interval_cpu / span * 100)
        else:
            self.rss_first = rss
        self._cpu, self._threads, self._at = cpu, threads, now
        self.samples += 1
        self.rss, self.peak_rss = rss, peak
        self.processes = len(pids)
        self.threads = len(threads)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat, not idle/iowait)."""
    with contextlib.suppress(OSError, ValueError):
        values = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        return sum(int(v) for i, v in enumerate(values) if i not in (3, 4)) / CLOCK_TICKS
    return 0.0


# --- the device -----------------------------------------------------------------------------


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound by us but not listening: connects to it are refused (RST), and no
    one else can take the port while the gateway retries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def device(case: str, workload: Workload, budget: float,
           trace: Path) -> Iterator[tuple[list[int], subprocess.Popen[bytes] | None]]:
    """The device of `case`: (its ports, the simulator process or None)."""
    if case == "static":
        with simulator(workload, budget, trace, static=True) as (ports, process):
            yield ports, process
    else:
        with refusing_port() as port:
            yield [port], None


# --- one gateway, one case ------------------------------------------------------------------


def _start_profiler(gateway: Gateway, case: str, round_: int, pid: int,
                    args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """py-spy over the window, for the Python gateways (collapsed stacks, bench.profile)."""
    if args.profile is None or not gateway.key.startswith(("edgecell", "thingsboard")):
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        _log("--profile needs py-spy: .venv/bin/pip install py-spy")
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--duration", str(round(args.duration)),
         "--rate", "100", "--nonblocking", "--format", "raw",
         "--output", str(args.profile / f"{gateway.key}-{case}-{round_}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait_ready(case: str, process: subprocess.Popen[bytes], tally: Tally, broker_port: int,
                timeout: float, started: float) -> tuple[float | None, str]:
    """When the gateway is up: its first data (static), its broker connection (refused)."""
    while process.poll() is None and time.time() - started < timeout:
        if case == "static" and tally.first_arrival is not None:
            return tally.first_arrival, ""
        if case == "refused" and connected_to(process_tree(process.pid), broker_port):
            return time.time(), ""
        time.sleep(0.1)
    if process.poll() is not None:
        return None, f"exited with {process.returncode}"
    what = "published nothing" if case == "static" else "did not connect to the broker"
    return None, f"{what} within {timeout:g} s"


def run_case(gateway: Gateway, case: str, round_: int, workload: Workload,
             args: argparse.Namespace, broker_port: int, workdir: Path) -> IdleFigures:
    budget = args.startup_timeout + args.warmup + args.duration + 30
    trace = workdir / "device.json"
    tally = Tally(workload)
    meter: TreeMeter | None = None
    w0 = w1 = time.time()
    busy = 0.0
    ready: float | None = None
    note = ""
    with device(case, workload, budget, trace) as (ports, sim_process):
        with gateway_running(gateway, workdir, broker_port, ports, workload, tally,
                             f"{gateway.key} [{case}]") as (process, started):
            ready, note = _wait_ready(case, process, tally, broker_port,
                                      args.startup_timeout, started)
            if ready is not None:
                _log(f"{gateway.key} [{case}]: up {ready - started:.1f} s after start; "
                     f"warm-up {args.warmup:g} s, measuring {args.duration:g} s")
                w0 = ready + args.warmup
                time.sleep(max(0.0, w0 - time.time()))
                meter = TreeMeter(process.pid)
                meter.sample()
                busy = machine_busy_s()
                profiler = _start_profiler(gateway, case, round_, process.pid, args)
                w1 = w0 + args.duration
                tick = w0
                while tick < w1 and process.poll() is None:
                    tick = min(tick + args.sample_interval, w1)
                    time.sleep(max(0.0, tick - time.time()))
                    meter.sample()
                w1 = time.time()
                busy = machine_busy_s() - busy
                if profiler is not None:  # py-spy writes its file when its time is up
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        profiler.wait(timeout=30)
                    _stop(profiler)
                if process.poll() is not None:
                    note = f"exited with {process.returncode} during the measurement"
        if sim_process is not None:
            _stop(sim_process, timeout=60)
    if note:
        note += f" (see {workdir}/gateway.log)"
    requests: float | None = None
    span = max(w1 - w0, 1e-9)
    if case == "static" and trace.exists():
        arrivals = orjson.loads(trace.read_bytes())["requests"][0]
        requests = round(sum(1 for t, *_ in arrivals if w0 <= t < w1) / span, 2)
    values = sum(n for t, n in tally.messages if w0 <= t < w1)
    m = meter or TreeMeter(0)
    return IdleFigures(
        gateway=gateway.key, label=gateway.label, case=case, round=round_,
        ok=not note and meter is not None, note=note,
        ready_after_s=round(ready - started, 1) if ready is not None else None,
        window_s=round(span, 2), samples=m.samples,
        cpu_s=round(m.cpu_s, 3),
        thread_cpu_s=round(m.thread_cpu_ns / 1e9, 4),
        cpu_percent_of_core=round(m.cpu_s / span * 100, 3),
        cpu_percent_max_interval=round(m.max_interval_cpu_percent, 1),
        context_switches_per_s=round((m.voluntary + m.involuntary) / span, 1),
        voluntary_switches_per_s=round(m.voluntary / span, 1),
        involuntary_switches_per_s=round(m.involuntary / span, 1),
        rss_mb=round(m.rss / 1e6, 1), rss_growth_mb=round((m.rss - m.rss_first) / 1e6, 2),
        peak_rss_mb=round(m.peak_rss / 1e6, 1),
        processes=m.processes, threads=m.threads,
        values=values, values_per_s=round(values / span, 1),
        device_requests_per_s=requests,
        machine_busy_percent=round(busy / span * 100, 1),
    )


# --- figures over rounds, ratios, targets ---------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case and gateway, the median of each figure over the rounds (in run order)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["case"], row["gateway"]), []).append(row)
    summary = []
    for runs in groups.values():
        merged = dict(runs[0])
        merged["rounds"] = len(runs)
        merged["ok"] = all(r["ok"] for r in runs)
        merged["note"] = "; ".join(r["note"] for r in runs if r["note"])
        for field in fields(IdleFigures):
            numbers = [r[field.name] for r in runs]
            if field.name != "round" and all(isinstance(n, int | float) and not isinstance(n, bool)
                                             for n in numbers):
                merged[field.name] = round(statistics.median(numbers), 3)
        del merged["round"]
        summary.append(merged)
    return summary


RATIO_FIGURES = {
    "cpu": "cpu_percent_of_core",
    "context_switches": "context_switches_per_s",
    "voluntary_switches": "voluntary_switches_per_s",
    "rss": "rss_mb",
}


def ratios(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peer / edgecell for each peer and each edgecell row of the same case (above 1: the peer
    costs more)."""
    out = []
    for case in CASES:
        rows = [r for r in summary if r["case"] == case and r["ok"]]
        for base in (r for r in rows if r["gateway"] in EDGECELL_ROWS):
            for peer in (r for r in rows if r["gateway"] not in EDGECELL_ROWS):
                entry: dict[str, Any] = {"case": case, "peer": peer["gateway"],
                                         "edgecell": base["gateway"]}
                for name, key in RATIO_FIGURES.items():
                    entry[name] = (round(peer[key] / base[key], 2) if base[key] else None)
                out.append(entry)
    return out


def targets(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The target "edgecell lower than every peer", for CPU and for wake-ups, per case and
    edgecell row. Printed and recorded, never asserted."""
    out = []
    for case in CASES:
        rows = [r for r in summary if r["case"] == case and r["ok"]]
        peers = [r for r in rows if r["gateway"] not in EDGECELL_ROWS]
        if not peers:
            continue
        for ours in (r for r in rows if r["gateway"] in EDGECELL_ROWS):
            for figure in ("cpu_percent_of_core", "context_switches_per_s"):
                lowest = min(peers, key=operator.itemgetter(figure))
                out.append({
                    "case": case, "edgecell": ours["gateway"], "figure": figure,
                    "edgecell_value": ours[figure], "lowest_peer": lowest["gateway"],
                    "lowest_peer_value": lowest[figure],
                    "met": ours[figure] < lowest[figure],
                })
    return out


# --- the report -----------------------------------------------------------------------------


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(summary: list[dict[str, Any]], ratio_rows: list[dict[str, Any]], case: str) -> str:
    rows = [r for r in summary if r["case"] == case]
    base = next((r["gateway"] for r in rows if r["gateway"] in EDGECELL_ROWS and r["ok"]), None)
    by_peer = {r["peer"]: r for r in ratio_rows if r["case"] == case and r["edgecell"] == base}
    header = ["gateway", "CPU %core", "max 1 s %", "ctx sw/s", "(vol)", "RSS MB",
              "threads", "values/s", "requests/s", "CPU x", "ctx sw x", "RSS x"]
    lines = [header]
    for r in rows:
        ratio = by_peer.get(r["gateway"], {})
        lines.append([
            r["label"] + ("" if r["ok"] else " (!)"),
            f"{r['cpu_percent_of_core']:.2f}",
            f"{r['cpu_percent_max_interval']:.1f}",
            f"{r['context_switches_per_s']:,.1f}",
            f"{r['voluntary_switches_per_s']:,.1f}",
            f"{r['rss_mb']:.0f}",
            f"{r['threads']:g}",
            f"{r['values_per_s']:,.1f}",
            "-" if r["device_requests_per_s"] is None else f"{r['device_requests_per_s']:.2f}",
            _ratio_text(ratio.get("cpu")),
            _ratio_text(ratio.get("context_switches")),
            _ratio_text(ratio.get("rss")),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join([line[0].ljust(widths[0])]
                             + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out += [f"(!) {r['label']}: {r['note']}" for r in rows if not r["ok"]]
    if base is not None:
        out.append(f"x: peer / {base} (above 1.00x the peer costs more)")
    return "\n".join(out)


def targets_text(judged: list[dict[str, Any]]) -> str:
    if not judged:
        return "no peer measured: nothing to compare with"
    names = {"cpu_percent_of_core": "CPU", "context_switches_per_s": "context switches/s"}
    return "\n".join(
        f"[{'met' if t['met'] else 'MISSED'}] {t['case']}: {t['edgecell']} lower than every "
        f"peer in {names[t['figure']]}: {t['edgecell_value']:g} vs {t['lowest_peer_value']:g} "
        f"({t['lowest_peer']})"
        for t in judged
    )


# --- the whole run --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bash scripts/bench --idle",
        description="Idle cost of edgecell and its peers: one Modbus device of N registers "
        "polled every period with values that never change, and the device refusing "
        "connections; each gateway alone in turn, CPU, context switches and RSS from /proc.",
    )
    parser.add_argument("--gateways", default=",".join(DEFAULT_GATEWAYS),
                        help=f"comma-separated, from {', '.join(GATEWAYS)} "
                        f"(default: {','.join(DEFAULT_GATEWAYS)})")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated: static (the device answers, values never change), "
                        "refused (nothing listens on the device's port); default both")
    parser.add_argument("--registers", type=int, default=20,
                        help="holding registers (= uint16 tags) of the device (20)")
    parser.add_argument("--period", type=float, default=1.0, help="poll interval, seconds (1)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="measured seconds per gateway and case (60)")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds between the gateway being up and the window (60: Node-RED's "
                        "garbage collector shrinks its heap within the first minute)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every gateway this many times, interleaved (the order reversed "
                        "every other round); the table shows medians (1)")
    parser.add_argument("--sample-interval", type=float, default=1.0,
                        help="seconds between /proc samples of the gateway (1)")
    parser.add_argument("--startup-timeout", type=float, default=90.0,
                        help="seconds a gateway may take to come up (90)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON result file (default bench/results/<time>-idle.json)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep each run's generated config and log")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="sample the Python gateways with py-spy over each window "
                        "(DIR/<gateway>-<case>-<round>.txt; python -m bench.profile FILE)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not install missing peers (skip them instead)")
    args = parser.parse_args(argv)
    unknown = [g for g in args.gateways.split(",") if g not in GATEWAYS]
    if unknown:
        parser.error(f"unknown gateway(s) {', '.join(unknown)}; choose from {', '.join(GATEWAYS)}")
    bad_cases = [c for c in args.cases.split(",") if c not in CASES]
    if bad_cases:
        parser.error(f"unknown case(s) {', '.join(bad_cases)}; choose from {', '.join(CASES)}")
    if min(args.registers, args.rounds) < 1 or min(args.duration, args.period,
                                                   args.sample_interval) <= 0:
        parser.error("registers, rounds, duration, period and sample interval must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workload = Workload(1, args.registers, args.period, "uint16")
    chosen = [GATEWAYS[key] for key in args.gateways.split(",")]
    cases = [c for c in CASES if c in args.cases.split(",")]
    chosen, skipped = installed(chosen, no_install=args.no_install, log=_log)
    started = time.strftime("%Y%m%dT%H%M%S")
    out = args.out or RESULTS / f"{started}-idle.json"
    scratch = Path(tempfile.mkdtemp(prefix="edgecell-idle-"))
    _log(f"idle: 1 device x {args.registers} registers every {args.period:g} s; cases "
         f"{', '.join(cases)}; {args.warmup:g} s warm-up + {args.duration:g} s per gateway and "
         f"case, {args.rounds} round(s); work in {scratch}")
    rows: list[dict[str, Any]] = []
    try:
        with mosquitto(scratch) as (broker_port, _broker_pid):
            for round_ in range(1, args.rounds + 1):
                order = chosen if round_ % 2 else chosen[::-1]
                for case in cases:
                    for gateway in order:
                        workdir = scratch / f"{gateway.key}-{case}-{round_}"
                        workdir.mkdir(parents=True)
                        figures = run_case(gateway, case, round_, workload, args, broker_port,
                                           workdir)
                        rows.append(figures.as_dict())
                        _log(f"{gateway.key} [{case}]: {figures.cpu_percent_of_core:.2f}% core, "
                             f"{figures.context_switches_per_s:g} ctx sw/s, "
                             f"{figures.rss_mb:g} MB")
    finally:
        if not args.keep_workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    summary = summarize(rows)
    ratio_rows = ratios(summary)
    judged = targets(summary)
    result: dict[str, Any] = {
        "started": started,
        "machine": machine(),
        "workload": {"devices": 1, "registers": args.registers, "tags": workload.tags,
                     "period_s": args.period, "duration_s": args.duration,
                     "warmup_s": args.warmup, "rounds": args.rounds,
                     "sample_interval_s": args.sample_interval, "cases": cases},
        "skipped_peers": skipped,
        "runs": rows,
        "summary": summary,
        "ratios": ratio_rows,
        "targets": judged,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\nIdle: 1 device x {args.registers} uint16 registers every {args.period:g} s, "
          f"{args.duration:g} s measured per gateway and case after {args.warmup:g} s, "
          f"{args.rounds} round(s), medians ({result['machine']['nproc']} x "
          f"{result['machine']['cpu_model']})")
    for case in cases:
        print(f"\n{case}: {CASE_LABELS[case]}\n")
        print(table(summary, ratio_rows, case))
    print("\nTarget: edgecell lower than every peer\n")
    print(targets_text(judged))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

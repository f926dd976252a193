"""`python -m bench`: runs each gateway in turn against the same simulated devices and the same
mosquitto, measures it from outside, prints the side-by-side table and writes the JSON.

Every step is bounded in time: the simulator stops by itself, a gateway that publishes nothing
within --startup-timeout is recorded as such and stopped, and everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench import opcua_bench, report
from bench.gateways import DEFAULT_GATEWAYS, GATEWAYS, ROOT, Gateway, installed
from bench.metrics import RunFigures, compute
from bench.procstat import CLOCK_TICKS, TreeSample, cpu_seconds, sample_tree
from bench.subscriber import Subscriber, Tally
from bench.workload import REGISTER_MAPS, Workload

RESULTS = ROOT / "bench" / "results"
STOP_TIMEOUT = 10.0


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "ram_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- broker and simulator -------------------------------------------------------------------


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[tuple[int, int]]:
    """A private mosquitto on a free loopback port; yields (port, pid)."""
    from controller.localbroker import find_mosquitto, free_port  # noqa: PLC0415

    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 0\n"
        f"user {getpass.getuser()}\nlog_dest none\n"
    )
    process = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        _stop(process)


@contextlib.contextmanager
def gateway_running(
    gateway: Gateway, workdir: Path, broker_port: int, ports: list[int], workload: Workload,
    tally: Tally, label: str,
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """`gateway` in a process group of its own (its output in `workdir`/gateway.log), with the
    harness's subscriber counting what it publishes into `tally`; yields (process, start time)
    and stops the group on the way out."""
    launch = gateway.prepare(workdir, broker_port, ports, workload)
    with Subscriber(broker_port, gateway.topic_filter, gateway.parser, tally,
                    answer_thingsboard=gateway.answer_thingsboard), \
         open(workdir / "gateway.log", "wb") as log:
        started = time.time()
        process = subprocess.Popen(launch.argv, cwd=launch.cwd, env=launch.env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            yield process, started
        finally:
            code = _stop(process, group=True)
        _log(f"{label}: stopped (exit {code})")


@contextlib.contextmanager
def simulator(workload: Workload, duration: float, out: Path,
              static: bool = False) -> Iterator[tuple[list[int], Any]]:
    """The simulated devices in their own process; yields (ports, process). `static`: values
    that never change (the idle benchmark)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.simulator", "--devices", str(workload.devices),
         "--registers", str(workload.registers), "--period", str(workload.period),
         "--map", workload.register_map,
         "--duration", str(duration), "--out", str(out)] + (["--static"] if static else []),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError("the simulator did not start within 30 s")
        yield orjson.loads(line)["ports"], process
    finally:
        _stop(process, timeout=60)


def _stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT,
          group: bool = False) -> int | None:
    """SIGTERM (to the process group we created, when `group`), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
            process.wait(timeout=5)
    elif group:  # children may outlive their parent
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def _start_profiler(gateway: Gateway, pid: int,
                    args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """py-spy sampling a Python gateway over the window (collapsed stacks, for bench.profile)."""
    if args.profile is None or not gateway.key.startswith(("edgecell", "thingsboard")):
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        _log("--profile needs py-spy: .venv/bin/pip install py-spy")
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(round(args.duration)),
         "--rate", "200", "--nonblocking", "--format", "raw",
         "--output", str(args.profile / f"{gateway.key}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


# --- one gateway ----------------------------------------------------------------------------


def run_gateway(gateway: Gateway, workload: Workload, args: argparse.Namespace,
                broker: tuple[int, int], workdir: Path) -> RunFigures:
    broker_port, broker_pid = broker
    settle = max(3 * workload.period, 3.0)
    grace = 2 * workload.period + 1.0
    budget = args.startup_timeout + settle + args.duration + grace + 15
    sim_out = workdir / "simulation.json"
    tally = Tally(workload)
    note = ""
    with simulator(workload, budget, sim_out) as (ports, sim_process):
        with gateway_running(gateway, workdir, broker_port, ports, workload, tally,
                             gateway.key) as (process, started):
            while tally.first_arrival is None and process.poll() is None:
                if time.time() - started > args.startup_timeout:
                    break
                time.sleep(0.1)
            if process.poll() is not None:
                note = f"exited with {process.returncode} (see {workdir}/gateway.log)"
            elif tally.first_arrival is None:
                note = f"published nothing within {args.startup_timeout:g} s"
            first = tally.first_arrival or time.time()
            _log(f"{gateway.key}: first data {first - started:.1f} s after start; "
                 f"measuring {args.duration:g} s")
            # Half a period off the first arrival: a gateway that publishes all its devices
            # at once has its bursts inside the window, never astride an edge.
            w0 = first + settle + workload.period / 2
            if process.poll() is not None:  # nothing to measure: do not wait for it
                w0 = time.time()
            time.sleep(max(0.0, w0 - time.time()))
            before = sample_tree(process.pid)
            observers_before = _observers_cpu(sim_process.pid, broker_pid)
            w1 = w0 + (args.duration if process.poll() is None else 0.0)
            profiler = _start_profiler(gateway, process.pid, args)
            time.sleep(max(0.0, w1 - time.time()))
            after = sample_tree(process.pid)
            observers = [b - a for a, b in zip(observers_before,
                                                _observers_cpu(sim_process.pid, broker_pid),
                                                strict=True)]
            if profiler is not None:
                _stop(profiler, timeout=30)
            if process.poll() is not None and not note:
                note = f"exited with {process.returncode} during the measurement"
            time.sleep(grace)
        _stop(sim_process, timeout=60)
    simulation = orjson.loads(sim_out.read_bytes())
    if tally.bad_messages:
        _log(f"{gateway.key}: {tally.bad_messages} unreadable messages, last: {tally.last_error}")
    figures = compute(key=gateway.key, label=gateway.label, mode=gateway.mode,
                      workload=workload, window=(w0, w1), tally=tally, simulation=simulation,
                      before=before,
                      after=after if after.pids else TreeSample((), before.cpu_s, 0, 0),
                      values_per_poll=gateway.values_per_poll(workload), note=note)
    span = max(w1 - w0, 1e-9)
    figures.simulator_cpu_percent = round(observers[0] / span * 100, 1)
    figures.broker_cpu_percent = round(observers[1] / span * 100, 1)
    figures.harness_cpu_percent = round(observers[2] / span * 100, 1)
    figures.machine_busy_percent = round(observers[3] / span * 100, 1)
    return figures


def run_opcua(args: argparse.Namespace, broker: tuple[int, int]) -> dict[str, Any]:
    """bench/opcua_bench.py's whole run at K polled + K subscribed nodes, publishing to the
    harness's mosquitto, measured for --duration: its workload, figures and targets, labelled."""
    nodes = args.opcua_nodes
    row: dict[str, Any] = {"gateway": "edgecell-opcua", "label": report.opcua_label(nodes),
                           "ok": True, "note": ""}
    _log(f"edgecell-opcua: {nodes} polled + {nodes} subscribed nodes; "
         f"measuring {args.duration:g} s")
    bench_args = opcua_bench.parse_args(["--nodes", str(nodes), "--duration", str(args.duration)])
    try:
        measured = opcua_bench.measure(bench_args, broker_port=broker[0])
    except RuntimeError as exc:
        _log(f"edgecell-opcua: {exc}")
        return {**row, "ok": False, "note": str(exc)}
    f = measured["figures"]
    _log(f"edgecell-opcua: {f['values_per_s']:,.0f} values/s, "
         f"{f['daemon_cpu_percent_of_core']}% core, {f['daemon_peak_rss_mb']} MB")
    return {**row, **{k: measured[k] for k in ("workload", "figures", "targets")}}


def _observers_cpu(simulator_pid: int, broker_pid: int) -> tuple[float, float, float, float]:
    """CPU seconds so far of the simulator, the broker, this process alone (the subscriber)
    and the whole machine (all cores, /proc/stat): the load beside the gateway under test."""
    total = 0.0
    with contextlib.suppress(OSError, ValueError):
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        busy = [int(v) for i, v in enumerate(fields) if i not in (3, 4)]  # not idle, iowait
        total = sum(busy) / CLOCK_TICKS
    return (sample_tree(simulator_pid).cpu_s, cpu_seconds(broker_pid), cpu_seconds(os.getpid()),
            total)


# --- the whole run --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bash scripts/bench",
        description="edgecell side by side with Node-RED and the ThingsBoard IoT Gateway: "
        "the same simulated Modbus devices, the same mosquitto, measured from outside.",
    )
    parser.add_argument("--devices", type=int, default=20, help="simulated Modbus devices (20)")
    parser.add_argument("--registers", type=int, default=500,
                        help="holding registers (= tags) per device (500)")
    parser.add_argument("--period", type=float, default=1.0, help="poll interval, seconds (1)")
    parser.add_argument("--map", choices=REGISTER_MAPS, default="uint16",
                        help="register map: uint16 (every register a tag, the default) or mixed "
                        "(per read of 125: 50 float32 and 25 int16, 75 values)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="measured seconds per gateway, after its start-up (30)")
    parser.add_argument("--gateways", default=",".join(DEFAULT_GATEWAYS),
                        help=f"comma-separated, from {', '.join(GATEWAYS)} "
                        f"(default: {','.join(DEFAULT_GATEWAYS)})")
    parser.add_argument("--startup-timeout", type=float, default=90.0,
                        help="seconds a gateway may take to publish its first data (90)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON result file (default bench/results/<time>-<N>x<M>.json)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep each gateway's generated config and log")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="sample the Python gateways with py-spy over the window and write "
                        "collapsed stacks to DIR (python -m bench.profile DIR/edgecell.txt)")
    parser.add_argument("--opcua-nodes", type=int, default=0, metavar="K",
                        help="after the Modbus rows, also run edgecell against an OPC UA server "
                        "with K polled + K subscribed nodes (bench/opcua_bench.py), for "
                        "--duration; 0 = off (the default)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not install missing peers (skip them instead)")
    parser.add_argument("--idle", action="store_true",
                        help="run the idle benchmark instead (bench/idle.py: one device of 20 "
                        "unchanging registers, and the device refusing connections); its options: "
                        "bash scripts/bench --idle --help")
    parser.add_argument("--scheduler", action="store_true",
                        help="run the scheduler's solve-time bench instead (bench/scheduler.py: "
                        "re-plans at 96 and 288 steps, LP and MIP, memory); its options: "
                        "bash scripts/bench --scheduler --help")
    parser.add_argument("--cells", type=int, default=None, metavar="N",
                        help="run the controller on N generated cells instead (bench/cells.py): "
                        "violations, false alarms, leak delays and savings per cell; its options: "
                        "bash scripts/bench --cells 1 --help")
    args = parser.parse_args(argv)
    unknown = [g for g in args.gateways.split(",") if g not in GATEWAYS]
    if unknown:
        parser.error(f"unknown gateway(s) {', '.join(unknown)}; choose from {', '.join(GATEWAYS)}")
    if args.devices < 1 or args.registers < 1 or args.duration <= 0 or args.period <= 0:
        parser.error("devices, registers, duration and period must be positive")
    if args.opcua_nodes < 0:
        parser.error("--opcua-nodes must be 0 (off) or positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--idle" in argv:
        from bench import idle  # noqa: PLC0415 (bench.idle builds on this module)

        return idle.main([a for a in argv if a != "--idle"])
    if "--watch" in argv:
        from bench import watch  # noqa: PLC0415 (the console extra, only when asked for)

        return watch.main([a for a in argv if a != "--watch"])
    if "--scheduler" in argv:
        from bench import scheduler  # noqa: PLC0415 (the scheduler extra, only when asked for)

        return scheduler.main([a for a in argv if a != "--scheduler"])
    if any(a == "--cells" or a.startswith("--cells=") for a in argv):
        from bench import cells  # noqa: PLC0415 (the co-simulation, only when asked for)

        return cells.main(argv)
    args = parse_args(argv)
    workload = Workload(args.devices, args.registers, args.period, args.map)
    chosen = [GATEWAYS[key] for key in args.gateways.split(",")]
    chosen, skipped = installed(chosen, no_install=args.no_install, log=_log)
    started = time.strftime("%Y%m%dT%H%M%S")
    out = args.out or RESULTS / f"{started}-{workload.devices}x{workload.registers}.json"
    rows: list[dict[str, Any]] = []
    opcua: dict[str, Any] | None = None
    scratch = Path(tempfile.mkdtemp(prefix="edgecell-bench-"))
    _log(f"{workload.devices} devices x {workload.registers} registers ({workload.register_map}) "
         f"= {workload.tags:,} tags "
         f"every {workload.period:g} s; {args.duration:g} s per gateway; work in {scratch}")
    try:
        with mosquitto(scratch) as broker:
            for gateway in chosen:
                figures = run_gateway(gateway, workload, args, broker,
                                      scratch / gateway.key)
                rows.append(figures.as_dict())
                _log(f"{gateway.key}: {figures.values_per_s:,.0f} values/s, "
                     f"{figures.cpu_percent_of_core}% core, {figures.peak_rss_mb} MB")
            if args.opcua_nodes:
                opcua = run_opcua(args, broker)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    compared = report.comparisons(rows)
    judged = report.targets(rows, workload)
    result: dict[str, Any] = {
        "started": started,
        "machine": machine(),
        "workload": {"devices": workload.devices, "registers": workload.registers,
                     "register_map": workload.register_map, "tags": workload.tags,
                     "period_s": workload.period,
                     "duration_s": args.duration, "change_fraction": 0.1},
        "skipped_peers": skipped,
        "results": rows,
        "comparisons": compared,
        "targets": judged,
    }
    if opcua is not None:
        result["opcua"] = opcua
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\n{workload.devices} devices x {workload.registers} registers "
          f"({workload.register_map} map) = {workload.tags:,} "
          f"tags every {workload.period:g} s, {args.duration:g} s measured per gateway "
          f"({result['machine']['nproc']} x {result['machine']['cpu_model']})\n")
    print(report.table(rows))
    print("\nedgecell relative to each peer (edgecell / peer; below 1.00x is better; report by "
          "exception delivers only changes, so compare its CPU %core, not its CPU per value):\n")
    print(report.comparison_table(compared, rows))
    print("\nTargets (issue 9):\n")
    print(report.targets_text(judged))
    if opcua is not None:
        print("\nOPC UA, the same mosquitto (bench/opcua_bench.py):\n")
        print(report.opcua_table(opcua))
    print(f"\nJSON: {out}")
    return 0

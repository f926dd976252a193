"""The benchmark harness's shared pieces: the machine's description, a private mosquitto, the
simulated devices in their own process, a gateway in its own process group, and stopping any of
them within a bound. `bench.run` (the side-by-side run), `bench.idle` and `bench.watch` build
on them."""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.gateways import ROOT, Gateway
from bench.subscriber import Subscriber, Tally
from bench.workload import Workload

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


def log(message: str) -> None:
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
        stop(process)


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
         open(workdir / "gateway.log", "wb") as output:
        started = time.time()
        process = subprocess.Popen(launch.argv, cwd=launch.cwd, env=launch.env,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            yield process, started
        finally:
            code = stop(process, group=True)
        log(f"{label}: stopped (exit {code})")


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
        stop(process, timeout=60)


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT,
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

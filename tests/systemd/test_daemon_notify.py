"""The real daemon (`python -m controller run`) under a simulated systemd: NOTIFY_SOCKET and
WATCHDOG_USEC set as systemd sets them, and what the daemon tells systemd over its life."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from notify_listener import NotifyListener

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s
STOP_WITHIN = 5.0  # DESIGN.md: SIGTERM stops the daemon within 5 s
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1

# Runs the daemon with W+X memory refused by the kernel (prctl PR_SET_MDWE, kept across exec):
# what the unit's MemoryDenyWriteExecute=yes enforces with seccomp.
MDWE_LAUNCHER = f"""\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


class BrokerAddress(Protocol):
    """What the daemon needs of the `mosquitto` fixture (tests/conftest.py)."""

    host: str
    port: int


def write_config(directory: Path, broker: BrokerAddress) -> Path:
    config = directory / "config.yaml"
    config.write_text(
        f"""\
gateway:
  id: notify-test
  state_dir: {directory / "state"}
mqtt:
  host: {broker.host}
  port: {broker.port}
  client_id: edgecell-{directory.name}
  base_topic: test/{directory.name}
devices: []
""",
        encoding="utf-8",
    )
    return config


@contextmanager
def daemon(
    directory: Path, broker: BrokerAddress, listener: NotifyListener, *, launcher: str = ""
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m controller run CONFIG` as systemd would start it; killed if a test leaves it."""
    config = write_config(directory, broker)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
    }
    prefix = [sys.executable, "-c", launcher] if launcher else [sys.executable]
    log_path = directory / "daemon.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*prefix, "-m", "controller", "run", str(config)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        print(f"--- daemon log\n{log_path.read_text(encoding='utf-8', errors='replace')}")


def test_daemon_sends_ready_once_started(
    tmp_path: Path, mosquitto: BrokerAddress, notify_socket: NotifyListener
) -> None:
    with daemon(tmp_path, mosquitto, notify_socket):
        notify_socket.wait_for("READY", "1", timeout=30)


def test_daemon_reports_a_status_line(
    tmp_path: Path, mosquitto: BrokerAddress, notify_socket: NotifyListener
) -> None:
    with daemon(tmp_path, mosquitto, notify_socket):
        status = notify_socket.wait_for("STATUS", timeout=30).fields["STATUS"]
    assert "devices up" in status


def test_daemon_pings_the_watchdog_periodically(
    tmp_path: Path, mosquitto: BrokerAddress, notify_socket: NotifyListener
) -> None:
    with daemon(tmp_path, mosquitto, notify_socket):
        since = notify_socket.wait_for("READY", "1", timeout=30).at
        # Three pings after READY, each within two watchdog intervals of the one before.
        for _ in range(3):
            since = notify_socket.wait_for("WATCHDOG", "1", timeout=2.0, after=since).at


def test_daemon_sends_reloading_then_ready_on_sighup(
    tmp_path: Path, mosquitto: BrokerAddress, notify_socket: NotifyListener
) -> None:
    with daemon(tmp_path, mosquitto, notify_socket) as process:
        ready = notify_socket.wait_for("READY", "1", timeout=30)
        process.send_signal(signal.SIGHUP)
        reloading = notify_socket.wait_for("RELOADING", "1", timeout=10, after=ready.at)
        assert "MONOTONIC_USEC" in reloading.fields
        notify_socket.wait_for("READY", "1", timeout=10, after=reloading.at)


def test_daemon_sends_stopping_and_exits_on_sigterm(
    tmp_path: Path, mosquitto: BrokerAddress, notify_socket: NotifyListener
) -> None:
    with daemon(tmp_path, mosquitto, notify_socket) as process:
        notify_socket.wait_for("READY", "1", timeout=30)
        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING", "1", timeout=STOP_WITHIN)
        assert process.wait(timeout=STOP_WITHIN) == 0


def test_daemon_runs_with_write_execute_memory_refused(
    tmp_path: Path, mosquitto: BrokerAddress, notify_socket: NotifyListener
) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0  # the kernel has the prctl (Linux 6.3+)
    with daemon(tmp_path, mosquitto, notify_socket, launcher=MDWE_LAUNCHER):
        notify_socket.wait_for("READY", "1", timeout=30)

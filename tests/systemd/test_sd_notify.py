"""Notifier against a real AF_UNIX datagram socket: what systemd receives for each call."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import structlog
from notify_listener import NotifyListener
from structlog.testing import capture_logs

from controller import systemd
from controller.systemd import Notifier, watchdog_interval


def test_ready_reaches_a_filesystem_socket(notify_socket: NotifyListener) -> None:
    Notifier(notify_socket.address).ready()
    assert notify_socket.wait_for("READY").fields == {"READY": "1"}


def test_ready_reaches_an_abstract_namespace_socket(abstract_notify_socket: NotifyListener) -> None:
    Notifier(abstract_notify_socket.address).ready()
    assert abstract_notify_socket.wait_for("READY").fields == {"READY": "1"}


def test_ready_can_carry_a_status_line(notify_socket: NotifyListener) -> None:
    Notifier(notify_socket.address).ready("3/3 devices up")
    assert notify_socket.wait_for("READY").fields == {"READY": "1", "STATUS": "3/3 devices up"}


def test_reloading_carries_the_monotonic_time(notify_socket: NotifyListener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(notify_socket.address).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = notify_socket.wait_for("RELOADING").fields
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_stopping_is_sent(notify_socket: NotifyListener) -> None:
    Notifier(notify_socket.address).stopping()
    assert notify_socket.wait_for("STOPPING").fields == {"STOPPING": "1"}


def test_status_is_sent_on_one_line(notify_socket: NotifyListener) -> None:
    Notifier(notify_socket.address).status("3/3 devices up,\n120 msg/s, buffer 0")
    assert notify_socket.wait_for("STATUS").fields == {
        "STATUS": "3/3 devices up, 120 msg/s, buffer 0"
    }


def test_watchdog_ping_is_sent(notify_socket: NotifyListener) -> None:
    Notifier(notify_socket.address).watchdog()
    assert notify_socket.wait_for("WATCHDOG").fields == {"WATCHDOG": "1"}


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({})
    notifier.ready()
    notifier.stopping()
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_from_environment_reads_socket_and_watchdog(notify_socket: NotifyListener) -> None:
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "4000000"}
    )
    notifier.ready()
    notify_socket.wait_for("READY")
    assert notifier.watchdog_interval == 2.0


def test_a_failing_socket_is_logged_once_and_never_raises(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh (uncached) logger, so capture_logs sees it whatever configured structlog before.
    monkeypatch.setattr(systemd, "log", structlog.get_logger(systemd.__name__))
    notifier = Notifier(str(short_dir / "nobody-listens"))
    with capture_logs() as logs:
        results = [notifier.notify("WATCHDOG=1") for _ in range(3)]
    assert results == [False, False, False]
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]


def test_sending_again_after_a_failure_logs_recovery(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd, "log", structlog.get_logger(systemd.__name__))
    address = str(short_dir / "late")
    notifier = Notifier(address)
    with capture_logs() as logs:
        notifier.watchdog()
        listener = NotifyListener(address)
        try:
            notifier.watchdog()
            listener.wait_for("WATCHDOG")
        finally:
            listener.close()
    assert [entry["event"] for entry in logs] == ["sd_notify_failed", "sd_notify_recovered"]


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0


def test_watchdog_interval_is_none_without_watchdog_usec() -> None:
    assert watchdog_interval({}) is None


def test_watchdog_interval_is_none_when_watchdog_pid_is_another_process() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}
    assert watchdog_interval(env, pid=4243) is None


def test_watchdog_interval_applies_when_watchdog_pid_is_ours() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}
    assert watchdog_interval(env, pid=4242) == 15.0

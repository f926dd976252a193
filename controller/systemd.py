"""sd_notify over $NOTIFY_SOCKET, in the standard library: tells systemd when edgecell is ready,
reloading or stopping, what it is doing (STATUS=), and that its event loop is alive (WATCHDOG=1).
Outside systemd (no $NOTIFY_SOCKET) every call is a no-op, so the daemon runs the same anywhere.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

from controller.clock import Clock

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages to one address; never raises on a send error (logs it once,
    then once more when sending works again)."""

    def __init__(self, address: str | None, *, watchdog_interval: float | None = None) -> None:
        """`address` is $NOTIFY_SOCKET: a filesystem path, or '@name' for the abstract namespace.
        None makes a notifier that sends nothing. `watchdog_interval` is how often `watchdog()`
        should be called (see `watchdog_interval()`), None when systemd expects no pings."""
        self.watchdog_interval = watchdog_interval
        self._target: str | bytes | None = None
        self._socket: socket.socket | None = None
        self._failing = False
        if address:
            self._target = _socket_address(address)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd asked for through NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"), watchdog_interval=watchdog_interval(env))

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere (we run under a Type=notify unit)."""
        return self._target is not None

    def ready(self, status: str | None = None) -> None:
        """Start-up (or a reload) is complete: config loaded, buffer open, drivers started."""
        self.notify("READY=1", *_status_field(status))

    def reloading(self, status: str | None = None) -> None:
        """A reload has begun; `ready()` ends it. systemd 253+ wants MONOTONIC_USEC with it."""
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}", *_status_field(status))

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has begun (SIGTERM): systemd shows 'deactivating' until we exit."""
        self.notify("STOPPING=1", *_status_field(status))

    def status(self, text: str) -> None:
        """One line for `systemctl status`, e.g. '3/3 devices up, 120 msg/s, buffer 0'."""
        self.notify(*_status_field(text))

    def watchdog(self) -> None:
        """Tell systemd the daemon is alive; call it every `watchdog_interval` seconds."""
        self.notify("WATCHDOG=1")

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields as one datagram. True when it was sent, False when there is no
        socket or the send failed (logged once per failure streak)."""
        if self._target is None or not fields:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop: a full receive queue is a failed send, not a stall.
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(message, self._target)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning("sd_notify_failed", socket=_printable(self._target), error=str(exc))
            return False
        if self._failing:
            self._failing = False
            log.info("sd_notify_recovered", socket=_printable(self._target))
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between watchdog pings: half of WatchdogSec= (WATCHDOG_USEC), as sd_watchdog_enabled
    advises. None when no watchdog is set, or when WATCHDOG_PID names another process (we are a
    child of the service's main process, which owns the watchdog)."""
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        log.warning("watchdog_usec_invalid", value=raw_usec)
        return None
    if usec <= 0:
        return None
    raw_pid = env.get("WATCHDOG_PID")
    if raw_pid:
        own_pid = os.getpid() if pid is None else pid
        try:
            if int(raw_pid) != own_pid:
                return None
        except ValueError:
            log.warning("watchdog_pid_invalid", value=raw_pid)
            return None
    return usec / 1_000_000 / 2


async def watchdog_loop(
    notifier: Notifier, clock: Clock, max_lag: float, *, interval: float | None = None
) -> None:
    """Ping WATCHDOG=1 every `interval` (default `notifier.watchdog_interval`) while the event
    loop is healthy; return at once when there is no watchdog. Runs until cancelled.

    The loop probes its own lag (scheduled versus actual wake-up) several times per interval. A
    ping is sent only when the latest probe woke within `max_lag`: a wedged or starved event
    loop stops pinging and systemd restarts the service after WatchdogSec=, while a single
    hiccup only delays the next ping by one probe. `clock` must run in real time (systemd's
    timer does): pass the system clock, not a simulated one.
    """
    period = notifier.watchdog_interval if interval is None else interval
    if period is None or not notifier.enabled:
        return
    if period <= 0 or max_lag <= 0:
        raise ValueError(f"watchdog interval ({period}) and max_lag ({max_lag}) must be > 0")
    probe = min(period, max_lag) / 2
    lagging = False
    notifier.watchdog()
    last_ping = clock.monotonic()
    deadline = last_ping + probe
    while True:
        await clock.sleep_until(deadline)
        woke = clock.monotonic()
        lag = woke - deadline
        # Schedule from the actual wake-up: after a stall, probe again soon, do not catch up.
        deadline = woke + probe
        if lag > max_lag:
            if not lagging:
                lagging = True
                log.warning("watchdog_ping_withheld", loop_lag_s=round(lag, 3), max_lag_s=max_lag)
            continue
        if lagging:
            lagging = False
            log.info("watchdog_loop_recovered", loop_lag_s=round(lag, 3))
        if woke - last_ping >= period - probe / 2:
            notifier.watchdog()
            last_ping = woke


def _socket_address(address: str) -> str | bytes:
    if address.startswith("@"):
        # Linux abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + address[1:].encode("utf-8")
    return address


def _printable(target: str | bytes | None) -> str:
    if isinstance(target, bytes):
        return "@" + target[1:].decode("utf-8", "replace")
    return str(target)


def _status_field(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # STATUS= is one line in `systemctl status`; a newline would start a new field.
    return ("STATUS=" + " ".join(text.splitlines()),)

"""A real sd_notify receiver: an AF_UNIX datagram socket read by a thread, which stamps every
message with the time it arrived (so a test can see when pings stopped while its loop blocked)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Notification:
    at: float  # time.monotonic() on arrival
    fields: dict[str, str]


class NotifyListener:
    """Binds `address` (a path, or '@name' for the abstract namespace) and collects messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.05)
        self._messages: list[Notification] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode("utf-8").splitlines())
            with self._changed:
                self._messages.append(Notification(time.monotonic(), fields))
                self._changed.notify_all()

    @property
    def messages(self) -> list[Notification]:
        with self._changed:
            return list(self._messages)

    def having(self, key: str) -> list[Notification]:
        return [m for m in self.messages if key in m.fields]

    def wait_for(
        self, key: str, value: str | None = None, timeout: float = 5.0, after: float = -1.0
    ) -> Notification:
        """The first message with `key` (equal to `value` if given) that arrived later than
        `after` (a time.monotonic()); fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self._messages:
                    if (
                        message.at > after
                        and key in message.fields
                        and value in (None, message.fields[key])
                    ):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [m.fields for m in self._messages]
                    pytest.fail(f"no {key}={value or '*'} within {timeout}s; got {seen}")
                self._changed.wait(remaining)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2)
        self._sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)

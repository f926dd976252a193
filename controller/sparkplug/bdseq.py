"""The birth/death sequence number (bdSeq) of the edge node: 0-255, one more at every MQTT
CONNECT, kept in the state directory so a restarted gateway does not repeat the last one (a
host would take the new NBIRTH's bdSeq for the old session's)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

BDSEQ_FILE = "sparkplug-bdseq"


class BdSeqStore:
    """`take()` returns the bdSeq of the next CONNECT and saves the one after it."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / BDSEQ_FILE
        self._next: int | None = None

    def _load(self) -> int:
        try:
            value = int(self._path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("sparkplug_bdseq_unreadable", path=str(self._path), error=str(exc))
            return 0
        if not 0 <= value <= 255:
            log.warning("sparkplug_bdseq_out_of_range", path=str(self._path), value=value)
            return 0
        return value

    def take(self) -> int:
        """Blocking (a small file write): call it in a thread."""
        current = self._load() if self._next is None else self._next
        self._next = (current + 1) % 256
        temporary = self._path.with_suffix(".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(f"{self._next}\n", encoding="ascii")
            os.replace(temporary, self._path)
        except OSError as exc:  # the session goes on; a restart may repeat one bdSeq
            log.warning("sparkplug_bdseq_not_saved", path=str(self._path), error=str(exc))
            with contextlib.suppress(OSError):
                temporary.unlink()
        return current

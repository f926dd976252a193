"""One daemon per state directory: two daemons on one buffer file publish the same seq with
different data and both write to the PLCs, so the second one must not start. The lock is an
exclusive `flock` on `{state_dir}/edgecell.lock`, held for the life of the process (the kernel
drops it when the process dies, even by SIGKILL: a stale file never blocks a start).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

log = structlog.get_logger(__name__)

LOCK_FILE = "edgecell.lock"


class StateDirLockedError(Exception):
    """Another process holds the state directory's lock."""

    def __init__(self, state_dir: Path, holder_pid: int | None) -> None:
        holder = f"process {holder_pid}" if holder_pid is not None else "another process"
        super().__init__(
            f"state directory {state_dir} is in use by {holder} (lock {state_dir / LOCK_FILE}); "
            "two daemons on one state directory would share its buffer and both write outputs"
        )
        self.state_dir = state_dir
        self.holder_pid = holder_pid


class StateDirLock:
    """`with StateDirLock(state_dir):` holds the directory for this process, or raises
    `StateDirLockedError` naming the holder's pid.

    The lock file is created and the holder's pid written into it when the directory can be
    written. In a read-only directory an existing lock file is locked as it is; without one the
    directory itself is locked (the pid cannot be recorded there, so a refusal names no pid).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        fd, writable = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateDirLockedError(self.state_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        if writable:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            except OSError as exc:  # a full disk: the lock holds, only the pid is missing
                log.warning("state_dir_lock_pid_not_written", path=str(self.path), error=str(exc))
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the lock; the file stays (removing it would race a new holder)

    def _open(self) -> tuple[int, bool]:
        """The descriptor to lock, and whether the pid can be written into it."""
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), True
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
        with contextlib.suppress(FileNotFoundError):
            return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC), False
        return os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), False


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote, if this is the lock file and it holds one."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None

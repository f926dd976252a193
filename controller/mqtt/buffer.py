"""Store-and-forward for telemetry and events ("Nothing lost"): a message accepted here leaves
only when the broker has acknowledged it, and SQLite (WAL) keeps it across outages and restarts.

Two streams come out: *live* (accepted during the current broker session) and *backlog*
(everything older: what waited through an outage, or on disk from a previous run). The backlog
drains oldest first at `drain_rate` beside the live stream, so fresh data is never starved.

The counters saved with it (the data topics' seq) belong to an *epoch*: a random id that is
kept only when the file proves the counters continuous (saved at a clean stop, and marked
running again before the first new number). Otherwise (a crash, a full disk at the stop, a
read-only or lost file) a new epoch starts and every counter with it, so (epoch, seq) never
repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import structlog

from controller.clock import Clock
from controller.mqtt.config import BufferConfig
from controller.mqtt.taskgroup import OwnedLoop

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

BUFFER_FILE = "mqtt-buffer.sqlite3"
SCHEMA_VERSION = 1
COMMIT_INTERVAL = 0.1  # seconds between batched commits (and bound checks)
COUNTER_INTERVAL = 5.0  # how often counters (seq) are saved when nothing else is written
PAGE_ROWS = 256  # backlog rows read from disk at once
DISK_RETRY_INTERVAL = 1.0  # after a failed write (disk full), try again this often
WAL_SIZE_LIMIT = 1024**2  # a write-ahead log reset after a checkpoint is cut back to this
# With nothing buffered, the write-ahead log is emptied into the file and cut to nothing at
# most this often (besides after every drain): a small disk is not filled by a log of counters.
CHECKPOINT_INTERVAL = 60.0
# Reserved names in the counters table: the epoch of the counters, and 1 when they were saved
# by a clean stop (0 while a process uses them).
EPOCH_COUNTER = "epoch"
CLEAN_COUNTER = "clean"
EPOCH_BITS = 48

Storage = Literal["disk", "memory"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    accepted_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class BufferWriteError(Exception):
    """The buffer could not write to its file (disk full, I/O error); messages stay in memory."""


class BufferClosedError(Exception):
    """The buffer was used before `__aenter__` or after `__aexit__`."""


@dataclass(slots=True, eq=False)
class Entry:
    """One accepted message. `done` once acknowledged or dropped; `evicted` once its payload
    was let go from memory (it is then read back from disk when its turn comes)."""

    id: int
    topic: str
    payload: bytes
    accepted_ms: int
    size: int
    on_disk: bool = False
    done: bool = False
    evicted: bool = False


@dataclass(frozen=True, slots=True)
class BufferStats:
    depth: int  # messages accepted and not yet acknowledged
    bytes: int  # their size (topic + payload)
    oldest_age_s: float | None  # age of the oldest of them
    dropped: int  # messages dropped since start (bounds, disk full)
    memory_bytes: int  # part of `bytes` held in memory
    disk_ok: bool  # False while the buffer file cannot be written, or when there is none
    storage: Storage  # "memory": no usable file (read-only or broken state directory)


@dataclass(frozen=True, slots=True)
class _Opened:
    db: sqlite3.Connection
    count: int
    size: int
    last_id: int
    oldest_ms: int | None
    counters: dict[str, int]
    storage: Storage = "disk"
    epoch: int = 0
    continued: bool = False  # the epoch and counters of the file go on
    epoch_saved: bool = False  # the epoch in force is in the file (False: write it first)


def _default_max_file_bytes(config: BufferConfig) -> int:
    """Room for `max_bytes` of messages, SQLite's overhead and a WAL: twice it plus 4 MiB."""
    return 2 * config.max_bytes + 4 * 1024**2


class MessageBuffer:
    """The buffer file `path` (created with its directory when missing).

    Synchronous and O(1): `accept`, `take_live`, `ack`, `set_counter`. Everything that touches
    the file runs in a worker thread under one lock, batched every `COMMIT_INTERVAL`.
    Timestamps and `max_age` follow the injected clock; pacing (commits, drain rate, disk
    retries) is about the real disk and network, so it runs in real time.
    `max_file_bytes` caps the SQLite file (default: twice `max_bytes` plus 4 MiB); past it
    writes fail as they would on a full disk.
    """

    def __init__(
        self,
        path: Path,
        config: BufferConfig,
        clock: Clock,
        *,
        max_file_bytes: int | None = None,
    ) -> None:
        self._path = path
        self._config = config
        self._clock = clock
        self._fixed_max_file_bytes = max_file_bytes
        self._max_file_bytes = max_file_bytes or _default_max_file_bytes(config)
        self._db: sqlite3.Connection | None = None
        self._db_lock = asyncio.Lock()
        # One worker thread: a file operation whose awaiting task was cancelled still finishes
        # before the next one starts, so the connection never sees two at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mqtt-buffer")
        # The commit loop, cancelled at once on leaving (_close then commits what is left).
        self._lifecycle = OwnedLoop("mqtt-buffer-commits")
        # accepted, not acknowledged, payload in memory; ids only grow, so dict order is age
        self._ram: dict[int, Entry] = {}
        self._unwritten: list[Entry] = []
        self._live: deque[Entry] = deque()
        self._backlog_ram: deque[Entry] = deque()
        self._page: deque[Entry] = deque()
        self._page_gen = 0
        self._disk_cursor = 0
        self._disk_exhausted = True
        self._inflight: dict[int, Entry] = {}
        self._to_delete: set[int] = set()
        self._last_id = 0
        self._count = 0
        self._bytes = 0
        self._ram_bytes = 0
        self._disk_oldest_ms: int | None = None
        self._dropped = 0
        self._online = False
        self._unthrottled = False
        self._tokens = 1.0
        self._refilled_at = 0.0
        self._counters: dict[str, int] = {}
        self._dirty_counters: set[str] = set()
        self._counters_saved_at = 0.0
        self._disk_ok = True
        self._storage: Storage = "disk"
        self._epoch = 0
        self._epoch_text = f"{0:012x}"
        self._epoch_saved = False
        self._checkpoint_when_empty = False
        self._checkpointed_at = 0.0
        self._disk_retry_at = 0.0
        self._write_error: str | None = None
        self._persist_target = 0
        self._persisted_through = 0
        self._tick_done = asyncio.Event()
        # Set whenever there may be something to commit; the commit loop sleeps on it when idle.
        self._work = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    async def _in_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def __aenter__(self) -> Self:
        opened = await self._in_thread(self._open)
        self._db = opened.db
        self._count, self._bytes = opened.count, opened.size
        self._last_id = self._persisted_through = opened.last_id
        self._disk_oldest_ms = opened.oldest_ms
        self._counters = opened.counters
        self._storage, self._epoch = opened.storage, opened.epoch
        self._epoch_text = f"{opened.epoch:012x}"
        self._epoch_saved = opened.epoch_saved
        self._disk_ok = True  # writes succeed (to the file, or in memory); stats() says which
        self._disk_exhausted = opened.count == 0
        self._refilled_at = time.monotonic()
        self._counters_saved_at = self._checkpointed_at = time.monotonic()
        log.info("buffer_opened", path=str(self._path), storage=opened.storage, epoch=self.epoch,
                 epoch_continued=opened.continued)
        if opened.count:
            log.info("buffer_backlog_found", path=str(self._path), messages=opened.count,
                     bytes=opened.size)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._close)
            # The commit loop runs in a TaskGroup entered here and left in __aexit__: a bug in it
            # cancels the owner instead of silently ending durability.
            await self._lifecycle.start(stack, self._maintain)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lifecycle.stop(exc_type, exc, tb)

    async def _close(self) -> None:
        if self._db is None:
            return
        try:
            # On shutdown everything not acknowledged goes to disk, whatever the durability.
            await self._tick(closing=True)
            await self._save_clean_stop()
        finally:
            db, self._db = self._db, None
            if db is not None:
                await self._in_thread(db.close)
            self._executor.shutdown(wait=False)
        log.info("buffer_closed", messages=self._count, bytes=self._bytes, dropped=self._dropped)

    async def _save_clean_stop(self) -> None:
        """Save every counter with its epoch, marked clean, durably: the next start goes on
        with them. If this fails the next start begins a new epoch."""
        db = self._db
        if db is None or self._storage != "disk":
            return
        counters = {**self._counters, EPOCH_COUNTER: self._epoch, CLEAN_COUNTER: 1}
        try:
            await self._in_thread(self._durably, db, _replace_counters, counters)
        except sqlite3.DatabaseError as exc:
            log.warning("buffer_counters_not_saved", path=str(self._path), error=str(exc),
                        effect="the next start begins a new epoch")

    def _open(self) -> _Opened:
        with contextlib.suppress(OSError):  # a read-only parent: the open fails, memory follows
            self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._start_epoch(self._open_file(str(self._path)))
        except sqlite3.DatabaseError as exc:
            error = str(exc)
        moved = self._move_aside()
        log.error("buffer_file_unreadable", path=str(self._path), error=error,
                  moved_to=str(moved) if moved else None)
        try:
            return self._start_epoch(self._open_file(str(self._path)))
        except sqlite3.DatabaseError as exc:
            error = str(exc)
        # Not even a new file: keep going in memory rather than not start at all.
        log.error("buffer_file_unusable", path=str(self._path), error=error, fallback="memory")
        return self._in_memory()

    def _in_memory(self) -> _Opened:
        opened = self._open_file(":memory:")
        return replace(opened, storage="memory", epoch=_new_epoch(), epoch_saved=True)

    def _start_epoch(self, opened: _Opened) -> _Opened:
        """Go on with the file's epoch and counters if a clean stop saved them and they can be
        marked in use again (durably, before any new number is given out); else a new epoch
        with every counter at 0, written now if the file can be written, else at the first
        write that succeeds."""
        counters = dict(opened.counters)
        epoch = counters.pop(EPOCH_COUNTER, None)
        clean = counters.pop(CLEAN_COUNTER, 0)
        if epoch is not None and clean == 1:
            try:
                self._durably(opened.db, _replace_counters,
                              {**counters, EPOCH_COUNTER: epoch, CLEAN_COUNTER: 0})
            except sqlite3.DatabaseError as exc:
                log.warning("buffer_counters_not_continued", path=str(self._path),
                            error=str(exc), effect="new epoch")
            else:
                return replace(opened, counters=counters, epoch=epoch, continued=True,
                               epoch_saved=True)
        new = _new_epoch()
        try:
            self._durably(opened.db, _replace_counters, {EPOCH_COUNTER: new, CLEAN_COUNTER: 0})
        except sqlite3.DatabaseError:
            saved = False
        else:
            saved = True
        return replace(opened, counters={}, epoch=new, epoch_saved=saved)

    def _durably(
        self, db: sqlite3.Connection, function: Callable[..., None], *args: Any
    ) -> None:
        """`function(db, *args)` committed with a full sync, whatever the durability."""
        db.execute("PRAGMA synchronous=FULL")
        try:
            function(db, *args)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._apply_pragmas(db)

    def _move_aside(self) -> Path | None:
        """Rename the unreadable file (and its WAL) to `*.corrupt-<epoch ms>`; None if even
        that failed, in which case it is removed."""
        moved = self._path.with_name(f"{self._path.name}.corrupt-{self._clock.wall_ms()}")
        try:
            self._path.rename(moved)
        except OSError:
            with contextlib.suppress(OSError):
                self._path.unlink()
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(OSError):
                    self._path.with_name(self._path.name + suffix).unlink()
            return None
        with contextlib.suppress(OSError):
            self._path.with_name(self._path.name + "-wal").rename(
                moved.with_name(moved.name + "-wal")
            )
        with contextlib.suppress(OSError):
            self._path.with_name(self._path.name + "-shm").unlink()
        return moved

    def _open_file(self, where: str) -> _Opened:
        db = sqlite3.connect(where, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._apply_pragmas(db)
            _ensure_schema(db)
            count, size, last_id = db.execute(
                "SELECT count(*), coalesce(sum(size), 0), coalesce(max(id), 0) FROM messages"
            ).fetchone()
            oldest = db.execute("SELECT accepted_ms FROM messages ORDER BY id LIMIT 1").fetchone()
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        except BaseException:
            db.close()
            raise
        return _Opened(db, count, size, last_id, oldest[0] if oldest else None, counters)

    def _apply_pragmas(self, db: sqlite3.Connection) -> None:
        """The settings that follow the config: sync level and the file's size cap."""
        full = self._config.durability == "always"
        db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={max(16, self._max_file_bytes // page_size)}")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

    async def reconfigure(self, config: BufferConfig) -> None:
        """New settings (a config reload) for the open buffer. Nothing it holds is lost: a
        tighter `max_bytes` or `max_age` drops the oldest at the next commit, counted as any
        drop; `durability: always` writes what is only in memory at the next commit."""
        async with self._db_lock:
            self._config = config
            self._max_file_bytes = self._fixed_max_file_bytes or _default_max_file_bytes(config)
            if self._db is not None:
                await self._in_thread(self._apply_pragmas, self._db)
        self._work.set()
        log.info("buffer_reconfigured", durability=config.durability, max_bytes=config.max_bytes,
                 max_age_s=config.max_age, drain_rate=config.drain_rate)

    # --- accepting ---------------------------------------------------------------------------

    def accept(self, topic: str, payload: bytes) -> None:
        """Take a message; it leaves only when acknowledged (or dropped by a bound)."""
        if self._db is None:
            raise BufferClosedError("the buffer is not open")
        self._last_id += 1
        size = len(topic) + len(payload)
        entry = Entry(self._last_id, topic, payload, self._clock.wall_ms(), size)
        self._ram[entry.id] = entry
        self._unwritten.append(entry)
        if self._online:
            # Offline, the next session builds its backlog from memory and disk instead.
            self._live.append(entry)
        self._count += 1
        self._bytes += size
        self._ram_bytes += size
        self._work.set()

    @property
    def epoch(self) -> str:
        """The epoch of the counters: 12 hex digits, new whenever they could not be proven
        continuous (see the module's docstring)."""
        return self._epoch_text

    def counter(self, name: str) -> int:
        """A value saved with the buffer (the data topics' seq), 0 when never set in this
        epoch."""
        return self._counters.get(name, 0)

    def set_counter(self, name: str, value: int) -> None:
        """Saved with the next write of messages, else within `COUNTER_INTERVAL`."""
        self._counters[name] = value
        self._dirty_counters.add(name)
        self._work.set()

    async def persisted(self) -> None:
        """Return when everything accepted so far is on disk or acknowledged.

        Raises `BufferWriteError` when the file cannot be written.
        """
        target = self._last_id
        self._persist_target = max(self._persist_target, target)
        self._work.set()
        while self._persisted_through < target:
            if self._write_error is not None:
                raise BufferWriteError(self._write_error)
            await self._tick_done.wait()

    # --- sending -----------------------------------------------------------------------------

    def session_started(self) -> None:
        """The broker is reachable: whatever was not acknowledged becomes backlog, in order."""
        self._online = True
        if self._count:
            self._checkpoint_when_empty = True
        self._inflight.clear()
        self._live.clear()
        self._backlog_ram = deque(self._ram.values())
        self._reset_paging(from_id=0)

    def session_lost(self) -> None:
        """The broker is gone: what was in flight will be sent again in the next session."""
        self._online = False
        self._inflight.clear()
        self._live.clear()
        self._backlog_ram.clear()
        self._page.clear()

    def unthrottle(self) -> None:
        """Send the backlog as fast as the broker takes it (used to flush on shutdown)."""
        self._unthrottled = True

    def take_live(self) -> Entry | None:
        """The oldest message of this session not yet sent, or None."""
        while self._live:
            entry = self._live.popleft()
            if not (entry.done or entry.evicted or entry.id in self._inflight):
                self._inflight[entry.id] = entry
                return entry
        return None

    async def take_backlog(self) -> Entry | float:
        """The oldest backlog message when the drain rate allows one now; else the seconds until
        it will (`math.inf` when the backlog is empty)."""
        while True:
            if not self._page and not self._disk_exhausted:
                await self._load_page()
                continue
            while self._backlog_ram and self._stale(self._backlog_ram[0]):
                self._backlog_ram.popleft()
            while self._page and self._stale(self._page[0]):
                self._page.popleft()
            ram_head = self._backlog_ram[0] if self._backlog_ram else None
            page_head = self._page[0] if self._page else None
            if page_head is None and not self._disk_exhausted:
                continue
            if ram_head is None and page_head is None:
                return math.inf
            if not self._unthrottled:
                wait = self._take_token()
                if wait > 0:
                    return wait
            if page_head is not None and (ram_head is None or page_head.id < ram_head.id):
                entry = self._page.popleft()
            else:
                entry = self._backlog_ram.popleft()
            self._inflight[entry.id] = entry
            return entry

    def ack(self, entry: Entry) -> None:
        """The broker has the message."""
        self._inflight.pop(entry.id, None)
        if entry.done:
            return
        self._forget(entry)
        if entry.on_disk:
            self._to_delete.add(entry.id)
            self._work.set()

    @property
    def depth(self) -> int:
        """Messages accepted and not yet acknowledged."""
        return self._count

    def stats(self) -> BufferStats:
        oldest = self._oldest_ms()
        age = None if oldest is None else max(0.0, (self._clock.wall_ms() - oldest) / 1000)
        return BufferStats(
            depth=self._count,
            bytes=self._bytes,
            oldest_age_s=age,
            dropped=self._dropped,
            memory_bytes=self._ram_bytes,
            disk_ok=self._disk_ok and self._storage == "disk",
            storage=self._storage,
        )

    def _stale(self, entry: Entry) -> bool:
        return entry.done or entry.evicted or entry.id in self._inflight

    def _take_token(self) -> float:
        rate = self._config.drain_rate
        now = time.monotonic()
        burst = max(1.0, rate / 10)
        self._tokens = min(burst, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens < 1.0:
            return (1.0 - self._tokens) / rate
        self._tokens -= 1.0
        return 0.0

    def _forget(self, entry: Entry) -> None:
        entry.done = True
        if self._ram.pop(entry.id, None) is not None:
            self._ram_bytes -= entry.size
        self._count -= 1
        self._bytes -= entry.size
        entry.payload = b""

    def _oldest_ms(self) -> int | None:
        candidates = [self._disk_oldest_ms] if self._disk_oldest_ms is not None else []
        if self._ram:
            candidates.append(next(iter(self._ram.values())).accepted_ms)
        return min(candidates) if candidates and self._count else None

    def _reset_paging(self, from_id: int) -> None:
        """Read the disk again from `from_id` on (and from the page's unsent part)."""
        if self._page:
            from_id = min(from_id, self._page[0].id - 1)
        self._page.clear()
        self._disk_cursor = min(self._disk_cursor, from_id)
        self._disk_exhausted = False
        self._page_gen += 1

    async def _load_page(self) -> None:
        async with self._db_lock:
            db, gen, cursor = self._db, self._page_gen, self._disk_cursor
            if db is None:
                raise BufferClosedError("the buffer is not open")
            try:
                rows = await self._in_thread(_read_page, db, cursor)
            except sqlite3.DatabaseError as exc:
                rows = None
                error = str(exc)
        if rows is None:
            # The rest of the backlog on disk is given up for this session, not the messages.
            log.error("buffer_read_failed", path=str(self._path), error=error)
            self._disk_exhausted = True
            return
        if gen != self._page_gen:
            return  # paging was reset meanwhile: read again from the new cursor
        if len(rows) < PAGE_ROWS:
            self._disk_exhausted = True
        if rows:
            self._disk_cursor = rows[-1][0]
        for row_id, topic, payload, accepted_ms, size in rows:
            if row_id in self._ram or row_id in self._inflight or row_id in self._to_delete:
                continue
            self._page.append(Entry(row_id, topic, payload, accepted_ms, size, on_disk=True))

    # --- the commit loop ---------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Commit every COMMIT_INTERVAL while there is something to write, delete or bound;
        with nothing buffered, sleep until a message, an ack or a counter needs it (an idle
        gateway does not wake ten times a second for nothing)."""
        while True:
            await asyncio.sleep(COMMIT_INTERVAL)
            self._work.clear()  # before the tick: what arrives during it sets it again
            await self._tick(closing=False)
            idle = self._idle_for()
            if idle > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._work.wait(), None if idle == math.inf else idle
                    )

    def _idle_for(self) -> float:
        """0 while a commit has work (messages held: writes, deletes, bounds, durability
        waits); else the seconds until dirty counters are due, or infinity."""
        if (
            self._count
            or self._unwritten
            or self._to_delete
            or self._persist_target > self._persisted_through
        ):
            return 0.0
        if self._dirty_counters:
            return max(0.0, self._counters_saved_at + COUNTER_INTERVAL - time.monotonic())
        return math.inf

    def _should_write(self, now: float, closing: bool) -> bool:
        if not self._unwritten:
            return False
        if not self._disk_ok and now < self._disk_retry_at and not closing:
            return False
        return (
            closing
            or self._config.durability == "always"
            or not self._online
            or self._ram_bytes > self._config.memory_high_water
            or self._persist_target > self._persisted_through
        )

    async def _tick(self, *, closing: bool) -> None:
        async with self._db_lock:
            try:
                await self._write_and_delete(closing)
                self._evict_or_drop_for_memory()
                await self._enforce_bounds()
            finally:
                done, self._tick_done = self._tick_done, asyncio.Event()
                done.set()

    async def _write_and_delete(self, closing: bool) -> None:
        db = self._db
        if db is None:
            return
        now = time.monotonic()
        through = self._last_id
        # Acknowledged before their write came: never written at all.
        self._unwritten = [entry for entry in self._unwritten if not entry.done]
        if self._disk_ok or closing or now >= self._disk_retry_at:
            await self._write_due(db, now, closing)
        if not self._unwritten or self._unwritten[0].id > through:
            self._persisted_through = max(self._persisted_through, through)

    async def _write_due(self, db: sqlite3.Connection, now: float, closing: bool) -> None:
        batch: list[Entry] = []
        if self._should_write(now, closing):
            batch, self._unwritten = self._unwritten, []
        deletes, self._to_delete = self._to_delete, set()
        # A failing disk is probed with the counters (there may be nothing else to write); a new
        # epoch not yet in the file replaces the old epoch's counters there.
        retrying = not self._disk_ok
        replace_all = retrying or not self._epoch_saved
        if replace_all:
            counters = {**self._counters, EPOCH_COUNTER: self._epoch, CLEAN_COUNTER: 0}
        elif self._dirty_counters and (
            batch or closing or now - self._counters_saved_at >= COUNTER_INTERVAL
        ):
            counters = {name: self._counters[name] for name in self._dirty_counters}
        else:
            counters = {}
        if not (batch or deletes or counters):
            return
        # After a drain (or a failure) the write-ahead log is checkpointed and cut to nothing:
        # on a small disk it is what holds the space.
        checkpoint = retrying or (
            self._count == 0
            and not self._unwritten
            and (
                self._checkpoint_when_empty
                or now - self._checkpointed_at >= CHECKPOINT_INTERVAL
            )
        )
        rows = [(e.id, e.topic, e.payload, e.accepted_ms, e.size) for e in batch]
        try:
            oldest = await self._in_thread(
                partial(_write, replace_counters=replace_all, checkpoint=checkpoint),
                db, rows, deletes, counters,
            )
        except sqlite3.DatabaseError as exc:
            self._unwritten = batch + self._unwritten
            self._to_delete |= deletes
            self._disk_failed(now, exc)
            if self._storage == "disk" and self._holds_only_acknowledged():
                await self._recreate_file()
            return
        if not self._disk_ok:
            self._disk_ok = True
            self._write_error = None
            log.info("buffer_disk_recovered", path=str(self._path))
        if checkpoint:
            self._checkpoint_when_empty = False
            self._checkpointed_at = now
        self._disk_oldest_ms = oldest
        self._epoch_saved = True
        if counters:
            self._dirty_counters -= counters.keys()
            self._counters_saved_at = now
        for entry in batch:
            entry.on_disk = True
            if entry.done:  # acknowledged while it was being written
                self._to_delete.add(entry.id)

    def _holds_only_acknowledged(self) -> bool:
        """Every row of the file was acknowledged (its delete is what could not be written):
        all that is not acknowledged is in memory, not yet written."""
        return self._count == sum(1 for entry in self._unwritten if not entry.done)

    async def _recreate_file(self) -> None:
        """The disk is full and the file holds nothing that is still owed: start a new file,
        which frees the space of the old one and its write-ahead log. Acknowledged messages are
        thus never sent again, and the disk is usable again. The epoch goes on (the counters
        are in memory and are written to the new file first)."""
        old = self._db
        if old is None:
            return
        error = None
        try:
            self._db = await self._in_thread(self._new_file, old)
        except (sqlite3.DatabaseError, OSError) as exc:
            error = str(exc)
        if error is None:
            log.warning("buffer_file_recreated", path=str(self._path),
                        reason="disk full; every message in the file was acknowledged")
            self._disk_retry_at = time.monotonic()  # write to it at the next commit
        else:
            log.error("buffer_file_unusable", path=str(self._path), error=error,
                      fallback="memory")
            self._db = (await self._in_thread(self._open_file, ":memory:")).db
            self._storage = "memory"
        self._to_delete.clear()
        self._disk_oldest_ms = None
        self._epoch_saved = False
        self._checkpoint_when_empty = False
        self._reset_paging(from_id=0)

    def _new_file(self, old: sqlite3.Connection) -> sqlite3.Connection:
        with contextlib.suppress(sqlite3.Error):
            old.close()
        for suffix in ("", "-wal", "-shm"):
            self._path.with_name(self._path.name + suffix).unlink(missing_ok=True)
        return self._open_file(str(self._path)).db

    def _disk_failed(self, now: float, exc: sqlite3.DatabaseError) -> None:
        self._disk_retry_at = now + DISK_RETRY_INTERVAL
        self._write_error = str(exc)
        self._checkpoint_when_empty = True
        if self._disk_ok:
            self._disk_ok = False
            log.error("buffer_write_failed", path=str(self._path), error=str(exc),
                      effect="messages kept in memory up to memory_high_water, then dropped")

    def _evict_or_drop_for_memory(self) -> None:
        high_water = self._config.memory_high_water
        if self._ram_bytes <= high_water:
            return
        target = high_water // 2
        evicted_from = 0
        dropped = 0
        for entry in list(self._ram.values()):
            if self._ram_bytes <= target:
                break
            if entry.on_disk:
                del self._ram[entry.id]
                self._ram_bytes -= entry.size
                entry.evicted = True
                entry.payload = b""
                evicted_from = evicted_from or entry.id
            elif not self._disk_ok:
                self._forget(entry)
                self._dropped += 1
                dropped += 1
        if evicted_from:
            self._reset_paging(from_id=evicted_from - 1)
        if dropped:
            log.warning("buffer_dropped", reason="memory_high_water_without_disk",
                        messages=dropped, dropped_total=self._dropped)

    async def _enforce_bounds(self) -> None:
        excess = self._bytes - self._config.max_bytes
        cutoff = self._clock.wall_ms() - int(self._config.max_age * 1000)
        oldest = self._oldest_ms()
        if excess <= 0 and (oldest is None or oldest >= cutoff):
            return
        before = self._dropped
        db = self._db
        if db is not None and self._disk_oldest_ms is not None:
            try:
                removed, oldest_left = await self._in_thread(
                    _drop_oldest, db, excess, cutoff, frozenset(self._to_delete)
                )
            except sqlite3.DatabaseError as exc:
                self._disk_failed(time.monotonic(), exc)
            else:
                self._disk_oldest_ms = oldest_left
                excess -= self._reconcile_disk_drops(removed)
        for entry in list(self._ram.values()):
            if excess <= 0 and entry.accepted_ms >= cutoff:
                break
            excess -= entry.size
            self._forget(entry)
            self._dropped += 1
        if self._dropped > before:
            log.warning("buffer_dropped", reason="max_bytes_or_max_age",
                        messages=self._dropped - before, dropped_total=self._dropped)

    def _reconcile_disk_drops(self, removed: list[tuple[int, int]]) -> int:
        """Account for rows deleted by a bound; returns the bytes freed."""
        if not removed:
            return 0
        last = removed[-1][0]
        paged = {entry.id: entry for entry in self._page}
        self._page = deque(entry for entry in self._page if entry.id > last)
        freed = 0
        for row_id, size in removed:
            entry = self._ram.get(row_id) or self._inflight.get(row_id) or paged.get(row_id)
            if entry is not None:
                if entry.done:
                    continue
                self._forget(entry)
            elif row_id in self._to_delete:
                self._to_delete.discard(row_id)
                continue
            else:
                self._count -= 1
                self._bytes -= size
            self._dropped += 1
            freed += size
        return freed


# --- worker-thread side (one call at a time, under the buffer's lock) -------------------------


def _ensure_schema(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    elif version != SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"unknown buffer schema version {version}")


def _read_page(db: sqlite3.Connection, after_id: int) -> list[tuple[int, str, bytes, int, int]]:
    return db.execute(
        "SELECT id, topic, payload, accepted_ms, size FROM messages "
        "WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, PAGE_ROWS),
    ).fetchall()


def _write(
    db: sqlite3.Connection,
    rows: list[tuple[int, str, bytes, int, int]],
    deletes: Iterable[int],
    counters: dict[str, int],
    *,
    replace_counters: bool = False,
    checkpoint: bool = False,
) -> int | None:
    """One transaction: new rows, acknowledged rows deleted, counters (all of them replaced
    when `replace_counters`); then, with `checkpoint`, the write-ahead log emptied and cut."""
    if checkpoint:
        # First, too: on a full disk, moving the log into the file can free what the write needs.
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    db.execute("BEGIN")
    try:
        if rows:
            db.executemany(
                "INSERT OR REPLACE INTO messages (id, topic, payload, accepted_ms, size) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        if deletes:
            db.executemany("DELETE FROM messages WHERE id = ?", ((i,) for i in deletes))
        if replace_counters:
            db.execute("DELETE FROM counters")
        if counters:
            db.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                counters.items(),
            )
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    if checkpoint:
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    oldest = db.execute("SELECT accepted_ms FROM messages ORDER BY id LIMIT 1").fetchone()
    return oldest[0] if oldest else None


def _replace_counters(db: sqlite3.Connection, counters: dict[str, int]) -> None:
    """All counters replaced by `counters`, and the write-ahead log emptied into the file."""
    _write(db, [], (), counters, replace_counters=True)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _new_epoch() -> int:
    return secrets.randbits(EPOCH_BITS)


def _drop_oldest(
    db: sqlite3.Connection, excess: int, cutoff_ms: int, acknowledged: frozenset[int]
) -> tuple[list[tuple[int, int]], int | None]:
    """Delete the oldest rows until `excess` bytes are freed and none is older than the cutoff."""
    removed: list[tuple[int, int]] = []
    freed = 0
    for row_id, size, accepted_ms in db.execute(
        "SELECT id, size, accepted_ms FROM messages ORDER BY id"
    ):
        if freed >= excess and accepted_ms >= cutoff_ms:
            break
        removed.append((row_id, size))
        if row_id not in acknowledged:
            freed += size
    if removed:
        db.execute("DELETE FROM messages WHERE id <= ?", (removed[-1][0],))
    oldest = db.execute("SELECT accepted_ms FROM messages ORDER BY id LIMIT 1").fetchone()
    return removed, (oldest[0] if oldest else None)

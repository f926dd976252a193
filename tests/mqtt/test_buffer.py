"""The store-and-forward buffer on a real SQLite file: bounds, durability settings, disk full,
order of the backlog across disk and memory, live data beside a throttled backlog."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time

import pytest

from controller.clock import SYSTEM_CLOCK
from controller.mqtt.buffer import BUFFER_FILE, BufferWriteError, Entry, MessageBuffer
from controller.mqtt.config import BufferConfig


class SteppedWallClock:
    """Real monotonic time, wall time that the test moves forward."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return self.wall

    async def sleep_until(self, deadline: float) -> None:
        await SYSTEM_CLOCK.sleep_until(deadline)


def buffer_config(**settings: object) -> BufferConfig:
    return BufferConfig.model_validate(settings)


def message(number: int, size: int = 100) -> bytes:
    return f"{number:06d}".encode().ljust(size, b".")


async def drain(
    buffer: MessageBuffer, *, new_session: bool = True, limit: int = 10**6
) -> list[int]:
    """The numbers of the messages the buffer sends (backlog first), each acknowledged."""
    if new_session:
        buffer.session_started()
    buffer.unthrottle()
    sent: list[int] = []
    while len(sent) < limit:
        entry = await buffer.take_backlog()
        if not isinstance(entry, Entry):
            entry = buffer.take_live()
        if entry is None:
            return sent
        sent.append(int(entry.payload[:6]))
        buffer.ack(entry)
    return sent


async def test_max_bytes_drops_the_oldest_and_counts_them(tmp_path):
    config = buffer_config(max_bytes=2000)
    async with MessageBuffer(tmp_path / BUFFER_FILE, config, SYSTEM_CLOCK) as buffer:
        for number in range(50):
            buffer.accept("t/data", message(number, size=94))  # 100 bytes with the topic
        await buffer.persisted()
        stats = buffer.stats()
        # Only what is over the bound goes: max_bytes less at most one message survives.
        assert 2000 - 100 < stats.bytes <= 2000
        assert stats.dropped == 50 - stats.depth
        assert (await drain(buffer)) == list(range(50 - stats.depth, 50))


async def test_what_survives_a_bound_survives_a_restart(tmp_path):
    config = buffer_config(max_bytes=2000)
    path = tmp_path / BUFFER_FILE
    async with MessageBuffer(path, config, SYSTEM_CLOCK) as buffer:
        for number in range(50):
            buffer.accept("t/data", message(number, size=94))
        await buffer.persisted()
    async with MessageBuffer(path, config, SYSTEM_CLOCK) as reopened:
        assert reopened.stats().bytes == 2000
        assert (await drain(reopened)) == list(range(30, 50))


async def test_max_age_drops_expired_messages(tmp_path):
    clock = SteppedWallClock()
    config = buffer_config(max_age="1h")
    async with MessageBuffer(tmp_path / BUFFER_FILE, config, clock) as buffer:
        for number in range(5):
            buffer.accept("t/data", message(number))
        clock.wall += 3_600_000 + 1
        for number in range(5, 7):
            buffer.accept("t/data", message(number))
        await buffer.persisted()
        assert buffer.stats().dropped == 5
        assert (await drain(buffer)) == [5, 6]


async def test_always_durability_has_messages_on_disk_before_close(tmp_path):
    path = tmp_path / BUFFER_FILE
    config = buffer_config(durability="always")
    async with MessageBuffer(path, config, SYSTEM_CLOCK) as crashed:
        crashed.session_started()  # online: only `always` writes now
        for number in range(10):
            crashed.accept("t/data", message(number))
        await crashed.persisted()
        # A second opener sees them while the first never closed (as after SIGKILL).
        async with MessageBuffer(path, config, SYSTEM_CLOCK) as restarted:
            assert (await drain(restarted)) == list(range(10))


async def test_outage_durability_writes_nothing_the_broker_acknowledged(tmp_path):
    path = tmp_path / BUFFER_FILE
    async with MessageBuffer(path, buffer_config(durability="outage"), SYSTEM_CLOCK) as buffer:
        buffer.session_started()
        for number in range(10):
            buffer.accept("t/data", message(number))
        while (entry := buffer.take_live()) is not None:
            buffer.ack(entry)
        await buffer.persisted()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)


async def test_outage_durability_spills_unsent_messages_and_seq_on_close(tmp_path):
    path = tmp_path / BUFFER_FILE
    async with MessageBuffer(path, buffer_config(durability="outage"), SYSTEM_CLOCK) as buffer:
        buffer.session_started()
        for number in range(10):
            buffer.accept("t/data", message(number))
        buffer.set_counter("seq/press", 10)
    async with MessageBuffer(path, buffer_config(durability="outage"), SYSTEM_CLOCK) as reopened:
        assert reopened.counter("seq/press") == 10
        assert (await drain(reopened)) == list(range(10))


async def test_backlog_comes_out_oldest_first_across_disk_and_memory(tmp_path):
    # A small memory high-water mark: most of the backlog is evicted to disk, the rest in memory.
    config = buffer_config(memory_high_water=3000)
    async with MessageBuffer(tmp_path / BUFFER_FILE, config, SYSTEM_CLOCK) as buffer:
        for number in range(100):
            buffer.accept("t/data", message(number))
        await buffer.persisted()
        assert buffer.stats().memory_bytes < 3000
        for number in range(100, 110):
            buffer.accept("t/data", message(number))
        assert (await drain(buffer)) == list(range(110))
        assert buffer.stats().depth == 0


async def test_eviction_in_the_middle_of_a_drain_loses_and_repeats_nothing(tmp_path):
    config = buffer_config(memory_high_water=3000)
    async with MessageBuffer(tmp_path / BUFFER_FILE, config, SYSTEM_CLOCK) as buffer:
        for number in range(100):
            buffer.accept("t/data", message(number))
        await buffer.persisted()
        sent = await drain(buffer, limit=10)
        for number in range(100, 150):  # live data past the high-water mark: evicted to disk
            buffer.accept("t/data", message(number))
        await buffer.persisted()
        sent += await drain(buffer, new_session=False)
        assert sent == list(range(150))


async def test_live_data_is_sent_while_the_backlog_waits_for_its_drain_rate(tmp_path):
    config = buffer_config(drain_rate=1.0)
    async with MessageBuffer(tmp_path / BUFFER_FILE, config, SYSTEM_CLOCK) as buffer:
        for number in range(5):
            buffer.accept("t/data", message(number))
        buffer.session_started()
        first = await buffer.take_backlog()
        assert isinstance(first, Entry)
        buffer.accept("t/data", message(99))
        wait = await buffer.take_backlog()
        assert isinstance(wait, float)
        assert 0 < wait < math.inf
        live = buffer.take_live()
        assert live is not None
        assert [first.payload[:6], live.payload[:6]] == [b"000000", b"000099"]


async def test_disk_full_counts_drops_and_keeps_accepting(tmp_path):
    config = buffer_config(memory_high_water=20_000)
    path = tmp_path / BUFFER_FILE
    # The file may not grow past 64 KiB: SQLite then fails as on a full disk.
    async with MessageBuffer(path, config, SYSTEM_CLOCK, max_file_bytes=64 * 1024) as buffer:
        for number in range(300):
            buffer.accept("t/data", message(number, size=1000))
        with pytest.raises(BufferWriteError, match="full"):
            await buffer.persisted()
        stats = buffer.stats()
        assert stats.disk_ok is False
        assert stats.dropped > 0
        assert stats.memory_bytes <= 20_000
        buffer.accept("t/data", message(300))
        assert buffer.stats().depth == stats.depth + 1


async def test_a_clean_stop_keeps_the_epoch_and_the_counters(tmp_path):
    path = tmp_path / BUFFER_FILE
    async with MessageBuffer(path, buffer_config(), SYSTEM_CLOCK) as buffer:
        first_epoch = buffer.epoch
        buffer.set_counter("seq/press", 7)
    async with MessageBuffer(path, buffer_config(), SYSTEM_CLOCK) as reopened:
        assert reopened.epoch == first_epoch
        assert reopened.counter("seq/press") == 7


@pytest.mark.parametrize("durability", ["always", "outage"])
async def test_a_buffer_that_was_not_closed_starts_a_new_epoch_from_zero(tmp_path, durability):
    path = tmp_path / BUFFER_FILE
    config = buffer_config(durability=durability)
    async with MessageBuffer(path, config, SYSTEM_CLOCK) as crashed:
        crashed.accept("t/data", message(1))
        crashed.set_counter("seq/press", 1)
        await crashed.persisted()
        # A second opener while the first never closed (as after SIGKILL): whatever the file
        # says, the first may have given out numbers it did not save.
        async with MessageBuffer(path, config, SYSTEM_CLOCK) as restarted:
            assert restarted.epoch != crashed.epoch
            assert restarted.counter("seq/press") == 0
            assert (await drain(restarted)) == [1]  # its messages are still delivered


async def test_a_crash_after_a_clean_restart_still_starts_a_new_epoch(tmp_path):
    path = tmp_path / BUFFER_FILE
    async with MessageBuffer(path, buffer_config(), SYSTEM_CLOCK) as buffer:
        buffer.set_counter("seq/press", 3)
    async with MessageBuffer(path, buffer_config(), SYSTEM_CLOCK) as continued:
        continued.set_counter("seq/press", 4)
        # Never closed: the clean mark was taken back when it started.
        async with MessageBuffer(path, buffer_config(), SYSTEM_CLOCK) as after_crash:
            assert after_crash.epoch != continued.epoch
            assert after_crash.counter("seq/press") == 0


async def test_a_read_only_state_dir_runs_in_memory_and_says_so(read_only_state_dir):
    path = read_only_state_dir / BUFFER_FILE
    epochs = []
    for _ in range(2):
        async with MessageBuffer(path, buffer_config(), SYSTEM_CLOCK) as buffer:
            buffer.accept("t/data", message(1))
            buffer.set_counter("seq/press", 1)
            await buffer.persisted()
            stats = buffer.stats()
            assert stats.disk_ok is False
            assert stats.storage == "memory"
            assert (await drain(buffer)) == [1]
            epochs.append(buffer.epoch)
    # Nothing could be saved: every start is a new epoch.
    assert epochs[0] != epochs[1]


async def test_a_drained_backlog_leaves_no_write_ahead_log(tmp_path):
    # On a small disk the log is what holds the space once the backlog is gone.
    path = tmp_path / BUFFER_FILE
    wal = path.with_name(f"{BUFFER_FILE}-wal")
    async with MessageBuffer(path, buffer_config(durability="always"), SYSTEM_CLOCK) as buffer:
        for number in range(200):
            buffer.accept("t/data", message(number, size=1000))
        await buffer.persisted()
        assert wal.stat().st_size > 100_000
        assert (await drain(buffer)) == list(range(200))
        deadline = time.monotonic() + 2.0
        while wal.stat().st_size > 0:
            assert time.monotonic() < deadline, f"WAL of {wal.stat().st_size} bytes after a drain"
            await asyncio.sleep(0.05)

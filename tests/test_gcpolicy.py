"""The daemon's garbage-collector policy: raised thresholds for the hot path, and a periodic
full collection so that the reference cycles faults leave behind do not pile up."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from controller.gcpolicy import THRESHOLDS, collect_periodically


class _Node:
    """Stands for a protocol client after a reconnect: referenced only from a cycle."""

    def __init__(self) -> None:
        self.partner: _Node | None = None


@pytest.fixture
def daemon_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    yield
    gc.set_threshold(*before)


async def test_a_cycle_left_by_a_fault_is_freed_by_the_periodic_collection(
    daemon_thresholds: None,
) -> None:
    gc.collect()
    first, second = _Node(), _Node()
    first.partner, second.partner = second, first
    freed = asyncio.Event()
    weakref.finalize(first, freed.set)
    del first, second
    assert not freed.is_set()  # reference counting alone never frees a cycle
    collector = asyncio.create_task(collect_periodically(0.01))
    try:
        await asyncio.wait_for(freed.wait(), 5)
    finally:
        collector.cancel()
        with pytest.raises(asyncio.CancelledError):
            await collector

"""Waiting in a test for what a real peer (the broker, a host process, the daemon) does next:
one bounded wait, re-checked whenever the peer says something arrived (or every 50 ms where
nothing says so), failing the test with what did arrive. The MQTT collectors and watchers of
the tests share it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Without an event to wake on, the condition is re-checked this often (s).
POLL = 0.05


async def until(
    condition: Callable[[], T],
    *,
    within: float = 10.0,
    arrived: asyncio.Event | None = None,
    shown: Callable[[], object] | None = None,
) -> T:
    """The first truthy value of `condition()`. Re-checked each time `arrived` is set (cleared
    before each wait), or every POLL s without it; after `within` s the test fails, showing
    `shown()` (the last messages, say)."""
    try:
        async with asyncio.timeout(within):
            while not (result := condition()):
                if arrived is None:
                    await asyncio.sleep(POLL)
                else:
                    arrived.clear()
                    await arrived.wait()
            return result
    except TimeoutError:
        seen = "" if shown is None else f"; last seen: {shown()}"
        pytest.fail(f"condition not met within {within} s{seen}")

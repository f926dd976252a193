"""tests/waiting.py's `until`: woken by its event, or polling without one; the condition's own
value returned; a timeout fails the test showing what arrived."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import until


async def test_it_returns_the_conditions_value_once_an_arrival_makes_it_true() -> None:
    messages: list[str] = []
    arrived = asyncio.Event()

    async def deliver() -> None:
        for text in ("a", "b"):
            await asyncio.sleep(0.01)
            messages.append(text)
            arrived.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(deliver())
        found = await until(lambda: [m for m in messages if m == "b"], within=2, arrived=arrived)
    assert found == ["b"]


async def test_without_an_event_it_polls() -> None:
    loop = asyncio.get_running_loop()
    ready = loop.time() + 0.1
    assert await until(lambda: loop.time() >= ready, within=2) is True


async def test_a_timeout_fails_the_test_showing_what_arrived() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"within 0.05 s; last seen: \['x'\]"):
        await until(lambda: False, within=0.05, shown=lambda: ["x"])

"""controller/mqtt/taskgroup.py's OwnedLoop, the lifecycle the publisher, the buffer and the
Sparkplug node share: told to stop, the loop ends by itself or is cancelled after its bound;
the owner's resources are left after the loop, in reverse order; an error in the owner's body
comes out as it is."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

import pytest
from structlog.testing import capture_logs

from controller.mqtt.taskgroup import OwnedLoop


class Owner:
    """An async context manager in the shape of the three: a resource, then its loop."""

    def __init__(self, *, obeys: bool, stop_within: float | None = 0.05) -> None:
        self.obeys = obeys
        self.stopping = asyncio.Event()
        self.lifecycle = OwnedLoop(
            "owner", stop_events=(self.stopping,), stop_within=stop_within,
            timeout_event="owner_stop_timeout",
        )
        self.trail: list[str] = []

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.trail.append, "resource left")
            await self.lifecycle.start(stack, self.loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.lifecycle.stop(exc_type, exc, tb)

    async def loop(self) -> None:
        try:
            self.trail.append("loop started")
            if self.obeys:
                await self.stopping.wait()
                self.trail.append("loop ended")
            else:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.trail.append("loop cancelled")
            raise


async def test_a_loop_told_to_stop_ends_before_the_resources_are_left() -> None:
    owner = Owner(obeys=True)
    async with owner:
        await asyncio.sleep(0)
        assert owner.lifecycle.running
    assert not owner.lifecycle.running
    assert owner.trail == ["loop started", "loop ended", "resource left"]


async def test_a_loop_that_does_not_stop_is_cancelled_after_its_bound_and_logged() -> None:
    owner = Owner(obeys=False)
    with capture_logs() as logs:
        async with owner:
            await asyncio.sleep(0)
    assert owner.trail == ["loop started", "loop cancelled", "resource left"]
    assert [e["event"] for e in logs] == ["owner_stop_timeout"]
    assert logs[0]["seconds"] == 0.05


async def test_without_a_bound_the_loop_is_cancelled_at_once() -> None:
    owner = Owner(obeys=True, stop_within=None)
    with capture_logs() as logs:
        async with owner:
            await asyncio.sleep(0)
    assert owner.trail == ["loop started", "loop cancelled", "resource left"]
    assert logs == []


async def test_an_error_in_the_owners_body_comes_out_unwrapped() -> None:
    owner = Owner(obeys=True)
    with pytest.raises(KeyError, match="body"):
        async with owner:
            raise KeyError("body")
    assert owner.trail[-1] == "resource left"


async def test_leaving_twice_or_unentered_does_nothing() -> None:
    owner = Owner(obeys=True)
    await owner.__aexit__(None, None, None)
    async with owner:
        pass
    await owner.__aexit__(None, None, None)
    assert owner.trail.count("resource left") == 1


async def test_the_owner_can_be_entered_again_after_leaving() -> None:
    owner = Owner(obeys=True)
    async with owner:
        pass
    owner.stopping.clear()
    async with owner:
        pass
    assert owner.trail.count("loop ended") == 2

"""The lifecycle the publisher, the buffer and the Sparkplug node share, as aiomqtt's client has
it: `__aenter__` enters the owner's resources and one TaskGroup running its one loop;
`__aexit__` tells the loop to stop, gives it a bounded time, then leaves the group and the
resources in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any

import structlog

log = structlog.get_logger(__name__)

ExitArgs = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def task_group_exit_args(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> ExitArgs:
    """What to hand the group's `__aexit__`: a cancellation as it is (the group must see it to
    tell its own cancellation of the owner from an outside one), but not an error raised in the
    owner's `async with` body, which the group would wrap in an ExceptionGroup; that error then
    propagates unchanged. The owner stops its tasks itself before leaving."""
    if exc_type is None or issubclass(exc_type, asyncio.CancelledError):
        return exc_type, exc, tb
    return None, None, None


async def wait_or_cancel(task: asyncio.Task[Any] | None, within: float, event: str) -> None:
    """Let the owner's connection task end by itself `within` seconds (it was told to stop),
    else log `event` and cancel it. asyncio.wait neither raises on timeout nor cancels: the
    bound is ours."""
    if task is None:
        return
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            log.warning(event, seconds=within)
    finally:
        if not task.done():
            task.cancel()


class OwnedLoop:
    """One long-lived loop of an async context manager, in a TaskGroup the owner enters in its
    `__aenter__` and leaves in its `__aexit__`.

    `stop_events` are set to tell the loop to stop; it then has `stop_within` seconds to end by
    itself before it is cancelled (`timeout_event` logged). Without `stop_within` the loop is
    cancelled at once (a loop with nothing to finish)."""

    def __init__(
        self,
        name: str,
        *,
        stop_events: Sequence[asyncio.Event] = (),
        stop_within: float | None = None,
        timeout_event: str = "",
    ) -> None:
        self.name = name
        self._stop_events = tuple(stop_events)
        self._stop_within = stop_within
        self._timeout_event = timeout_event or f"{name}_stop_timeout"
        self._stack: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Entered and not yet left."""
        return self._stack is not None

    async def start(
        self, stack: contextlib.AsyncExitStack, loop: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """The last step of the owner's `__aenter__`, inside `async with AsyncExitStack() as
        stack:` holding what the loop uses: a TaskGroup on top of it runs `loop()`, and the
        stack is taken over (left by `stop`); should anything before fail, the owner's `async
        with` leaves what it entered."""
        group = await stack.enter_async_context(asyncio.TaskGroup())
        self._task = group.create_task(loop(), name=self.name)
        self._stack = stack.pop_all()

    async def stop(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The owner's `__aexit__`: the loop told to stop and awaited (bounded), or cancelled,
        then the group and the owner's resources left. Leaving twice, or unentered, is a no-op."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            if self._stop_within is None:
                if self._task is not None:
                    self._task.cancel()
            else:
                for event in self._stop_events:
                    event.set()
                await wait_or_cancel(self._task, self._stop_within, self._timeout_event)
        finally:
            await stack.__aexit__(*task_group_exit_args(exc_type, exc, tb))

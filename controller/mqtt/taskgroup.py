"""Leaving a TaskGroup that an async context manager entered in its `__aenter__` (the publisher
and the buffer own one each, as aiomqtt's client does)."""

from __future__ import annotations

import asyncio
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

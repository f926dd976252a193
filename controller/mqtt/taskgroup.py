"""Leaving a TaskGroup that an async context manager entered in its `__aenter__` (the publisher
and the buffer own one each, as aiomqtt's client does)."""

from __future__ import annotations

import asyncio
from types import TracebackType

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

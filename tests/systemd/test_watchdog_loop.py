"""watchdog_loop against a real notify socket: periodic pings while the event loop is healthy,
none while it is blocked or starved, so that systemd restarts a wedged daemon."""

from __future__ import annotations

import asyncio
import time

from notify_listener import NotifyListener

from controller.clock import SYSTEM_CLOCK
from controller.systemd import Notifier, watchdog_loop

INTERVAL = 0.2
MAX_LAG = 0.1


async def test_watchdog_pings_periodically(notify_socket: NotifyListener) -> None:
    notifier = Notifier(notify_socket.address)
    async with asyncio.TaskGroup() as tg:
        # A generous max_lag: this test is about the period, not about a busy CI box.
        task = tg.create_task(watchdog_loop(notifier, SYSTEM_CLOCK, 1.0, interval=INTERVAL))
        await asyncio.sleep(1.0)
        task.cancel()
    # One at start, then one per interval: about 6 in 1 s.
    assert len(notify_socket.having("WATCHDOG")) >= 4


async def test_watchdog_pings_stop_while_the_loop_is_blocked(
    notify_socket: NotifyListener,
) -> None:
    notifier = Notifier(notify_socket.address)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(watchdog_loop(notifier, SYSTEM_CLOCK, MAX_LAG, interval=INTERVAL))
        await asyncio.sleep(0.5)
        blocked_at = time.monotonic()
        time.sleep(1.0)  # noqa: ASYNC251  (a wedged event loop: a blocking call on the loop thread)
        unblocked_at = time.monotonic()
        await asyncio.sleep(0.6)
        task.cancel()
    pings = [m.at for m in notify_socket.having("WATCHDOG")]
    before = [t for t in pings if t < blocked_at]
    during = [t for t in pings if blocked_at <= t <= unblocked_at]
    after = [t for t in pings if t > unblocked_at]
    assert before
    assert during == []
    # The wake-up that follows the stall measures a lag of ~1 s and withholds its ping; pings
    # resume only once the loop keeps time again.
    assert after
    assert after[0] - unblocked_at >= MAX_LAG / 2


async def test_sustained_loop_lag_withholds_every_ping(notify_socket: NotifyListener) -> None:
    notifier = Notifier(notify_socket.address)

    async def hog_the_loop() -> None:
        # A task that blocks the loop for 0.3 s at a time, yielding only briefly in between.
        while True:
            time.sleep(0.3)  # noqa: ASYNC251  (the point of the test)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        watchdog = tg.create_task(watchdog_loop(notifier, SYSTEM_CLOCK, MAX_LAG, interval=INTERVAL))
        await asyncio.sleep(0.5)
        hog = tg.create_task(hog_the_loop())
        await asyncio.sleep(0)  # the hog's first block starts before we take the time
        hogging_since = time.monotonic()
        await asyncio.sleep(2.0)
        hog.cancel()
        hogging_until = time.monotonic()
        watchdog.cancel()
    pings = [m.at for m in notify_socket.having("WATCHDOG")]
    assert [t for t in pings if t < hogging_since]
    assert [t for t in pings if hogging_since <= t <= hogging_until] == []


async def test_watchdog_loop_returns_at_once_without_a_watchdog(
    notify_socket: NotifyListener,
) -> None:
    notifier = Notifier(notify_socket.address)  # no WATCHDOG_USEC: watchdog_interval is None
    async with asyncio.timeout(1.0):
        await watchdog_loop(notifier, SYSTEM_CLOCK, MAX_LAG)
    assert notify_socket.having("WATCHDOG") == []


async def test_watchdog_loop_without_notify_socket_sends_nothing_and_returns() -> None:
    notifier = Notifier(None, watchdog_interval=INTERVAL)
    async with asyncio.timeout(1.0):
        await watchdog_loop(notifier, SYSTEM_CLOCK, MAX_LAG)
    assert not notifier.enabled

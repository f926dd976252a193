"""The OPC UA device driver: owns one device's sessions, schedule, status and reconnects.

Subscribed tags arrive from the session's publish loop, a whole publish response per
`on_samples` call; polled tags are read in one batched Read per cycle. When the session breaks
(socket closed, keep-alive missed, service answered BadSessionIdInvalid) it is thrown away and
a new one is opened with capped, jittered backoff; the new session creates its own
subscription, so subscriptions are never duplicated by reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence

import structlog
from asyncua import ua
from asyncua.client.ua_client import UaClientState
from asyncua.ua.uaerrors import UaError

from controller.model import (
    DeviceEventKind,
    DeviceStatus,
    LinkState,
    Sample,
    Value,
    WriteError,
)
from drivers.base import (
    ConditionCallError,
    Driver,
    DriverContext,
    UnencodableValueError,
    WholeSteps,
)
from drivers.opcua.asyncua_log import drop_lines_reported_by_driver
from drivers.opcua.codec import (
    bad_sample,
    converts_for_write,
    is_integer_type,
    sample_from_datavalue,
)
from drivers.opcua.config import OpcUaDevice, TagMode
from drivers.opcua.errors import OpcUaSetupError
from drivers.opcua.event_rate import EventBudget
from drivers.opcua.events import BadEventError, acknowledge_request, parse_event, refresh_request
from drivers.opcua.session import (
    OpcUaSession,
    PublishCallbacks,
    SessionLostError,
    describe_error,
    is_session_loss,
)

log = structlog.get_logger(__name__)

# Faults of the network or the server that a later reconnect may cure.
_CONNECT_FAULTS = (OSError, TimeoutError, UaError)


class OpcUaDriver(Driver):
    """One OPC UA server."""

    def __init__(self, device: OpcUaDevice, ctx: DriverContext) -> None:
        self.name = device.name
        self.device = device
        self._ctx = ctx
        self._log = log.bind(device=device.name, endpoint=device.endpoint)
        self._status = DeviceStatus(device=device.name, since_ms=ctx.clock.wall_ms())
        self._session: OpcUaSession | None = None
        self._polled = [tag.name for tag in device.tags if tag.mode is TagMode.POLL]
        self._subscribed = [tag.name for tag in device.tags if tag.mode is TagMode.SUBSCRIBE]
        self._writable = {tag.name for tag in device.tags if tag.writable}
        self._event_budgets = [EventBudget(spec.max_rate) for spec in device.events]
        self._logged_error = ""
        self._read_error = ""
        self._ever_connected = False
        # Cancel requests the task running run() had before it started (see _check_cancelled).
        self._cancel_base = 0
        drop_lines_reported_by_driver()

    # --- the Driver contract ------------------------------------------------------------------

    def status(self) -> DeviceStatus:
        return self._status

    async def run(self) -> None:
        attempt = 0
        self._cancel_base = _cancel_requests()
        try:
            while True:
                try:
                    session = await self._open()
                except OpcUaSetupError as exc:
                    self._check_cancelled()
                    self._connect_failed(str(exc), setup=True)
                    await asyncio.sleep(self._delay(attempt_cap=True))
                    continue
                except _CONNECT_FAULTS as exc:
                    self._check_cancelled()
                    self._connect_failed(describe_connect_error(exc))
                    await asyncio.sleep(self._delay(attempt))
                    attempt += 1
                    continue
                started = time.monotonic()
                self._session = session
                try:
                    reason = await self._serve(session)
                finally:
                    self._session = None
                    await session.close()
                self._check_cancelled()
                self._session_lost(reason)
                # A session that broke at once counts as a failed attempt, so a server that
                # accepts and then drops every session is not hammered.
                lived = time.monotonic() - started
                attempt = 0 if lived > self.device.reconnect_max else attempt + 1
                await asyncio.sleep(self._delay(attempt))
        finally:
            self._set_state(LinkState.STOPPED, self._status.last_error)

    async def poll_once(self) -> None:
        session = self._session
        if session is not None and not session.alive:
            self._session = None
            await session.close()
            self._session_lost(session.lost_reason or "connection closed")
            session = None
        if session is None:
            cancels = _cancel_requests()
            try:
                session = await self._open()
            except OpcUaSetupError as exc:
                _propagate_swallowed_cancel(cancels)
                self._connect_failed(str(exc), setup=True)
                return
            except _CONNECT_FAULTS as exc:
                _propagate_swallowed_cancel(cancels)
                self._connect_failed(describe_connect_error(exc))
                return
            self._session = session
            self._connected(session)
        try:
            await self._poll(session, [tag.name for tag in self.device.tags])
        except SessionLostError as exc:
            self._session = None
            await session.close()
            self._session_lost(str(exc))

    def check_write(self, tag: str, value: Value) -> None:
        """Refuse a value the node's data type cannot hold, when the type is known (read for
        the writable tags when the session opens); otherwise the server judges."""
        vtype = self._write_type(tag)
        if vtype is not None and not converts_for_write(value, vtype):
            raise UnencodableValueError(
                f"{self.name}.{tag} is {vtype.name}: {value!r} does not convert to it"
            )

    def whole_steps(self, tag: str) -> WholeSteps | None:
        vtype = self._write_type(tag)
        return WholeSteps(1.0) if vtype is not None and is_integer_type(vtype) else None

    def _write_type(self, tag: str) -> ua.VariantType | None:
        session = self._session
        return session.data_type(tag) if session is not None else None

    async def write(self, tag: str, value: Value) -> None:
        if tag not in {t.name for t in self.device.tags}:
            raise WriteError(f"{self.name} has no tag {tag!r}")
        if tag not in self._writable:
            raise WriteError(f"{self.name}.{tag} is not declared writable in the config")
        session = self._session
        if session is None or not session.alive:
            why = f" ({self._status.last_error})" if self._status.last_error else ""
            raise WriteError(f"{self.name}.{tag}: the device is not connected{why}")
        try:
            async with asyncio.timeout(self.device.timeout):
                await session.write(tag, value)
        except WriteError:
            raise
        except (*_CONNECT_FAULTS, KeyError) as exc:
            raise WriteError(f"{self.name}.{tag}: write failed: {describe_error(exc)}") from exc
        self._log.info("opcua_write", tag=tag, value=value)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- connecting ---------------------------------------------------------------------------

    async def _open(self) -> OpcUaSession:
        self._set_state(
            LinkState.RECONNECTING if self._ever_connected else LinkState.CONNECTING,
            self._status.last_error,
        )
        async with asyncio.timeout(self.device.connect_timeout):
            return await OpcUaSession.open(self.device, self._ctx.state_dir)

    def _check_cancelled(self) -> None:
        """Raise CancelledError if run()'s task was asked to stop but the request was lost.

        Python 3.11's asyncio.wait_for (asyncua opens sockets with it; asyncua's state waits
        use it) returns the inner result when cancellation and completion race (cpython
        #86296), dropping the CancelledError: a driver stopped at that moment would go on
        reconnecting or watching forever. The task's count of cancel requests still shows it.
        """
        _propagate_swallowed_cancel(self._cancel_base)

    def _delay(self, attempt: int = 0, *, attempt_cap: bool = False) -> float:
        """Exponential from reconnect_min to reconnect_max, with jitter so that many
        devices behind one gateway do not reconnect in step."""
        low, high = self.device.reconnect_min, self.device.reconnect_max
        ceiling = high if attempt_cap else min(high, low * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)

    def _connect_failed(self, error: str, *, setup: bool = False) -> None:
        self._status.consecutive_failures += 1
        first = self._status.consecutive_failures == 1
        state = LinkState.FAILED if setup else (
            LinkState.RECONNECTING if self._ever_connected else LinkState.CONNECTING
        )
        self._set_state(state, error)
        if error != self._logged_error:
            self._logged_error = error
            if setup:
                self._log.error("opcua_setup_failed", error=error)
            else:
                self._log.warning("opcua_connect_failed", error=error)
        if first:
            self._emit_all_bad(f"not connected: {error}")

    def _connected(self, session: OpcUaSession) -> None:
        recovered = bool(self._logged_error)
        if self._ever_connected:
            self._status.reconnects += 1
        self._ever_connected = True
        self._status.consecutive_failures = 0
        self._logged_error = ""
        self._read_error = ""
        self._set_state(LinkState.CONNECTED, "")
        self._log.info(
            "opcua_connected",
            recovered=recovered,
            security=f"{self.device.security.policy.value}/{self.device.security.mode.value}",
            max_nodes_per_read=session.limits.max_nodes_per_read,
        )
        now = self._ctx.clock.wall_ms()
        unresolved = [
            bad_sample(self.name, name, resolved.error, now)
            for name, resolved in session.tags.items()
            if resolved.node_id is None
        ]
        if unresolved:
            self._ctx.on_samples(unresolved)

    def _session_lost(self, detail: str) -> None:
        reason = f"connection lost: {detail}"
        self._status.consecutive_failures = 1
        self._logged_error = reason
        self._set_state(LinkState.RECONNECTING, reason)
        self._log.warning("opcua_connection_lost", reason=reason)
        self._emit_all_bad(reason)

    def _set_state(self, state: LinkState, error: str) -> None:
        status = self._status
        if status.state is state and status.last_error == error:
            return
        if status.state is not state:
            status.since_ms = self._ctx.clock.wall_ms()
        status.state = state
        status.last_error = error
        self._ctx.on_status(status)

    def _emit_all_bad(self, reason: str) -> None:
        now = self._ctx.clock.wall_ms()
        self._ctx.on_samples(
            [bad_sample(self.name, tag.name, reason, now) for tag in self.device.tags]
        )

    # --- one session --------------------------------------------------------------------------

    async def _serve(self, session: OpcUaSession) -> str:
        """Run the session until it breaks; returns why it broke. The state turns `connected`
        once the subscription is in place."""
        lost: list[str] = []
        try:
            if self._subscribed or self.device.events:
                await self._subscribe(session)
            self._connected(session)
            if self.device.events:
                await self._refresh_conditions(session)
            async with asyncio.TaskGroup() as tg:
                if self._polled:
                    tg.create_task(self._poll_loop(session), name=f"opcua-poll:{self.name}")
                # Watched in this task, not a child: on Python 3.11 a TaskGroup whose child
                # fails while the parent waits in __aexit__ leaves the parent's cancel count
                # raised (fixed in 3.12), which would hide a real cancellation later.
                await self._watch(session)
        except* SessionLostError as group:
            lost.extend(str(exc) for exc in group.exceptions)
        return lost[0] if lost else "session ended"

    async def _subscribe(self, session: OpcUaSession) -> None:
        def on_data(batch: list[tuple[str, ua.DataValue]]) -> None:
            if self._session is not session:
                return
            now = self._ctx.clock.wall_ms()
            self._ctx.on_samples(
                [sample_from_datavalue(self.name, name, value, now) for name, value in batch]
            )

        def on_status_change(status: ua.StatusCode) -> None:
            # Sent by the server (BadTimeout: the subscription expired) or, after asyncua's
            # watchdog noticed a loss, by asyncua itself (BadShutdown): the first reason stays.
            if not status.is_good() and not session.lost_reason:
                session.lost_reason = f"subscription status {status.name}"

        def on_events(batch: list[tuple[int, list[ua.Variant]]]) -> None:
            if self._session is session:
                self._on_events(batch)

        try:
            info = await session.subscribe(
                PublishCallbacks(on_data, on_status_change, on_events)
            )
        except Exception as exc:
            if is_session_loss(exc) or isinstance(exc, UaError):
                raise SessionLostError(f"subscribe failed: {describe_error(exc)}") from exc
            raise
        for index, reason in info.failed_events.items():
            self._log.warning(
                "opcua_event_item_failed", notifier=self.device.events[index].notifier,
                reason=reason,
            )
        self._status.extra["subscription_id"] = info.subscription_id
        self._status.extra["publishing_interval_ms"] = info.publishing_interval_ms
        if info.failed:
            now = self._ctx.clock.wall_ms()
            for name, reason in info.failed.items():
                self._log.warning("opcua_monitored_item_failed", tag=name, reason=reason)
            self._ctx.on_samples(
                [bad_sample(self.name, name, reason, now) for name, reason in info.failed.items()]
            )

    def _on_events(self, batch: list[tuple[int, list[ua.Variant]]]) -> None:
        """Check each event and hand it on: every condition state reaches the alarms, but
        events are published at most `max_rate` a second per entry (the rest are counted)."""
        sink = self._ctx.on_event
        now = self._ctx.clock.wall_ms()
        extra = self._status.extra
        for index, fields in batch:
            spec = self.device.events[index]
            try:
                event = parse_event(self.name, spec, fields, now)
            except BadEventError as exc:
                refused = int(extra.get("events_refused", 0)) + 1
                extra["events_refused"] = refused
                if refused == 1 or refused % 1000 == 0:
                    self._log.warning("opcua_event_refused", reason=str(exc), refused=refused)
                continue
            if event.kind is not DeviceEventKind.EVENT:
                if sink is not None:
                    sink(event, False)  # brackets a ConditionRefresh; not published
                continue
            publish = self._event_budgets[index].take(time.monotonic())
            if not publish:
                extra["events_dropped"] = int(extra.get("events_dropped", 0)) + 1
            if sink is not None:
                sink(event, publish)

    async def _refresh_conditions(self, session: OpcUaSession) -> None:
        """Ask the server to send every retained condition again (after each (re)connect:
        alarms raised or cleared while the session was down are caught up)."""
        info = session.subscription
        if info is None:
            return
        try:
            result = await session.call(refresh_request(info.subscription_id))
        except Exception as exc:
            if is_session_loss(exc):
                raise SessionLostError(f"ConditionRefresh failed: {describe_error(exc)}") from exc
            self._log.warning("opcua_condition_refresh_failed", reason=describe_error(exc))
            return
        if not result.StatusCode.is_good():
            self._log.warning("opcua_condition_refresh_failed", reason=result.StatusCode.name)

    async def acknowledge_condition(self, condition_id: str, event_id: bytes, comment: str) -> None:
        session = self._session
        if session is None or not session.alive:
            raise ConditionCallError(f"device {self.name} is not connected")
        try:
            result = await session.call(acknowledge_request(condition_id, event_id, comment))
        except Exception as exc:
            raise ConditionCallError(
                f"device {self.name}: Acknowledge failed: {describe_error(exc)}"
            ) from exc
        if not result.StatusCode.is_good():
            raise ConditionCallError(
                f"device {self.name} refused the acknowledgement: {result.StatusCode.name}"
            )

    async def _watch(self, session: OpcUaSession) -> None:
        """Turn a lost session into SessionLostError: the socket closed, asyncua's keep-alive
        read (ServerStatus every keepalive_interval) failed, or the subscription fell silent
        for longer than its keep-alive promises."""
        period = min(0.5, self.device.keepalive_interval / 2)
        async with session.client.subscribe_state() as changes:
            while True:
                self._check_cancelled()
                if session.client.uaclient.state is not UaClientState.CONNECTED:
                    raise SessionLostError(session.lost_reason or "connection closed")
                if session.lost_reason:
                    raise SessionLostError(session.lost_reason)
                info = session.subscription
                if info is not None:
                    promised = info.publishing_interval_ms / 1000 * info.keepalive_count
                    silent = time.monotonic() - session.last_publish
                    if silent > 2 * promised + self.device.timeout:
                        raise SessionLostError(
                            f"no publish response or keep-alive for {silent:.1f} s"
                        )
                with contextlib.suppress(TimeoutError):
                    await changes.next_change(timeout=period)

    async def _poll_loop(self, session: OpcUaSession) -> None:
        clock = self._ctx.clock
        interval = self.device.poll_interval
        deadline = clock.monotonic()
        while True:
            await self._poll(session, self._polled)
            deadline += interval
            late = clock.monotonic() - deadline
            if late > 0:
                # Skip the cycles that could not run instead of bursting to catch up.
                skipped = int(late // interval) + 1
                deadline += skipped * interval
                self._status.skipped_cycles += skipped
            await clock.sleep_until(deadline)

    async def _poll(self, session: OpcUaSession, names: Sequence[str]) -> None:
        """One batched read of `names`; SessionLostError when the session is gone."""
        clock = self._ctx.clock
        started = time.perf_counter()
        cancels = _cancel_requests()
        try:
            async with asyncio.timeout(self.device.timeout * 2):
                values = await session.read_tags(names)
        except Exception as exc:
            _propagate_swallowed_cancel(cancels)
            if is_session_loss(exc):
                raise SessionLostError(f"read failed: {describe_error(exc)}") from exc
            if not isinstance(exc, UaError):
                raise
            reason = f"read refused: {describe_error(exc)}"
            if reason != self._read_error:
                self._read_error = reason
                self._log.warning("opcua_read_refused", reason=reason)
            now = clock.wall_ms()
            self._ctx.on_samples([bad_sample(self.name, name, reason, now) for name in names])
            return
        if self._read_error:
            self._log.info("opcua_read_recovered")
            self._read_error = ""
        now = clock.wall_ms()
        samples: list[Sample] = []
        for name, value in values:
            if isinstance(value, str):
                samples.append(bad_sample(self.name, name, value, now))
            else:
                samples.append(sample_from_datavalue(self.name, name, value, now))
        self._status.polls += 1
        self._status.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        self._ctx.on_samples(samples)
        self._ctx.on_status(self._status)


def _cancel_requests() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _propagate_swallowed_cancel(before: int) -> None:
    """Raise CancelledError if this task got a cancel request since `before` (its
    `_cancel_requests()` then) that a library swallowed (see OpcUaDriver._check_cancelled)."""
    if _cancel_requests() > before:
        raise asyncio.CancelledError


def describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout while connecting"
    return describe_error(exc)


"""One connection per Modbus link (a TCP endpoint or a serial bus), shared by its devices.

A request owns the link until its answer or its timeout, so requests are never interleaved on
the wire; the line is left quiet between requests (`request_gap`, the RTU frame gap) and longer
after a timeout (`pause_after_timeout`), so the next unit is not addressed while a slow one may
still answer; writes go before queued polls; a lost connection comes back with capped, fully
jittered exponential backoff, driven by the requests themselves (no background task).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import structlog
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerType

from controller.clock import Clock
from controller.model import DeviceUnavailableError
from drivers.modbus.config import SerialLink, Table, TcpLink

log = structlog.get_logger(__name__)

# Modbus application protocol v1.1b3, section 7.
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

# Timeouts in a row, on any unit, after which a TCP connection is presumed half-open and
# dropped. A serial bus has no connection to drop; one silent unit must not cost the others.
TCP_TIMEOUTS_BEFORE_DROP = 3
# Appended to a timeout's reason when bytes came in that were not the answer.
STRAY_BYTES = "what arrived was not the answer (wrong transaction id, unit or framing)"


def frame_gap(config: TcpLink | SerialLink) -> float:
    """Seconds of silence between the end of one request and the next: `request_gap`, on a
    serial line never less than the 3.5-character gap that ends an RTU frame (Modbus over
    serial line v1.02, 2.5.1.1: a fixed 1.75 ms above 19200 baud)."""
    if not isinstance(config, SerialLink):
        return config.request_gap
    if config.baudrate > 19200:
        floor = 0.00175
    else:
        bits = 1 + config.bytesize + (config.parity != "N") + config.stopbits
        floor = 3.5 * bits / config.baudrate
    return max(config.request_gap, floor)


class Priority(IntEnum):
    """Order of waiting requests on a link: writes first, then polls, first come first served."""

    WRITE = 0
    POLL = 1


class ConnectError(DeviceUnavailableError):
    """The link could not be opened (refused, unreachable, no such port), or is waiting out
    its backoff after such a failure."""


class RequestTimeoutError(DeviceUnavailableError):
    """A unit did not answer within its timeout."""


class ConnectionLostError(DeviceUnavailableError):
    """The connection closed while a request was waiting for its answer."""


class ModbusExceptionError(Exception):
    """The unit answered with a Modbus exception response."""

    def __init__(self, function_code: int, code: int) -> None:
        self.function_code = function_code
        self.code = code
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"exception {code}: {name}")


class ResponseError(Exception):
    """The answer did not fit the request (wrong unit, wrong transaction, wrong size)."""


def format_ms(seconds: float) -> str:
    """500ms, 1500ms, 2.5ms: durations in reasons are in milliseconds."""
    ms = seconds * 1000
    return f"{ms:.0f}ms" if abs(ms - round(ms)) < 1e-6 else f"{ms:.1f}ms"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: full jitter over an exponential ceiling, capped
    (the delay after the n-th failure in a row is uniform in [0, min(cap, initial * 2**(n-1))])."""

    initial: float = 0.25
    cap: float = 15.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.initial * 2 ** min(failures - 1, 62))
        return rng.uniform(0.0, ceiling)


class _PriorityLock:
    """A mutex whose waiters are served by priority, then in arrival order."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, priority: Priority) -> None:
        if not self._held and not self._waiters:
            self._held = True
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():
                granted.set_result(None)
                return
        self._held = False


def _connect_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class ModbusLink:
    """The connection of one link key and the queue of every request on it."""

    def __init__(
        self,
        config: TcpLink | SerialLink,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._lock = _PriorityLock()
        self._client: Any = None
        self._in_flight = False
        # Bytes came in during the request in flight that pymodbus did not take as its answer
        # (wrong transaction id, unit id or framing): its timeout then says so.
        self._stray_bytes = False
        self._connects = 0
        self._connect_failures = 0
        self._retry_at = 0.0
        self._last_connect_error = ""
        self._timeouts_in_row = 0
        self._users = 0
        self._frame_gap = frame_gap(config)
        # Event-loop time before which nothing is sent (the wire's time, even under a
        # simulated clock, as for the request timeouts).
        self._quiet_until = 0.0

    @property
    def key(self) -> str:
        return self.config.key

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    @property
    def reconnects(self) -> int:
        """Connections opened after the first one."""
        return max(0, self._connects - 1)

    def attach(self) -> None:
        """A device starts using the link."""
        self._users += 1

    def detach(self) -> None:
        """A device stops using the link; the last one out closes the connection."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            self.close()

    def close(self) -> None:
        """Close the connection now (a later request opens it again)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @asynccontextmanager
    async def owned(self, priority: Priority) -> AsyncIterator[LinkSession]:
        """Own the link for one or more requests (a read-modify-write holds it for both)."""
        await self._lock.acquire(priority)
        try:
            yield LinkSession(self)
        finally:
            self._lock.release()

    # -- under ownership ------------------------------------------------------------------

    def _new_client(self, time_limit: float) -> Any:
        # pymodbus's own retries and reconnect loop are off (retries=0, reconnect_delay=0):
        # retries are ours, reconnection is ours (with backoff), and every wait is bounded by
        # our asyncio.timeout, which fires before the library's generous internal one.
        created: list[Any] = []
        common: dict[str, Any] = {
            "retries": 0,
            "reconnect_delay": 0,
            "reconnect_delay_max": 0,
            "timeout": time_limit + 5.0,
            "trace_connect": lambda up: self._on_connection_change(created, up),
            "trace_packet": self._on_packet,
        }
        config = self.config
        client: Any
        if isinstance(config, SerialLink):
            client = AsyncModbusSerialClient(
                config.port,
                framer=FramerType.RTU,
                baudrate=config.baudrate,
                bytesize=config.bytesize,
                parity=config.parity,
                stopbits=config.stopbits,
                **common,
            )
        else:
            framer = FramerType.RTU if config.transport == "rtu_over_tcp" else FramerType.SOCKET
            client = AsyncModbusTcpClient(config.host, port=config.port, framer=framer, **common)
        created.append(client)
        return client

    def _on_connection_change(self, created: list[Any], up: bool) -> None:
        """pymodbus reports a lost connection here; fail the waiting request at once instead of
        letting it wait out its timeout (only for the link's current client)."""
        if up or not self._in_flight or not created or created[0] is not self._client:
            return
        waiting = self._client.ctx.response_future
        if not waiting.done():
            waiting.set_exception(ConnectionLostError("connection lost"))

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and self._in_flight and data:
            self._stray_bytes = True
        return data

    async def _connected_client(self, time_limit: float) -> Any:
        if self.connected:
            return self._client
        self.close()
        if self.clock.monotonic() < self._retry_at:
            raise ConnectError(self._last_connect_error)
        client = self._new_client(time_limit)
        reason = ""
        try:
            async with asyncio.timeout(time_limit):
                # pymodbus's connect() swallows the reason a connection failed; this is the
                # same call without that (pymodbus 3.16 transport.ModbusProtocol.connect).
                client.ctx.is_closing = False
                client.ctx.transport, _ = await client.ctx.call_create()
        except TimeoutError:
            reason = f"connect timeout after {format_ms(time_limit)}"
        except OSError as exc:  # also serial.SerialException
            reason = _connect_reason(exc)
        if reason:
            client.close()
            self._connect_failures += 1
            delay = self.backoff.delay(self._connect_failures, self._rng)
            self._retry_at = self.clock.monotonic() + delay
            if reason != self._last_connect_error:
                log.warning("modbus link connect failed", link=self.key, error=reason)
            self._last_connect_error = reason
            raise ConnectError(reason)
        # Devices log their own state changes; the link speaks up only when it recovers from
        # failed attempts (routine reopenings, e.g. after timeouts, stay at debug).
        if self._connect_failures:
            log.info("modbus link reconnected", link=self.key, attempts=self._connect_failures + 1)
        else:
            log.debug("modbus link connected", link=self.key, connects=self._connects + 1)
        self._client = client
        self._connects += 1
        self._connect_failures = 0
        self._last_connect_error = ""
        self._timeouts_in_row = 0
        return client

    async def _execute(self, call: Callable[[Any], Awaitable[Any]], time_limit: float) -> Any:
        client = await self._connected_client(time_limit)
        loop = asyncio.get_running_loop()
        if (quiet := self._quiet_until - loop.time()) > 0:
            await asyncio.sleep(quiet)
        self._in_flight = True
        self._stray_bytes = False
        pause = self._frame_gap
        try:
            async with asyncio.timeout(time_limit):
                try:
                    response = await call(client)
                except ModbusIOException:
                    # MBAP only: the late answer to an earlier, timed-out request arrived in
                    # this one's place. Its own answer is then dropped by pymodbus: ask again.
                    response = await call(client)
        except TimeoutError:
            if not client.connected:
                self.close()
                raise ConnectionLostError("connection lost") from None
            pause = max(pause, self.config.pause_after_timeout)
            self._timeouts_in_row += 1
            if (
                isinstance(self.config, TcpLink)
                and self._timeouts_in_row >= TCP_TIMEOUTS_BEFORE_DROP
            ):
                log.debug("modbus link dropped after timeouts", link=self.key)
                self.close()
            reason = f"timeout after {format_ms(time_limit)}"
            if self._stray_bytes:
                reason += f": {STRAY_BYTES}"
            raise RequestTimeoutError(reason) from None
        except ConnectionLostError:
            self.close()
            raise
        except ConnectionException as exc:
            self.close()
            raise ConnectionLostError("connection lost") from exc
        except ModbusIOException as exc:
            raise ResponseError(f"bad response: {exc}") from exc
        finally:
            self._in_flight = False
            self._quiet_until = loop.time() + pause
        self._timeouts_in_row = 0
        if response.isError():
            raise ModbusExceptionError(response.function_code & 0x7F, response.exception_code)
        return response


class LinkSession:
    """The requests one owner of a link may make. Each is bounded by `time_limit` seconds."""

    def __init__(self, link: ModbusLink) -> None:
        self._link = link

    async def read(
        self, table: Table, address: int, count: int, *, unit: int, time_limit: float
    ) -> list[int] | list[bool]:
        """`count` registers (or bits; bit responses may be padded to a multiple of 8)."""
        if table is Table.COIL:
            response = await self._link._execute(
                lambda c: c.read_coils(address, count=count, device_id=unit), time_limit
            )
        elif table is Table.DISCRETE:
            response = await self._link._execute(
                lambda c: c.read_discrete_inputs(address, count=count, device_id=unit), time_limit
            )
        elif table is Table.HOLDING:
            response = await self._link._execute(
                lambda c: c.read_holding_registers(address, count=count, device_id=unit),
                time_limit,
            )
        else:
            response = await self._link._execute(
                lambda c: c.read_input_registers(address, count=count, device_id=unit), time_limit
            )
        values: list[int] | list[bool] = response.bits if table.is_bits else response.registers
        return values

    async def write_coil(self, address: int, value: bool, *, unit: int, time_limit: float) -> None:
        """FC5."""
        await self._link._execute(
            lambda c: c.write_coil(address, value, device_id=unit), time_limit
        )

    async def write_coils(
        self, address: int, values: list[bool], *, unit: int, time_limit: float
    ) -> None:
        """FC15."""
        await self._link._execute(
            lambda c: c.write_coils(address, values, device_id=unit), time_limit
        )

    async def write_register(
        self, address: int, word: int, *, unit: int, time_limit: float
    ) -> None:
        """FC6."""
        await self._link._execute(
            lambda c: c.write_register(address, word, device_id=unit), time_limit
        )

    async def write_registers(
        self, address: int, words: list[int], *, unit: int, time_limit: float
    ) -> None:
        """FC16: all words in one request."""
        await self._link._execute(
            lambda c: c.write_registers(address, words, device_id=unit), time_limit
        )

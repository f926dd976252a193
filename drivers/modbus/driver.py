"""The Modbus device driver: one device's poll schedule, samples, status and writes.

Device faults never escape as exceptions: every poll gives one sample per tag (good with its
value, or bad with a reason) and a status; state changes are logged once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import cast

import structlog

from controller.model import (
    DeviceStatus,
    DeviceUnavailableError,
    LinkState,
    Quality,
    Sample,
    Value,
    WriteError,
    samples_of,
)
from drivers.base import Driver, DriverContext, UnencodableValueError, WholeSteps
from drivers.modbus.codec import (
    BlockDecoder,
    CodecError,
    DecodeError,
    EncodeError,
    FieldSpec,
    apply_scale,
    encode,
    remove_scale,
    set_bit,
    whole_number,
)
from drivers.modbus.config import DataType, ModbusDevice, ModbusTag, Table
from drivers.modbus.link import (
    ConnectError,
    ConnectionLostError,
    LinkSession,
    ModbusExceptionError,
    ModbusLink,
    Priority,
    RequestTimeoutError,
    ResponseError,
)
from drivers.modbus.planner import ReadRequest, plan_device

log = structlog.get_logger(__name__)

_FAILED_STATES = (LinkState.FAILED, LinkState.RECONNECTING)
_INTEGERS = frozenset(
    {
        DataType.INT16,
        DataType.UINT16,
        DataType.INT32,
        DataType.UINT32,
        DataType.INT64,
        DataType.UINT64,
    }
)


@dataclass(frozen=True, slots=True)
class _Scaled:
    """A tag whose scale comes from another tag of the same read (a SunSpec scale factor):
    `value = raw * 10**values[sf_index] * scale + offset`."""

    index: int
    sf_index: int
    sf_name: str
    scale: float
    offset: float


@dataclass(frozen=True, slots=True)
class _CompiledRead:
    """A planned request with its decoder and the names of the tags it yields."""

    request: ReadRequest
    decoder: BlockDecoder
    names: tuple[str, ...]
    scaled: tuple[_Scaled, ...] = ()
    exponents: tuple[tuple[int, str], ...] = ()  # (index, name) of the scale factors read


def _compile(device: ModbusDevice, request: ReadRequest) -> _CompiledRead:
    position = {tag.name: i for i, tag in enumerate(request.tags)}
    fields = [
        FieldSpec(
            position=tag.address - request.address,
            dtype=tag.type,
            order=tag.order or device.byte_order,
            bit=tag.bit,
            length=tag.length,
            # A tag scaled by another is decoded raw here and scaled once both are in.
            scale=tag.scale if tag.scale_factor is None else 1.0,
            offset=tag.offset if tag.scale_factor is None else 0.0,
        )
        for tag in request.tags
    ]
    scaled = tuple(
        _Scaled(i, position[tag.scale_factor], tag.scale_factor, tag.scale, tag.offset)
        for i, tag in enumerate(request.tags)
        if tag.scale_factor is not None
    )
    sf_names = {s.sf_name for s in scaled}
    exponents = tuple((position[name], name) for name in sorted(sf_names))
    decoder = BlockDecoder(fields, request.count, bits=request.table.is_bits)
    return _CompiledRead(
        request, decoder, tuple(tag.name for tag in request.tags), scaled, exponents
    )


def _power_of_ten(raw: Value, exponent: int, scale: float, offset: float) -> Value:
    """`raw * 10**exponent`, dividing for negative exponents so 2345 with -1 is 234.5, not
    234.50000000000003; then the tag's own scale and offset."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return raw
    shifted = raw * 10**exponent if exponent >= 0 else raw / 10**-exponent
    return apply_scale(shifted, scale, offset)


def scale_factor_error(name: str, exponent: Value | DecodeError) -> str | None:
    """Why a scale factor's reading cannot scale a value (None: it can). SunSpec marks an
    unimplemented scale factor 0x8000 (-32768) and keeps real ones within -10..10."""
    if isinstance(exponent, DecodeError):
        return f"scale factor {name} unreadable: {exponent}"
    if not isinstance(exponent, int) or isinstance(exponent, bool):
        return f"scale factor {name} is not an integer: {exponent!r}"
    if exponent == -32768:
        return f"scale factor {name} reads -32768: not implemented by the device"
    if not -10 <= exponent <= 10:
        return f"scale factor {name} reads {exponent}, outside -10..10"
    return None


@dataclass(slots=True)
class _PollOutcome:
    samples: list[Sample]
    first_error: str = ""
    answered: bool = False
    link_down: bool = False


class ModbusDriver(Driver):
    """One Modbus unit on a (possibly shared) link."""

    def __init__(self, device: ModbusDevice, link: ModbusLink, ctx: DriverContext) -> None:
        self.name = device.name
        self.device = device
        self.link = link
        self.ctx = ctx
        self._reads = tuple(_compile(device, request) for request in plan_device(device))
        self._tags = {tag.name: tag for tag in device.tags}
        # The last good reading of each scale factor: writes to the tags it scales use it.
        self._exponents: dict[str, int] = {}
        self._status = DeviceStatus(
            device=device.name,
            since_ms=ctx.clock.wall_ms(),
            extra={"link": link.key, "unit_id": device.unit_id, "requests": len(self._reads)},
        )
        self._log = log.bind(device=device.name, link=link.key, unit_id=device.unit_id)
        self._attached = True
        link.attach()

    # -- schedule -----------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every `poll_interval` on a fixed grid from the start: the n-th poll is due at
        start + n * interval whatever the previous polls took. A poll that overruns skips the
        deadlines it missed (counted in `skipped_cycles`), it never queues them."""
        clock = self.ctx.clock
        interval = self.device.poll_interval
        start = clock.monotonic()
        cycle = 0
        try:
            while True:
                await clock.sleep_until(start + cycle * interval)
                await self.poll_once()
                cycle += 1
                late = clock.monotonic() - (start + cycle * interval)
                if late > 0:
                    missed = math.ceil(late / interval)
                    cycle += missed
                    self._status.skipped_cycles += missed
        finally:
            self._stop()

    async def poll_once(self) -> None:
        """Read every tag once, emit one batch of samples and the status."""
        started = time.perf_counter()  # latency is a physical measurement, not schedule time
        outcome = await self._poll()
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.ctx.on_samples(outcome.samples)
        status = self._status
        status.polls += 1
        status.latency_ms = round(latency_ms, 3)
        status.reconnects = self.link.reconnects
        # last_error is the last poll's: empty once a poll has none, not an outage that is over.
        status.last_error = outcome.first_error
        if outcome.first_error:
            status.consecutive_failures += 1
        else:
            status.consecutive_failures = 0
        if outcome.answered:
            state = LinkState.CONNECTED
        elif outcome.link_down:
            state = LinkState.RECONNECTING
        else:
            state = LinkState.FAILED
        self._change_state(state, outcome.first_error)
        self.ctx.on_status(self.status())

    async def _poll(self) -> _PollOutcome:
        outcome = _PollOutcome(samples=[])
        clock = self.ctx.clock
        unit_down = ""  # after a unit failed to answer, its other requests wait for next cycle
        for read in self._reads:
            if unit_down:
                self._bad(outcome, read, unit_down, clock.wall_ms())
                continue
            try:
                words = await self._read(read.request)
            except (ModbusExceptionError, ResponseError) as exc:
                outcome.answered = True
                self._bad(outcome, read, str(exc), clock.wall_ms())
                continue
            except DeviceUnavailableError as exc:
                unit_down = str(exc)
                outcome.link_down = isinstance(exc, ConnectError | ConnectionLostError)
                self._bad(outcome, read, unit_down, clock.wall_ms())
                continue
            outcome.answered = True
            now_ms = clock.wall_ms()
            try:
                values = read.decoder.decode(words)
            except DecodeError as exc:
                self._bad(outcome, read, f"decode error: {exc}", now_ms)
                continue
            device = self.name
            if read.scaled:
                values = self._apply_scale_factors(read, values)
            elif not read.decoder.may_fail:  # every field decoded: one batch, no per-tag checks
                good = cast("list[Value]", values)
                outcome.samples.extend(
                    samples_of(
                        device,
                        read.names,
                        good,
                        quality=Quality.GOOD,
                        source_ts=now_ms,
                        read_ts=now_ms,
                    )
                )
                continue
            for name, value in zip(read.names, values, strict=True):
                if isinstance(value, DecodeError):
                    reason = f"decode error: {value}"
                    outcome.first_error = outcome.first_error or reason
                    outcome.samples.append(
                        Sample(device, name, None, Quality.BAD, now_ms, now_ms, reason)
                    )
                else:
                    outcome.samples.append(
                        Sample(device, name, value, Quality.GOOD, now_ms, now_ms)
                    )
        return outcome

    def _apply_scale_factors(
        self, read: _CompiledRead, values: list[Value | DecodeError]
    ) -> list[Value | DecodeError]:
        """Scale each tag by its scale factor read in the same response; a tag whose factor is
        unreadable, unimplemented or out of range is bad, with the reason."""
        out = list(values)
        for index, name in read.exponents:
            exponent = values[index]
            if scale_factor_error(name, exponent) is None:
                self._exponents[name] = cast("int", exponent)
            else:
                self._exponents.pop(name, None)
        for spec in read.scaled:
            raw, exponent = values[spec.index], values[spec.sf_index]
            if isinstance(raw, DecodeError):
                continue
            problem = scale_factor_error(spec.sf_name, exponent)
            if problem is not None:
                out[spec.index] = DecodeError(problem)
                continue
            out[spec.index] = _power_of_ten(raw, cast("int", exponent), spec.scale, spec.offset)
        return out

    async def _read(self, request: ReadRequest) -> list[int] | list[bool]:
        """One planned read; a timeout is retried `retries` times, each retry queued anew so
        the other units on the link are not held up by more than one timeout at a time."""
        device = self.device
        attempt = 0
        while True:
            try:
                async with self.link.owned(Priority.POLL) as session:
                    return await session.read(
                        request.table,
                        request.address,
                        request.count,
                        unit=device.unit_id,
                        time_limit=device.timeout,
                    )
            except RequestTimeoutError:
                if attempt >= device.retries:
                    raise
                attempt += 1

    def _bad(self, outcome: _PollOutcome, read: _CompiledRead, reason: str, now_ms: int) -> None:
        outcome.first_error = outcome.first_error or reason
        device = self.name
        outcome.samples.extend(
            Sample(device, name, None, Quality.BAD, now_ms, now_ms, reason) for name in read.names
        )

    # -- status -------------------------------------------------------------------------

    def status(self) -> DeviceStatus:
        return replace(self._status, extra=dict(self._status.extra))

    def _change_state(self, state: LinkState, error: str) -> None:
        previous = self._status.state
        if state is previous:
            return
        self._status.state = state
        self._status.since_ms = self.ctx.clock.wall_ms()
        if state is LinkState.CONNECTED:
            if previous in _FAILED_STATES:
                self._log.info("modbus device recovered", state=state.value)
            else:
                self._log.info("modbus device connected", state=state.value)
        elif state in _FAILED_STATES and previous not in _FAILED_STATES:
            self._log.warning("modbus device failed", state=state.value, error=error)
        else:
            self._log.debug("modbus device state", state=state.value, error=error)

    def _stop(self) -> None:
        if self._attached:
            self._attached = False
            self.link.detach()
        if self._status.state is not LinkState.STOPPED:
            self._change_state(LinkState.STOPPED, "")
            self.ctx.on_status(self.status())

    async def close(self) -> None:
        self._stop()

    # -- writes -------------------------------------------------------------------------

    def check_write(self, tag: str, value: Value) -> None:
        """Raise UnencodableValueError when `value` cannot be encoded for `tag` (no I/O): the
        same encoding `write()` does, stopped before the request."""
        spec = self._tags.get(tag)
        if spec is None:
            raise UnencodableValueError(f"{self.name}.{tag}: no such tag on device {self.name}")
        self._encode(spec, value)

    def whole_steps(self, tag: str) -> WholeSteps | None:
        spec = self._tags.get(tag)
        if spec is None or spec.type not in _INTEGERS or spec.scale == 0:
            return None
        scale = self._scale_of(spec)
        if scale is None:
            return None
        return WholeSteps(abs(scale), spec.offset)

    def _scale_of(self, spec: ModbusTag) -> float | None:
        """The tag's scale now: its own, times 10**(its scale factor's last good reading);
        None while that scale factor has not been read."""
        if spec.scale_factor is None:
            return spec.scale
        exponent = self._exponents.get(spec.scale_factor)
        return None if exponent is None else spec.scale * 10.0**exponent

    async def write(self, tag: str, value: Value) -> None:
        """Write one tag: FC5 for a coil, FC6 for one register, FC16 (one request) for wider
        values, and a read-modify-write (FC3 then FC6, holding the link) for a bit of a
        register. Raises WriteError with the reason (UnencodableValueError, before any request,
        for a value the tag's type cannot hold)."""
        spec = self._tags.get(tag)
        where = f"{self.name}.{tag}"
        if spec is None:
            raise WriteError(f"{where}: no such tag on device {self.name}")
        if not spec.writable:
            raise WriteError(f"{where}: tag is not writable")
        encoded = self._encode(spec, value)
        try:
            await self._write(spec, encoded)
        except (CodecError, ModbusExceptionError, ResponseError, DeviceUnavailableError) as exc:
            raise WriteError(f"{where}: {exc}") from exc
        self._log.debug("modbus write", tag=tag, value=value)

    def _encode(self, spec: ModbusTag, value: Value) -> bool | list[int]:
        """What `_write` sends for `value`: the state of a coil or bit, else the register words."""
        try:
            if spec.table is Table.COIL or spec.type is DataType.BIT:
                return _as_bool(value)
            scale = self._scale_of(spec)
            if scale is None:
                raise EncodeError(
                    f"its scale factor {spec.scale_factor} has not been read yet (or reads "
                    "as not implemented): no raw value can be worked out"
                )
            raw = remove_scale(value, scale, spec.offset)
            if (
                spec.type in _INTEGERS
                and isinstance(raw, float)
                and (scale, spec.offset) != (1.0, 0.0)
                and whole_number(raw) is None
            ):
                raise EncodeError(
                    f"{value:g} is not one of its steps of {abs(scale):g} "
                    f"(raw {raw:g} is not a whole number)"
                )
            return encode(raw, spec.type, spec.order or self.device.byte_order, length=spec.length)
        except CodecError as exc:
            where = f"{self.name}.{spec.name}"
            raise UnencodableValueError(f"{where} is {spec.type.value}: {exc}") from exc

    async def _write(self, spec: ModbusTag, encoded: bool | list[int]) -> None:
        device = self.device
        unit, timeout = device.unit_id, device.timeout
        if isinstance(encoded, bool):
            async with self.link.owned(Priority.WRITE) as session:
                if spec.table is Table.COIL:
                    await session.write_coil(spec.address, encoded, unit=unit, time_limit=timeout)
                else:
                    await self._write_bit(session, spec, encoded)
            return
        async with self.link.owned(Priority.WRITE) as session:
            if len(encoded) == 1:
                await session.write_register(
                    spec.address, encoded[0], unit=unit, time_limit=timeout
                )
            else:
                await session.write_registers(spec.address, encoded, unit=unit, time_limit=timeout)

    async def _write_bit(self, session: LinkSession, spec: ModbusTag, state: bool) -> None:
        device = self.device
        unit, timeout = device.unit_id, device.timeout
        current = await session.read(Table.HOLDING, spec.address, 1, unit=unit, time_limit=timeout)
        if len(current) != 1:
            raise ResponseError(f"bad response: expected 1 register, got {len(current)}")
        word = set_bit(int(current[0]), spec.bit or 0, state)
        await session.write_register(spec.address, word, unit=unit, time_limit=timeout)


def _as_bool(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise CodecError(f"{value!r} is not a bool (true/false or 0/1)")

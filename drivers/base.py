"""The contract every driver implements, and how the runtime builds drivers from config.

A driver owns one device's schedule, connection, last error and status (as Home Assistant's
update coordinator does): device faults never escape it as exceptions, they become bad-quality
samples and a status change, logged once per change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.clock import Clock
from controller.model import DeviceEvent, DeviceStatus, Sample, Value, WriteError

# Called with the samples of one poll (or one subscription batch) of one device. Must not block:
# the runtime puts them in the TagTable and returns.
SampleSink = Callable[[Sequence[Sample]], None]
# Called whenever a device's status changes (state, error) and after each poll (latency).
StatusSink = Callable[[DeviceStatus], None]
# Called with each event a device raised (OPC UA events and conditions) and whether to publish
# it (False: over the device's event rate; its condition state still counts). Must not block.
EventSink = Callable[[DeviceEvent, bool], None]


class ConditionCallError(WriteError):
    """A condition method (Acknowledge) the device refused or could not be reached for."""


class UnencodableValueError(WriteError):
    """A value the tag's type cannot hold (outside its range, a fraction for an integer, a number
    for text, true/false for a number): refused before anything is sent."""


@dataclass(frozen=True, slots=True)
class WholeSteps:
    """The values of a tag the device holds as an integer: `origin + n * step` in engineering
    units (a Modbus int16 with `scale: 0.1` takes 0.1, 0.2, ...; an unscaled one 1, 2, ...)."""

    step: float
    origin: float = 0.0


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What the runtime hands every driver."""

    clock: Clock
    on_samples: SampleSink
    on_status: StatusSink
    state_dir: Path
    on_event: EventSink | None = None


class Driver(ABC):
    """One device.

    `run()` connects, polls on a fixed schedule that does not drift, reconnects with capped,
    jittered backoff, and returns only when cancelled; it never raises for a device fault.
    `poll_once()` does one poll cycle now (used by lock-step co-simulation instead of `run()`),
    connecting first if needed; it also never raises for a device fault.
    `write()` writes one tag and raises `controller.model.WriteError` with the device's reason
    when the write is refused or fails. Writes to a link are serialised with its polls.
    `check_write()` and `whole_steps()` answer, without any I/O, whether a value can be encoded
    for a tag and which values an integer tag takes: the actuator asks them before it writes, so
    a value the device cannot hold is refused, not sent and failed.
    """

    name: str

    @abstractmethod
    async def run(self) -> None: ...

    @abstractmethod
    async def poll_once(self) -> None: ...

    @abstractmethod
    async def write(self, tag: str, value: Value) -> None: ...

    @abstractmethod
    def status(self) -> DeviceStatus: ...

    def check_write(self, tag: str, value: Value) -> None:  # noqa: B027  (no types known)
        """Raise `UnencodableValueError` (saying why) when `value` cannot be encoded for `tag`.
        No I/O. The default knows no types: every value is left to the device to judge."""

    def whole_steps(self, tag: str) -> WholeSteps | None:
        """The values `tag` can take when the device holds it as an integer; None for any other
        tag (or when the type is not known yet)."""
        return None

    async def acknowledge_condition(self, condition_id: str, event_id: bytes, comment: str) -> None:
        """Acknowledge a condition the device raised; `ConditionCallError` with the device's
        reason when it refuses. Devices without conditions refuse every call."""
        raise ConditionCallError(f"device {self.name} has no alarm conditions")

    async def close(self) -> None:  # noqa: B027  (optional hook, a no-op by default)
        """Release the connection; `run()` being cancelled must also do it."""


# Builds the drivers of every device of one kind; it sees them all so that devices sharing a
# link (Modbus units on one RS-485 bus) can share one connection.
DriverFactory = Callable[[Sequence[object], DriverContext], list[Driver]]

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
from controller.model import DeviceStatus, Sample, Value

# Called with the samples of one poll (or one subscription batch) of one device. Must not block:
# the runtime puts them in the TagTable and returns.
SampleSink = Callable[[Sequence[Sample]], None]
# Called whenever a device's status changes (state, error) and after each poll (latency).
StatusSink = Callable[[DeviceStatus], None]


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What the runtime hands every driver."""

    clock: Clock
    on_samples: SampleSink
    on_status: StatusSink
    state_dir: Path


class Driver(ABC):
    """One device.

    `run()` connects, polls on a fixed schedule that does not drift, reconnects with capped,
    jittered backoff, and returns only when cancelled; it never raises for a device fault.
    `poll_once()` does one poll cycle now (used by lock-step co-simulation instead of `run()`),
    connecting first if needed; it also never raises for a device fault.
    `write()` writes one tag and raises `controller.model.WriteError` with the device's reason
    when the write is refused or fails. Writes to a link are serialised with its polls.
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

    async def close(self) -> None:  # noqa: B027  (optional hook, a no-op by default)
        """Release the connection; `run()` being cancelled must also do it."""


# Builds the drivers of every device of one kind; it sees them all so that devices sharing a
# link (Modbus units on one RS-485 bus) can share one connection.
DriverFactory = Callable[[Sequence[object], DriverContext], list[Driver]]

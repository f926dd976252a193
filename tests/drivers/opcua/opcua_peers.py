"""Real OPC UA peers for the driver tests: the simulated cell's asyncua server on a free
loopback port in front of the simulated plant, a recording DriverContext, device configs.

A module of its own (not conftest.py) so that test modules import it by a unique name."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.clock import SYSTEM_CLOCK
from controller.model import DeviceEvent, DeviceStatus, LinkState, Quality, Sample
from drivers.base import DriverContext
from drivers.opcua.config import OpcUaDevice
from drivers.opcua.driver import OpcUaDriver
from drivers.sim.opcua_server import SimOpcUaServer, SimOpcUaSpec
from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import load_scenario

USERS = {"operator": "correct horse"}


# The simulated cell's normal day and the OPC UA server it serves (the utility PLC:
# compressor room and chiller). The plant stands still unless a test steps it.
SCENARIO = load_scenario("normal-day")
UTILITY_PLC = SimOpcUaSpec.model_validate(
    SCENARIO.opcua_devices[0].model_dump(include={"namespace", "objects", "alarms"})
)


def new_plant() -> Plant:
    return Plant(SCENARIO)


@dataclass
class Recorder:
    """A DriverContext whose sinks record everything, with waits bounded by a timeout."""

    state_dir: Path
    samples: list[Sample] = field(default_factory=list)
    batches: list[list[Sample]] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    # (event, whether the driver let it be published)
    events: list[tuple[DeviceEvent, bool]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def context(self) -> DriverContext:
        return DriverContext(
            clock=SYSTEM_CLOCK,
            on_samples=self._on_samples,
            on_status=self._on_status,
            state_dir=self.state_dir,
            on_event=self._on_event,
        )

    def _on_event(self, event: DeviceEvent, publish: bool) -> None:
        self.events.append((event, publish))
        self._changed.set()

    def _on_samples(self, samples: Any) -> None:
        batch = list(samples)
        self.batches.append(batch)
        self.samples.extend(batch)
        self._changed.set()

    def _on_status(self, status: DeviceStatus) -> None:
        # Drivers keep one status object; record a snapshot of each report.
        self.statuses.append(DeviceStatus(**{k: getattr(status, k) for k in status.__slots__}))
        self._changed.set()

    def of(self, device: str, tag: str) -> list[Sample]:
        return [s for s in self.samples if s.device == device and s.tag == tag]

    def last(self, device: str, tag: str) -> Sample:
        return self.of(device, tag)[-1]

    def status_of(self, device: str) -> DeviceStatus:
        return [s for s in self.statuses if s.device == device][-1]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_sample(
        self, device: str, tag: str, predicate: Callable[[Sample], bool], within: float = 10.0
    ) -> Sample:
        found: list[Sample] = []

        def match() -> bool:
            found[:] = [s for s in self.of(device, tag) if predicate(s)]
            return bool(found)

        await self.wait_for(match, within)
        return found[-1]

    async def wait_state(self, device: str, state: LinkState, within: float = 10.0) -> DeviceStatus:
        def reached() -> bool:
            return any(s.device == device and s.state is state for s in self.statuses)

        await self.wait_for(reached, within)
        return [s for s in self.statuses if s.device == device and s.state is state][-1]


def device(endpoint: str, tags: list[dict[str, Any]], **settings: Any) -> OpcUaDevice:
    """An OPC UA device config as the YAML would give it, with test-friendly timings."""
    data: dict[str, Any] = {
        "driver": "opcua",
        "name": "plc",
        "endpoint": endpoint,
        "publishing_interval": "100ms",
        "poll_interval": "200ms",
        "timeout": "2s",
        "connect_timeout": "5s",
        "keepalive_interval": "1s",
        "reconnect_min": "200ms",
        "reconnect_max": "1s",
        "tags": tags,
    }
    data.update(settings)
    return OpcUaDevice.model_validate(data)


@contextlib.asynccontextmanager
async def running(*drivers: OpcUaDriver) -> AsyncIterator[None]:
    """Drivers' run() in a TaskGroup for the duration of the block, cancelled after it."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(driver.run()) for driver in drivers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()


def sim_server(plant: Plant, cert_dir: Path, **options: Any) -> SimOpcUaServer:
    options.setdefault("users", USERS)
    return SimOpcUaServer(plant, UTILITY_PLC, cert_dir=cert_dir, server_clock=False, **options)


def good(sample: Sample) -> bool:
    return sample.quality is Quality.GOOD

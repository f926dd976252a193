"""Lock-step co-simulation: the simulated cell and the real controller, one cycle at a time.

Each cycle the plant advances by one controller cycle, every device is polled once through the
real Modbus and OPC UA servers, and the rule engine runs once; its writes travel back through
the same servers into the plant. Time comes from a `SteppedClock`, so windows, timers and
timestamps follow simulated time and a simulated day takes minutes.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import structlog

from controller.actuation import Actuator, write_limits
from controller.alarms import AlarmBoard
from controller.clock import SteppedClock
from controller.config import Config, DeviceConfig
from controller.model import DeviceStatus, Sample
from controller.rules.engine import RuleEngine
from controller.rules.kinds import build_rules
from controller.rules.memory import RULE_MEMORY_DIR, RuleMemory
from controller.rules.timing import ControlTiming
from controller.scheduler.board import PlanBoard
from controller.scheduler.planner import Planner
from controller.tagtable import TagTable
from drivers.base import Driver, DriverContext
from drivers.registry import build_drivers
from drivers.sim.cell import SimCell
from drivers.sim.forecast import pv_cloud_forecasts
from drivers.sim.scenario import Scenario

log = structlog.get_logger(__name__)


class RecordedEvents:
    """An EventSink that keeps what the controller would publish: write events in order, the
    latest payload of every retained topic, and counts per topic kind."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.retained: dict[str, dict[str, Any]] = {}
        self.retained_history: list[tuple[str, dict[str, Any]]] = []
        self.counts: Counter[str] = Counter()

    def publish_event(self, topic: str, payload: bytes) -> None:
        self.events.append((topic, orjson.loads(payload)))
        self.counts[topic.rsplit("/", 1)[-1]] += 1

    def publish_retained(self, topic: str, payload: bytes) -> None:
        if payload:
            self.retained[topic] = orjson.loads(payload)
            if "/alarms/" in topic:  # every alarm change, for scoring detection times
                self.retained_history.append((topic, self.retained[topic]))
        else:
            self.retained.pop(topic, None)

    def writes(self) -> list[dict[str, Any]]:
        return [p for t, p in self.events if t.endswith("/events/writes")]


def point_config_at_cell(config: Config, cell: SimCell, state_dir: Path) -> Config:
    """The config with every device named like a simulated device pointed at that device."""
    devices: list[DeviceConfig] = []
    for device in config.devices:
        if device.driver == "modbus" and device.name in cell.modbus_endpoints:
            host, port, unit_id = cell.modbus_endpoints[device.name]
            link = device.link.model_copy(update={"host": host, "port": port})
            devices.append(device.model_copy(update={"link": link, "unit_id": unit_id}))
        elif device.driver == "opcua" and device.name in cell.opcua_endpoints:
            endpoint = cell.opcua_endpoints[device.name]
            devices.append(device.model_copy(update={"endpoint": endpoint}))
        else:
            devices.append(device)
    gateway = config.gateway.model_copy(update={"state_dir": state_dir})
    return config.model_copy(update={"devices": devices, "gateway": gateway})


# In lock-step the plant waits for the controller, so a reply that is slow in real time (a busy
# machine, a loaded CI worker) is not a fault of the cell: a timeout there would make the same
# seed give another day. Device and write timeouts are at least this long in co-simulation.
LOCKSTEP_TIMEOUT = 10.0


def _patient(config: Config) -> Config:
    """The config with every device's and the actuator's timeout at least LOCKSTEP_TIMEOUT."""
    devices = [
        device.model_copy(update={"timeout": max(device.timeout, LOCKSTEP_TIMEOUT)})
        for device in config.devices
    ]
    actuation = config.actuation.model_copy(
        update={"write_timeout": max(config.actuation.write_timeout, LOCKSTEP_TIMEOUT)}
    )
    return config.model_copy(update={"devices": devices, "actuation": actuation})


class CoSimulation:
    """`async with CoSimulation(scenario, config) as run: await run.advance(3600)`.

    `cycle` is the controller's cycle in simulated seconds (the engine's period and every
    device's poll interval, in lock-step). `rules=False` runs the same plant and polls with no
    rule engine writes at all: the baseline of the savings report.
    """

    def __init__(
        self,
        scenario: Scenario,
        config: Config,
        *,
        cycle: float = 5.0,
        seed: int | None = None,
        rules: bool = True,
        opcua: bool = True,
    ) -> None:
        self.scenario = scenario
        self.cycle = cycle
        self.rules_enabled = rules
        # What a weather service would send the site (the scenario's `forecast:`), by issue time.
        self.forecasts = deque(pv_cloud_forecasts(scenario, seed))
        self.forecasts_offered: list[tuple[float, bool]] = []  # (issued s, accepted)
        start = scenario.start.replace(tzinfo=UTC)  # scenario times are the site's local time
        self.clock = SteppedClock(start_wall_ms=int(start.timestamp() * 1000))
        self.table = TagTable()
        self.events = RecordedEvents()
        self.statuses: dict[str, DeviceStatus] = {}
        self.cycles = 0
        self._config = config
        self._cell = SimCell(scenario, speed=None, ports=0, seed=seed, opcua=opcua)
        self._state = tempfile.TemporaryDirectory(prefix="edgecell-cosim-")
        self._drivers: list[Driver] = []
        self.engine: RuleEngine | None = None
        self.actuator: Actuator | None = None
        self.plans = PlanBoard()
        self.planner: Planner | None = None

    @property
    def cell(self) -> SimCell:
        return self._cell

    @property
    def plant(self) -> Any:
        return self._cell.plant

    async def __aenter__(self) -> CoSimulation:
        await self._cell.__aenter__()
        try:
            config = _patient(
                point_config_at_cell(self._config, self._cell, Path(self._state.name))
            )
            self.config = config
            context = DriverContext(
                clock=self.clock,
                on_samples=self._on_samples,
                on_status=self._on_status,
                state_dir=Path(self._state.name),
            )
            self._drivers = build_drivers(config.devices, context)
            self.actuator = Actuator(
                write_limits(config.devices),
                config.actuation,
                writers=self.driver,
                table=self.table,
                clock=self.clock,
                events=self.events,
                base_topic=config.base_topic,
            )
            self.alarms = AlarmBoard(self.events, base_topic=config.base_topic, clock=self.clock)
            if self.rules_enabled and config.scheduler is not None and config.tariff is not None:
                self.planner = Planner(
                    config.scheduler,
                    config.tariff,
                    board=self.plans,
                    table=self.table,
                    clock=self.clock,
                    events=self.events,
                    base_topic=config.base_topic,
                    state_dir=Path(self._state.name),
                )
            self.engine = RuleEngine(
                build_rules(config.rules, self._timing(config), self.plans, config.tariff)
                if self.rules_enabled
                else [],
                self.table,
                self.actuator,
                self.clock,
                period=self.cycle,
                events=self.events,
                base_topic=config.base_topic,
                alarms=self.alarms,
                memory=RuleMemory(Path(self._state.name) / RULE_MEMORY_DIR),
            )
            await self._poll_all()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.planner is not None:
            await self.planner.close()
        for driver in self._drivers:
            await driver.close()
        await self._cell.__aexit__(exc_type, exc, tb)
        self._state.cleanup()

    def _timing(self, config: Config) -> ControlTiming:
        """In lock-step the engine runs and every device is polled once per `cycle`,
        whatever the config's own periods."""
        polls = {device.name: self.cycle for device in config.devices}
        timing = ControlTiming.of(config.actuation, config.devices, cycle_s=self.cycle)
        return replace(timing, poll_s=polls)

    def driver(self, device: str) -> Driver:
        for driver in self._drivers:
            if driver.name == device:
                return driver
        raise KeyError(device)

    def _on_samples(self, samples: Any) -> None:
        self.table.update(samples)

    def _on_status(self, status: DeviceStatus) -> None:
        self.statuses[status.device] = status

    async def _poll_all(self) -> None:
        await asyncio.gather(*(driver.poll_once() for driver in self._drivers))

    async def step(self) -> None:
        """One cycle: plant, polls through the real servers, rules and their writes."""
        self._issue_forecasts()
        await self._cell.step(self.cycle)
        self.clock.advance(self.cycle)
        await self._poll_all()
        # The planner first, awaited: the engine follows a plan made from this cycle's polls, and
        # a solve takes the time it takes in lock-step (the same seed, the same day).
        if self.planner is not None:
            await self.planner.replan_if_due(self.clock.wall_ms())
        # The baseline runs no engine at all: no heartbeat, so the PLCs stay on local control.
        if self.engine is not None and self.rules_enabled:
            await self.engine.cycle()
        self.cycles += 1

    def _issue_forecasts(self) -> None:
        """The scenario's forecasts whose issue time has come, handed to the scheduler as a
        weather service's message on `{base}/forecast/pv` would reach it (a run without a
        scheduler drops them: nothing else reads a forecast)."""
        start_ms = self.clock.wall_ms() - round(self.plant.time_s * 1000)
        while self.forecasts and self.forecasts[0].issued_s <= self.plant.time_s + 1e-6:
            forecast = self.forecasts.popleft()
            payload = orjson.dumps(forecast.payload(start_ms))
            accepted = self.offer_pv_forecast(payload, forecast.source)
            self.forecasts_offered.append((forecast.issued_s, accepted))

    async def advance(
        self,
        seconds: float,
        on_cycle: Callable[[CoSimulation], Awaitable[None] | None] | None = None,
    ) -> None:
        """Run as many cycles as fit in `seconds` of simulated time."""
        for _ in range(round(seconds / self.cycle)):
            await self.step()
            if on_cycle is not None:
                result = on_cycle(self)
                if result is not None:
                    await result

    def offer_pv_forecast(self, payload: bytes, source: str = "cosim") -> bool:
        """Hand the scheduler a PV cloud forecast (the JSON of `{base}/forecast/pv`) through the
        same validation as the topic; False (and an `events/forecast` saying why) when refused
        or when no scheduler runs."""
        if self.planner is None:
            return False
        return self.planner.offer_pv_forecast(payload, source)

    def value(self, key: str) -> Any:
        """The latest value the controller holds for `device.tag` (None if bad or unknown)."""
        sample: Sample | None = self.table.get(key)
        return None if sample is None else sample.value

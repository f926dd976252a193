"""Builds the daemon from a Config and runs it: drivers, TagTable, publisher, health, reload.

Everything long-lived runs in one `asyncio.TaskGroup`. Each group of devices that shares a
connection runs under its own supervisor, so a driver bug restarts that group only; a device
fault never reaches here at all (drivers turn faults into samples and status).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from controller import __version__
from controller.actuation import Actuator, write_limits
from controller.alarms import AlarmBoard
from controller.clock import SYSTEM_CLOCK, Clock
from controller.config import Config, ConfigError, LoadedConfig, load_config
from controller.configtypes import WriteLimits
from controller.device_alarms import DeviceAlarms
from controller.gcpolicy import collect_periodically, tune_for_daemon
from controller.logs import set_log_level
from controller.model import DeviceEvent, DeviceStatus, LinkState, Sample
from controller.mqtt import topics
from controller.mqtt.commands import CommandHandler
from controller.mqtt.publisher import MqttPublisher
from controller.rules.engine import RuleEngine
from controller.rules.kinds import build_rules
from controller.rules.memory import RULE_MEMORY_DIR, RuleMemory
from controller.rules.rule import Rule
from controller.rules.timing import ControlTiming
from controller.scheduler.board import PlanBoard
from controller.statedir import StateDirLock
from controller.systemd import Notifier, watchdog_loop
from controller.tagtable import TagTable
from drivers.base import Driver, DriverContext
from drivers.registry import build_drivers, share_key

if TYPE_CHECKING:
    from controller.scheduler.planner import Planner
    from controller.sparkplug.edge_node import EdgeNode

log = structlog.get_logger(__name__)

# How long a stop may take before the daemon gives up waiting for drivers (SIGTERM -> exit
# within 5 s, publisher flush included).
DRIVER_STOP_TIMEOUT = 2.0
RESTART_BACKOFF_MAX = 60.0
STOP_RECANCEL_PERIOD = 0.1
# The watchdog is pinged only while the loop lag stays under this.
WATCHDOG_MAX_LAG = 2.0
# How often the loop's lag is probed for health: a stall of this long or longer is always seen
# (shorter ones when they overlap a probe); one wake-up a second keeps an idle daemon quiet.
LAG_PROBE_PERIOD = 1.0


@dataclass
class _DeviceGroup:
    """Devices that share one connection, and the task that supervises their drivers."""

    key: str
    devices: tuple[Any, ...]
    drivers: list[Driver] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    driver_tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(frozen=True)
class _Prepared:
    """What a reload builds from a valid file before it changes anything."""

    limits: dict[str, WriteLimits]
    rules: list[Rule]


@dataclass
class _Counters:
    polls: int = 0
    samples: int = 0
    changes: int = 0
    driver_restarts: int = 0


class Runtime:
    """One running edgecell daemon."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        notifier: Notifier | None = None,
    ) -> None:
        self.loaded = loaded
        self.clock = clock
        self.notifier = notifier or Notifier.from_environment()
        self.table = TagTable()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._groups: dict[str, _DeviceGroup] = {}
        self._status: dict[str, DeviceStatus] = {}
        self._published_status: dict[str, tuple[LinkState, str]] = {}
        self._counters = _Counters()
        self._publisher: MqttPublisher | None = None
        self._edge_node: EdgeNode | None = None
        self._engine: RuleEngine | None = None
        self._actuator: Actuator | None = None
        self._alarms: AlarmBoard | None = None
        self._device_alarms: DeviceAlarms | None = None
        # The scheduler's plan in force, which battery_schedule follows; one board for the
        # daemon's life (a reload replaces the planner, the rules keep reading here).
        self._plans = PlanBoard()
        self._planner: Planner | None = None
        self._planner_task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._started_ms = clock.wall_ms()
        self._lag_max = 0.0
        # The daemon's identity on MQTT and on disk, fixed for its life (a reload that changes
        # them is applied otherwise and says they need a restart).
        self._identity = loaded.config

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def state_dir(self) -> Path:
        return self._identity.gateway.state_dir

    @property
    def base_topic(self) -> str:
        return self._identity.base_topic

    # --- control from outside (signals, commands, tests) -------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    # --- the main body -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `request_stop()`; then stop drivers, publish offline, flush, return.

        Raises `StateDirLockedError` when another process holds the state directory.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Before any device or broker is touched: a second daemon on this directory stops here.
        with StateDirLock(self.state_dir) as lock:
            log.info("state_dir_locked", state_dir=str(self.state_dir), lock=str(lock.path))
            await self._run()

    async def _run(self) -> None:
        config = self.config
        tune_for_daemon()
        log.info(
            "starting",
            version=__version__,
            config=str(self.loaded.path),
            config_hash=self.loaded.digest,
            devices=len(config.devices),
        )
        birth = topics.birth(
            version=__version__, config_hash=self.loaded.digest, started=self._started_ms
        )
        async with MqttPublisher(
            config.mqtt,
            base_topic=self.base_topic,
            client_id=config.mqtt.resolve_client_id(self._identity.gateway.id),
            state_dir=self.state_dir,
            clock=self.clock,
            birth=birth,
        ) as publisher, contextlib.AsyncExitStack() as sparkplug:
            self._publisher = publisher
            engine = self._build_closed_loop(publisher)
            if config.sparkplug.enabled:
                # Left before the publisher: its NDEATH goes out while the JSON session lives.
                self._edge_node = await sparkplug.enter_async_context(self._build_edge_node())
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._start_groups(config.devices)
                rules_task = tg.create_task(engine.run(), name="rules")
                background = [
                    tg.create_task(self._health_loop(), name="health"),
                    tg.create_task(self._lag_monitor(), name="loop-lag"),
                    tg.create_task(collect_periodically(), name="gc"),
                    # systemd's watchdog runs in real time, whatever clock the controller follows.
                    tg.create_task(
                        watchdog_loop(self.notifier, SYSTEM_CLOCK, WATCHDOG_MAX_LAG),
                        name="watchdog",
                    ),
                ]
                await self._start_planner(config)
                self.notifier.ready()
                self.notifier.status(self._status_line())
                log.info("running", base_topic=self.base_topic)
                await self._serve_until_stopped()
                self.notifier.stopping()
                log.info("stopping")
                # Rules first: the heartbeat stops and the PLCs' own watchdogs take over; no
                # fallback values are written on a clean stop (docs/rules.md).
                rules_task.cancel()
                await asyncio.wait({rules_task}, timeout=DRIVER_STOP_TIMEOUT)
                await self._stop_groups(list(self._groups))
                for task in background:
                    task.cancel()
                await self._stop_planner("stopping")
            self._tg = None
            self._edge_node = None
        self._publisher = None
        log.info("stopped")

    def _build_closed_loop(self, publisher: MqttPublisher) -> RuleEngine:
        """The actuator (the only writer), the rule engine and the operator commands. The engine
        always runs: it also writes the heartbeat and expires manual overrides."""
        config = self.config
        self._actuator = Actuator(
            write_limits(config.devices),
            config.actuation,
            writers=self.driver,
            table=self.table,
            clock=self.clock,
            events=publisher,
            base_topic=self.base_topic,
        )
        self._alarms = AlarmBoard(publisher, base_topic=self.base_topic, clock=self.clock)
        self._device_alarms = DeviceAlarms(
            self._alarms,
            publisher,
            base_topic=self.base_topic,
            clock=self.clock,
            drivers=self._driver_or_none,
        )
        self._engine = RuleEngine(
            build_rules(
                config.rules,
                ControlTiming.of(config.actuation, config.devices),
                self._plans,
                config.tariff,
            ),
            self.table,
            self._actuator,
            self.clock,
            period=config.actuation.cycle,
            events=publisher,
            base_topic=self.base_topic,
            alarms=self._alarms,
            memory=RuleMemory(self.state_dir / RULE_MEMORY_DIR),
        )
        if config.scheduler is not None and config.scheduler.pv is not None:
            # Before any await too: subscribed with the commands when it connects.
            publisher.add_input(topics.pv_forecast(self.base_topic), self._on_pv_forecast)
        # Before any await: the publisher subscribes to cmd/# when it connects.
        publisher.subscribe_commands(
            CommandHandler(
                engine=self._engine,
                actuator=self._actuator,
                responder=publisher,
                base_topic=self.base_topic,
                on_reload=self.reload,
                on_rebirth=self._rebirth,
                alarms=self._alarms,
                device_alarms=self._device_alarms,
            )
        )
        return self._engine

    # --- the scheduler ---------------------------------------------------------------------------

    async def _start_planner(self, config: Config, *, subscribe: bool = False) -> None:
        """The scheduler of `config`, when it has one: its planner's loop in the daemon's task
        group; `subscribe`: its forecast topic subscribed now (a reload: at the start, the
        publisher subscribes it when it connects). The solver's process starts at the first
        plan."""
        if config.scheduler is None or config.tariff is None or self._tg is None:
            return
        # Imported here: a gateway without a scheduler never loads it.
        from controller.scheduler.planner import Planner  # noqa: PLC0415

        planner = Planner(
            config.scheduler,
            config.tariff,
            board=self._plans,
            table=self.table,
            clock=self.clock,
            events=self._publisher,
            base_topic=self.base_topic,
            state_dir=self.state_dir,
        )
        self._planner = planner
        self._planner_task = self._tg.create_task(
            planner.run(config.actuation.cycle), name="planner"
        )
        if config.scheduler.pv is not None and self._publisher is not None and subscribe:
            await self._publisher.subscribe_input(
                topics.pv_forecast(self.base_topic), self._on_pv_forecast
            )
        log.info(
            "scheduler_started", step_s=config.scheduler.step, horizon_s=config.scheduler.horizon
        )

    async def _stop_planner(self, why: str) -> None:
        """End the planner's loop and its solver's process; the plan is withdrawn."""
        task, planner = self._planner_task, self._planner
        self._planner_task = self._planner = None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=DRIVER_STOP_TIMEOUT)
        if planner is not None:
            await planner.close()
            self._plans.withdraw(why)

    def _on_pv_forecast(self, payload: bytes) -> None:
        planner = self._planner
        if planner is not None:
            planner.offer_pv_forecast(payload, f"mqtt:{topics.pv_forecast(self.base_topic)}")

    @property
    def planner(self) -> Planner | None:
        """The running scheduler's planner (None without a scheduler), for tests."""
        return self._planner

    def _build_edge_node(self) -> EdgeNode:
        """The Sparkplug B edge node (docs/sparkplug.md): births from the config and the tag
        table, DCMD writes through the same actuator as `cmd/write`."""
        # Imported here: a gateway without Sparkplug never loads protobuf (7 MB of RSS).
        from controller.sparkplug.edge_node import EdgeNode  # noqa: PLC0415

        assert self._actuator is not None
        config = self.config
        return EdgeNode(
            config.sparkplug,
            config.mqtt,
            gateway_id=self._identity.gateway.id,
            devices=config.devices,
            state_dir=self.state_dir,
            clock=self.clock,
            node_properties=self._node_properties(),
            current=self.table.device_samples,
            writer=self._actuator,
        )

    def _node_properties(self) -> dict[str, str]:
        return {
            "Properties/Software": f"edgecell {__version__}",
            "Properties/JSON Base Topic": self.base_topic,
        }

    async def _rebirth(self) -> None:
        if self._publisher is None:
            return
        if self._engine is not None:
            self._engine.republish()
        if self._alarms is not None:
            self._alarms.republish(self.clock.wall_ms())
        for status in self._status.values():
            self._publisher.publish_device_status(status)
        self._publisher.rebirth()
        log.info("rebirth")

    async def _serve_until_stopped(self) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                reload = asyncio.ensure_future(self._reload.wait())
                await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self.reload()
                reload.cancel()
        finally:
            stop.cancel()

    # --- devices -------------------------------------------------------------------------------

    def _driver_context(self) -> DriverContext:
        return DriverContext(
            clock=self.clock,
            on_samples=self._on_samples,
            on_status=self._on_status,
            state_dir=self.state_dir,
            on_event=self._on_device_event,
        )

    def _on_device_event(self, event: DeviceEvent, publish: bool) -> None:
        if self._device_alarms is not None:
            self._device_alarms.on_event(event, publish)

    def _start_groups(self, devices: Sequence[Any]) -> None:
        assert self._tg is not None
        grouped: dict[str, list[Any]] = {}
        for device in devices:
            grouped.setdefault(share_key(device), []).append(device)
        for key, group_devices in grouped.items():
            group = _DeviceGroup(key=key, devices=tuple(group_devices))
            group.drivers = build_drivers(group_devices, self._driver_context())
            group.task = self._tg.create_task(self._supervise(group), name=f"devices:{key}")
            self._groups[key] = group

    async def _stop_groups(self, keys: Sequence[str]) -> None:
        groups = [self._groups.pop(key) for key in keys]
        tasks = [group.task for group in groups if group.task is not None]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        # A cancellation can be lost: on Python 3.11 `asyncio.wait_for` (used inside the protocol
        # libraries) swallows it when its inner future completes in the same loop iteration,
        # which under load happens. So pending tasks are cancelled again until they end.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRIVER_STOP_TIMEOUT
        pending = set(tasks)
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=STOP_RECANCEL_PERIOD)
            if pending and loop.time() >= deadline:
                for task in pending:
                    log.warning("driver_stop_timeout", task=task.get_name())
                return
            # Straight to the drivers' own tasks: a TaskGroup that is already cancelling its
            # children does not pass a second cancellation on to them.
            for group in groups:
                if group.task in pending:
                    for driver_task in group.driver_tasks:
                        driver_task.cancel()

    async def _supervise(self, group: _DeviceGroup) -> None:
        """Run a group's drivers; a driver that crashes (a bug, not a device fault) is logged
        and restarted with backoff, and never takes down the other devices."""
        backoff = 1.0
        while True:
            try:
                # In a task of its own: on Python 3.11 a TaskGroup whose child fails leaves the
                # *enclosing* task's cancel count raised, which would confuse every later
                # timeout and TaskGroup of this supervisor.
                await asyncio.create_task(self._run_drivers(group), name=f"drivers:{group.key}")
                return
            except Exception as exc:
                self._counters.driver_restarts += 1
                log.exception("driver_crashed", group=group.key, error=repr(exc), retry_in=backoff)
                for driver in group.drivers:
                    status = driver.status()
                    status.state = LinkState.FAILED
                    status.last_error = f"driver crashed: {exc!r}"
                    self._on_status(status)
                    with contextlib.suppress(Exception):
                        await driver.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
                group.drivers = build_drivers(group.devices, self._driver_context())

    @staticmethod
    async def _run_drivers(group: _DeviceGroup) -> None:
        async with asyncio.TaskGroup() as tg:
            group.driver_tasks = [
                tg.create_task(driver.run(), name=f"driver:{driver.name}")
                for driver in group.drivers
            ]

    def driver(self, device: str) -> Driver:
        """The driver of a device, for writes (the actuator) and tests."""
        for group in self._groups.values():
            for driver in group.drivers:
                if driver.name == device:
                    return driver
        raise KeyError(device)

    def _driver_or_none(self, device: str) -> Driver | None:
        try:
            return self.driver(device)
        except KeyError:
            return None

    def _on_samples(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        self._counters.polls += 1
        self._counters.samples += len(samples)
        changed = self.table.update(samples)
        self._counters.changes += len(changed)
        if self._edge_node is not None and changed:
            # By exception, whatever mqtt.publish says: Sparkplug DATA carries changes only.
            self._edge_node.publish_samples(changed[0].device, changed)
        if self._publisher is None:
            return
        if self.config.mqtt.publish == "every_poll":
            self._publisher.publish_samples(samples[0].device, samples)
        elif changed:
            self._publisher.publish_samples(changed[0].device, changed)

    def _on_status(self, status: DeviceStatus) -> None:
        self._status[status.device] = status
        if self._edge_node is not None:
            self._edge_node.device_status(status)
        signature = (status.state, status.last_error)
        if self._published_status.get(status.device) != signature:
            self._published_status[status.device] = signature
            log.info(
                "device_state",
                device=status.device,
                state=status.state.value,
                error=status.last_error or None,
            )
            self._publish_status(status)

    def _publish_status(self, status: DeviceStatus) -> None:
        if self._publisher is not None:
            self._publisher.publish_device_status(status)

    # --- reload -------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Load the config file again. An invalid file is refused and the running config stays;
        a valid one restarts only the device groups whose config changed. Whatever loading the
        file raises is a refused reload, never the end of the daemon."""
        self.notifier.reloading()
        try:
            path = self.loaded.path
            outcome = await self._load_and_prepare(path, self._plans)
            if isinstance(outcome, list):
                # The reason is the file's problems; a traceback of the loader says nothing more.
                log.warning("reload_refused", config=str(path), problems=outcome)
                self._publish_config_event(ok=False, problems=outcome)
                return False
            loaded, prepared = outcome
            try:
                restart_required = await self._apply(loaded, prepared)
            except Exception as exc:
                # Half applied: the daemon goes on with what was applied and says so.
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("reload_failed", config=str(path), error=error)  # noqa: TRY400
                self._publish_config_event(
                    ok=False, problems=[f"{path}:0: (reload): applying failed part way: {error}"]
                )
                return False
            self._publish_config_event(ok=True, problems=[], restart_required=restart_required)
            return True
        finally:
            self.notifier.ready()

    @staticmethod
    async def _load_and_prepare(
        path: Path, plans: PlanBoard
    ) -> tuple[LoadedConfig, _Prepared] | list[str]:
        """The file loaded, and what a reload builds from it before anything changes; or the
        problems that refuse it. Whatever loading or building raises is a problem, never the
        end of the daemon."""
        try:
            loaded = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            return exc.problems
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:400]
            return [f"{path}:0: (file): cannot be loaded: {reason}"]
        try:
            limits = write_limits(loaded.config.devices)
            new = loaded.config
            timing = ControlTiming.of(new.actuation, new.devices)
            rules = build_rules(new.rules, timing, plans, new.tariff)
        except Exception as exc:  # a bug in building rules must not stop the daemon either
            return [f"{path}:0: (rules): cannot be built: {type(exc).__name__}: {exc}"[:500]]
        return loaded, _Prepared(limits, rules)

    async def _apply(self, loaded: LoadedConfig, prepared: _Prepared) -> list[str]:
        """Apply a valid config; returns the settings that only a restart applies."""
        old, new = self.config, loaded.config
        restart_required = identity_changes(self._identity, new)
        if restart_required:
            log.warning(
                "reload_partial",
                restart_required=restart_required,
                reason="the daemon's identity changes at the next restart",
            )
        if new.gateway.log_level != old.gateway.log_level:
            set_log_level(new.gateway.log_level)
        if self._publisher is not None and new.mqtt != old.mqtt:
            # The default client id follows gateway.id only at a restart, like the base topic.
            client_id = new.mqtt.resolve_client_id(self._identity.gateway.id)
            await self._publisher.reconfigure(new.mqtt, client_id=client_id)
        new_groups: dict[str, list[Any]] = {}
        for device in new.devices:
            new_groups.setdefault(share_key(device), []).append(device)
        stop = [
            key
            for key, group in self._groups.items()
            if tuple(new_groups.get(key, ())) != group.devices
        ]
        start = [
            device
            for key, devices in new_groups.items()
            if key in stop or key not in self._groups
            for device in devices
        ]
        removed = {d.name for d in old.devices} - {d.name for d in new.devices}
        await self._stop_groups(stop)
        if self._edge_node is not None:
            await self._edge_node.reconfigure_broker(new.mqtt)
            if new.devices != old.devices:
                self._edge_node.reconfigure(new.devices, self._node_properties())
        if self._actuator is not None and self._engine is not None:
            self._actuator.reconfigure(prepared.limits, new.actuation)
            self._engine.replace_rules(prepared.rules)
            self._engine.period = new.actuation.cycle
        if (new.scheduler, new.tariff) != (old.scheduler, old.tariff):
            # A new scheduler plans from scratch: the old plan was made for other settings.
            await self._stop_planner("the scheduler was reconfigured: no plan until the next")
            await self._start_planner(new, subscribe=True)
        for name in removed:
            self.table.forget_device(name)
            self._status.pop(name, None)
            self._published_status.pop(name, None)
        self.loaded = loaded
        self._start_groups(start)
        log.info(
            "reloaded",
            config_hash=loaded.digest,
            restarted_groups=len(stop),
            started_devices=len(start),
            removed_devices=sorted(removed),
        )
        return restart_required

    def _publish_config_event(
        self, *, ok: bool, problems: list[str], restart_required: list[str] | None = None
    ) -> None:
        if self._publisher is not None:
            self._publisher.publish_event(
                f"{self.base_topic}/events/config",
                topics.encode(
                    {
                        "ts": self.clock.wall_ms(),
                        "ok": ok,
                        "config_hash": self.loaded.digest,
                        "problems": problems,
                        "restart_required": restart_required or [],
                    }
                ),
            )

    # --- health -------------------------------------------------------------------------------

    async def _lag_monitor(self, period: float = LAG_PROBE_PERIOD) -> None:
        """Measure how late the loop wakes us: the best single sign of a healthy daemon."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + period
            await asyncio.sleep(period)
            self._lag_max = max(self._lag_max, loop.time() - expected)

    async def _health_loop(self) -> None:
        last = self.clock.monotonic()
        last_counts = _Counters()
        next_at = last + self.config.mqtt.health_interval
        while True:
            await self.clock.sleep_until(next_at)
            now = self.clock.monotonic()
            interval = self.config.mqtt.health_interval  # a reload may change it
            next_at += interval
            if next_at <= now:  # fell behind (suspended laptop, stalled loop): do not catch up
                next_at = now + interval
            elapsed = max(now - last, 1e-9)
            counts = self._counters
            payload = {
                "ts": self.clock.wall_ms(),
                "uptime_s": round((self.clock.wall_ms() - self._started_ms) / 1000, 1),
                "loop_lag_ms": round(self._lag_max * 1000, 1),
                "polls_per_s": round((counts.polls - last_counts.polls) / elapsed, 2),
                "samples_per_s": round((counts.samples - last_counts.samples) / elapsed, 1),
                "changes_per_s": round((counts.changes - last_counts.changes) / elapsed, 1),
                "devices": self._device_counts(),
                "driver_restarts": counts.driver_restarts,
                "rss_bytes": _rss_bytes(),
                "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
            if self._publisher is not None:
                payload["mqtt"] = self._publisher.stats().as_dict()
                if self._engine is not None:
                    payload["rules"] = self._engine.health()
                if self._edge_node is not None:
                    payload["sparkplug"] = self._edge_node.health()
                self._publisher.publish_health(payload)
                for status in self._status.values():
                    self._publish_status(status)
            self.notifier.status(self._status_line())
            last, self._lag_max = now, 0.0
            last_counts = _Counters(**vars(counts))

    def _device_counts(self) -> dict[str, int]:
        statuses = list(self._status.values())
        states = [s.state for s in statuses]
        return {
            "total": len(self.config.devices),
            "connected": states.count(LinkState.CONNECTED),
            "failed": states.count(LinkState.FAILED) + states.count(LinkState.RECONNECTING),
            # Summed over the devices' own counters (a device restarted by a reload starts
            # from 0 again); the per-device figures are on {base}/devices/{device}/status.
            "reconnects": sum(s.reconnects for s in statuses),
            "skipped_cycles": sum(s.skipped_cycles for s in statuses),
        }

    def _status_line(self) -> str:
        counts = self._device_counts()
        if self._publisher is None:
            return f"{counts['connected']}/{counts['total']} devices up"
        stats = self._publisher.stats()
        return (
            f"{counts['connected']}/{counts['total']} devices up, "
            f"broker {'connected' if stats.connected else 'away'}, "
            f"buffer {stats.buffer_depth}"
        )


def identity_changes(started: Config, new: Config) -> list[str]:
    """The settings of `new` that a reload cannot apply, because they are the identity of the
    daemon started with `started`: gateway.id (the default base topic and client id follow it),
    the base topic, the state directory (buffer file, certificates)."""
    changes = []
    if new.gateway.id != started.gateway.id:
        changes.append("gateway.id")
    if new.base_topic != started.base_topic and (
        new.mqtt.base_topic is not None or new.gateway.id == started.gateway.id
    ):
        changes.append("mqtt.base_topic")
    if new.gateway.state_dir != started.gateway.state_dir:
        changes.append("gateway.state_dir")
    if new.sparkplug != started.sparkplug:
        changes.append("sparkplug")
    return changes


def _rss_bytes() -> int:
    """Resident set size now (Linux), for the health topic and the leak checks."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0

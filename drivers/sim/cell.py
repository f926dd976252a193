"""The simulated cell: a plant and all its protocol faces, run in real time times a speed factor
or stepped in lock-step by a co-simulation driver.

    async with SimCell(load_scenario("normal-day"), speed=60) as cell:
        cell.modbus_endpoints["site-meter"]   # ("127.0.0.1", port, unit_id)

    async with SimCell(scenario, speed=None) as cell:   # lock-step: time moves only in step()
        await cell.step(5.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import structlog

from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.plant import GroundTruth, Plant, write_ground_truth
from drivers.sim.scenario import ModbusDeviceSpec, OpcUaDeviceSpec, Scenario
from drivers.sim.sunspec_server import SunSpecUnit

log = structlog.get_logger(__name__)

# Physics steps stay this short whatever the speed factor, so a fast run is the same plant.
MAX_STEP_S = 5.0


class SimCellError(Exception):
    """The cell cannot run as asked."""


class _Face(Protocol):
    """A protocol server in front of the plant."""

    async def refresh(self) -> None: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SimCell:
    """`speed` simulated seconds per real second; `speed=None` for lock-step (`await step(dt)`).

    Ports: `ports` maps device names to ports (0: any free port) or is one port for all (0);
    else `base_port` serves the devices on consecutive ports; else each device's scenario port.
    `serial` maps Modbus device names to serial devices served with RTU framing instead of TCP.
    `opcua=False` leaves the OPC UA faces out (a Modbus-only run starts faster).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float | None = 1.0,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | int | None = None,
        base_port: int | None = None,
        serial: Mapping[str, str] | None = None,
        seed: int | None = None,
        tick: float = 0.5,
        opcua: bool = True,
    ) -> None:
        if speed is not None and speed <= 0:
            raise SimCellError(f"speed is simulated seconds per second, above 0; not {speed}")
        self.scenario = scenario
        self.speed = speed
        self.host = host
        self._ports = ports
        self._base_port = base_port
        self._serial = dict(serial or {})
        self.tick = tick
        self._serve_opcua = opcua
        self.plant = Plant(scenario, seed=seed)
        self.modbus_endpoints: dict[str, tuple[str, int, int]] = {}
        self.serial_endpoints: dict[str, tuple[str, int]] = {}
        self.opcua_endpoints: dict[str, str] = {}
        self._faces: list[_Face] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._runner: asyncio.Task[None] | None = None
        unknown = set(self._serial) - {d.name for d in scenario.modbus_devices}
        if unknown:
            raise SimCellError(
                f"serial= names devices the scenario does not have: {sorted(unknown)}"
            )

    def _port_for(self, index: int, name: str, scenario_port: int) -> int:
        if isinstance(self._ports, int):
            return self._ports
        if self._ports is not None and name in self._ports:
            return self._ports[name]
        if self._base_port is not None:
            return self._base_port + index
        return scenario_port

    async def __aenter__(self) -> SimCell:
        if self._stack is not None:
            raise SimCellError("a SimCell is not reentrant")
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        self._stack = stack
        try:
            await self._start_faces(stack)
            if self.speed is not None:
                self._runner = asyncio.create_task(self._run_real_time(), name="sim-cell")
        except BaseException:
            self._stack = None
            await stack.aclose()
            raise
        log.info(
            "sim_cell_started",
            scenario=self.scenario.name,
            seed=self.plant.seed,
            speed=self.speed if self.speed is not None else "lock-step",
        )
        return self

    async def _start_faces(self, stack: contextlib.AsyncExitStack) -> None:
        devices: list[ModbusDeviceSpec] = list(self.scenario.modbus_devices)
        for index, device in enumerate(devices):
            if device.name in self._serial:
                server = SimModbusServer(
                    self.plant, [device], host=self.host, serial_port=self._serial[device.name]
                )
                await stack.enter_async_context(server)
                self.serial_endpoints[device.name] = (self._serial[device.name], device.unit_id)
            else:
                port = self._port_for(index, device.name, device.port)
                server = SimModbusServer(self.plant, [device], host=self.host, port=port)
                await stack.enter_async_context(server)
                self.modbus_endpoints[device.name] = server.endpoint(device.name)
            self._faces.append(server)
        opcua: list[OpcUaDeviceSpec] = list(self.scenario.opcua_devices)
        if opcua and self._serve_opcua:
            # Loaded only when a scenario serves OPC UA: asyncua is large for a small box.
            from drivers.sim.opcua_server import SimOpcUaServer, SimOpcUaSpec  # noqa: PLC0415

            for offset, spec in enumerate(opcua):
                port = self._port_for(len(devices) + offset, spec.name, spec.port)
                served = SimOpcUaSpec.model_validate(
                    spec.model_dump(include={"namespace", "objects", "alarms"})
                )
                face: Any = SimOpcUaServer(self.plant, served, host=self.host, port=port)
                await stack.enter_async_context(face)
                self.opcua_endpoints[spec.name] = str(face.endpoint)
                self._faces.append(face)
        first = len(devices) + len(opcua)
        for offset, sunspec in enumerate(self.scenario.sunspec_devices):
            # SunSpec devices are Modbus TCP devices too: their endpoints sit with the others.
            port = self._port_for(first + offset, sunspec.name, sunspec.port)
            server = SimModbusServer(
                self.plant, [], units=[SunSpecUnit(self.plant, sunspec)], host=self.host, port=port
            )
            await stack.enter_async_context(server)
            self.modbus_endpoints[sunspec.name] = server.endpoint(sunspec.name)
            self._faces.append(server)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves, not just the runner
        stack, self._stack = self._stack, None
        self._faces.clear()
        if stack is not None:
            await stack.aclose()
        log.info("sim_cell_stopped", scenario=self.scenario.name, simulated_s=self.plant.time_s)

    async def stop_device(self, name: str) -> None:
        """Stop serving one Modbus device (a meter that dies): its port stops answering, the
        plant and the other devices go on. For fault tests and the co-simulation."""
        for face in self._faces:
            if isinstance(face, SimModbusServer) and any(u.spec.name == name for u in face.units):
                await face.__aexit__(None, None, None)
                self._faces.remove(face)
                return
        raise SimCellError(f"no Modbus device {name!r} in this cell")

    # --- clocks -----------------------------------------------------------------------------

    async def step(self, dt: float) -> None:
        """Lock-step: advance the plant by `dt` simulated seconds, then refresh every server."""
        if self.speed is not None:
            raise SimCellError(
                "step() is for lock-step cells (speed=None); this one runs in real time"
            )
        self._advance(dt)
        await self.refresh()

    def _advance(self, dt: float) -> None:
        remaining = dt
        while remaining > 1e-9:
            h = min(MAX_STEP_S, remaining)
            self.plant.step(h)
            remaining -= h

    async def refresh(self) -> None:
        """Push the plant's present values to every protocol face."""
        for face in self._faces:
            await face.refresh()

    async def _run_real_time(self) -> None:
        assert self.speed is not None
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            try:
                self._advance((now - last) * self.speed)
                await self.refresh()
            except Exception:
                # The owner sees the exception when it leaves the cell; say so now as well,
                # since the servers keep answering with frozen values until then.
                log.exception(
                    "sim_cell_failed", scenario=self.scenario.name, at_s=self.plant.time_s
                )
                raise
            last = now

    # --- ground truth -----------------------------------------------------------------------

    def ground_truth(self) -> GroundTruth:
        return self.plant.ground_truth()

    def write_ground_truth(self, path: Path) -> None:
        write_ground_truth(self.plant.ground_truth(), path)

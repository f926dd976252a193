"""A driver with a bug (an unexpected exception, not a device fault) is logged, its devices are
marked failed, and it is restarted with backoff, without taking anything else down."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from controller.config import LoadedConfig, parse_config
from controller.model import DeviceStatus, LinkState, Value
from controller.runtime import Runtime, _DeviceGroup
from drivers.base import Driver

CONFIG = """
gateway: {id: supervise}
devices:
  - name: meter
    driver: modbus
    link: {transport: tcp, host: 127.0.0.1, port: 1}
    tags: [{name: power, address: 0, type: float32}]
"""


class BuggyDriver(Driver):
    """A driver whose first run() fails with a programming error; later runs work."""

    name = "meter"

    def __init__(self) -> None:
        self.runs = 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise KeyError("a bug")
        self.running.set()
        await asyncio.Event().wait()

    async def poll_once(self) -> None:
        return None

    async def write(self, tag: str, value: Value) -> None:
        return None

    def status(self) -> DeviceStatus:
        return DeviceStatus(device=self.name, state=LinkState.CONNECTED)


async def test_a_crashing_driver_is_restarted_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(CONFIG, "c.yaml")
    runtime = Runtime(LoadedConfig(config, tmp_path / "c.yaml", "x"))
    driver = BuggyDriver()
    monkeypatch.setattr("controller.runtime.build_drivers", lambda devices, ctx: [driver])
    group = _DeviceGroup(key="meter", devices=tuple(config.devices), drivers=[driver])
    supervisor = asyncio.create_task(runtime._supervise(group))
    async with asyncio.timeout(5):  # the first restart comes after 1 s of backoff
        await driver.running.wait()
    assert driver.runs == 2
    assert runtime._counters.driver_restarts == 1
    assert runtime._published_status["meter"][0] is LinkState.FAILED
    assert "driver crashed" in runtime._published_status["meter"][1]
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor
    # The crash left no pending cancellation behind in the supervising task's caller.
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


class StubbornDriver(BuggyDriver):
    """A driver that loses the first cancellation, as a library's `wait_for` can on 3.11."""

    async def run(self) -> None:
        self.running.set()
        with contextlib.suppress(asyncio.CancelledError):  # the lost cancellation
            await asyncio.Event().wait()
        await asyncio.Event().wait()


async def test_stop_cancels_again_a_driver_that_lost_its_cancellation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(CONFIG, "c.yaml")
    runtime = Runtime(LoadedConfig(config, tmp_path / "c.yaml", "x"))
    driver = StubbornDriver()
    group = _DeviceGroup(key="meter", devices=tuple(config.devices), drivers=[driver])
    group.task = asyncio.create_task(runtime._supervise(group))
    runtime._groups["meter"] = group
    await driver.running.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runtime._stop_groups(["meter"])
    assert group.task.done()
    assert loop.time() - started < 1.0

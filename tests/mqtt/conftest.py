"""Fixtures of the MQTT tests: publishers pointed at the test's broker, and samples."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.clock import SYSTEM_CLOCK
from controller.model import Quality, Sample
from controller.mqtt import topics
from controller.mqtt.config import MqttConfig
from controller.mqtt.publisher import MqttPublisher
from tests.read_only import read_only_directory


def _config(broker: Any, **settings: Any) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "reconnect_min": "50ms",
            "reconnect_max": "500ms",
            **settings,
        }
    )


@pytest.fixture
def mqtt_config() -> Callable[..., MqttConfig]:
    """`mqtt_config(broker, **settings)`: the mqtt section for that broker, fast reconnects."""
    return _config


@pytest.fixture
def make_publisher(mqtt_names: Any, tmp_path: Path) -> Callable[..., MqttPublisher]:
    """`make_publisher(config, state_dir=...)`: the gateway `{names}/gw`, birth version 1.2.3."""

    def make(config: MqttConfig, state_dir: Path | None = None) -> MqttPublisher:
        return MqttPublisher(
            config,
            base_topic=mqtt_names.topic("gw"),
            client_id=mqtt_names.client_id("gw"),
            state_dir=state_dir or tmp_path / "state",
            clock=SYSTEM_CLOCK,
            birth=topics.birth(version="1.2.3", config_hash="cafe", started=1_700_000_000_000),
        )

    return make


def power(value: float, quality: Quality = Quality.GOOD, reason: str = "") -> Sample:
    now = SYSTEM_CLOCK.wall_ms()
    return Sample("press", "power_kw", value, quality, now, now, reason)


@pytest.fixture
def power_sample() -> Callable[..., Sample]:
    """`power_sample(value, quality=GOOD, reason="")`: a sample of press.power_kw, now."""
    return power


CHILD = Path(__file__).with_name("publisher_child.py")


class ChildGateway:
    """tests/mqtt/publisher_child.py in its own process (see its docstring for the protocol)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def read_line(self, within: float = 20.0) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        return line.decode().strip()

    async def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()

    async def kill(self) -> str:
        """SIGKILL; returns what it printed and was not read yet."""
        if self.process.returncode is None:
            self.process.kill()
        assert self.process.stdout is not None
        rest = await self.process.stdout.read()
        await self.process.wait()
        return rest.decode()


@pytest.fixture
async def spawn_gateway(mqtt_names: Any) -> AsyncIterator[Callable[..., Any]]:
    """`child = await spawn_gateway(broker, state_dir, durability)`; killed at the end."""
    children: list[ChildGateway] = []

    async def spawn(broker: Any, state_dir: Path, durability: str = "outage") -> ChildGateway:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), broker.host, str(broker.port), mqtt_names.topic("gw"),
            mqtt_names.client_id("gw"), str(state_dir), durability,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = ChildGateway(process)
        children.append(child)
        return child

    yield spawn
    for child in children:
        await child.kill()


@pytest.fixture
async def password_file(tmp_path: Path) -> Path:
    """A mosquitto password file with user `gateway`, password `s3cret`."""
    path = tmp_path / "passwd"
    process = await asyncio.create_subprocess_exec(
        "mosquitto_passwd", "-c", "-b", str(path), "gateway", "s3cret"
    )
    assert await process.wait() == 0
    return path


@pytest.fixture
def read_only_state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory that cannot be written (tests/read_only.py)."""
    with read_only_directory(tmp_path / "read-only-state") as path:
        yield path

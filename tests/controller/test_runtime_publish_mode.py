"""`mqtt.publish: every_poll`: every sample of every poll goes out on the data topic, changed
or not (the default, `changes`, is covered end to end in tests/drivers/modbus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.clock import SYSTEM_CLOCK
from controller.config import LoadedConfig, parse_config
from controller.model import Quality, Sample
from controller.mqtt import topics
from controller.mqtt.publisher import MqttPublisher
from controller.runtime import Runtime

CONFIG = """
gateway: {{id: {gateway}, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {port}, publish: every_poll}}
devices:
  - name: meter
    driver: modbus
    link: {{transport: tcp, host: 127.0.0.1, port: 1}}
    tags: [{{name: power, address: 0}}, {{name: energy, address: 1}}]
"""


async def test_every_poll_publishes_unchanged_samples_again(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any
) -> None:
    gateway = "every-poll"
    text = CONFIG.format(gateway=gateway, state=tmp_path / "state", port=mosquitto.port)
    config = parse_config(text, "c.yaml")
    runtime = Runtime(LoadedConfig(config, tmp_path / "c.yaml", "x"))
    data = await mqtt_collect(mosquitto, f"edgecell/{gateway}/data/meter")
    poll = [
        Sample("meter", "power", 12, Quality.GOOD, 1000, 1000),
        Sample("meter", "energy", 34, Quality.GOOD, 1000, 1000),
    ]
    async with MqttPublisher(
        config.mqtt,
        base_topic=config.base_topic,
        client_id=f"{gateway}-gateway",
        state_dir=tmp_path / "state",
        clock=SYSTEM_CLOCK,
        birth=topics.birth(version="test", config_hash="x", started=0),
    ) as publisher:
        await publisher.connected()
        runtime._publisher = publisher
        runtime._on_samples(poll)
        runtime._on_samples(poll)  # nothing changed
        await data.wait_count(2)
    assert [set(p["values"]) for p in data.payloads()] == [{"power", "energy"}] * 2

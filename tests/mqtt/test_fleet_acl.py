"""docs/fleet.md's per-gateway ACL for mosquitto, on a real mosquitto: with the user name equal
to the gateway id and two `pattern` lines, a gateway publishes everything it publishes (birth,
Will, data, answers) and gets its commands, and cannot publish into another gateway's topics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt

from controller.clock import SYSTEM_CLOCK
from controller.mqtt import topics
from controller.mqtt.config import MqttConfig
from controller.mqtt.publisher import MqttPublisher

# As in docs/fleet.md, "Per-gateway permissions (ACLs)", plus a consumer that reads everything.
ACL = """\
user consumer
topic read edgecell/#
topic write edgecell/+/cmd/#

pattern write edgecell/%u/#
pattern read  edgecell/%u/cmd/#
"""


async def passwords(path: Path, *users: str) -> None:
    for index, user in enumerate(users):
        create = ["-c"] if index == 0 else []
        process = await asyncio.create_subprocess_exec(
            "mosquitto_passwd", *create, "-b", str(path), user, f"{user}-secret"
        )
        assert await process.wait() == 0


async def test_a_gateway_under_the_fleet_acl_publishes_its_topics_and_nothing_else(
    mosquitto_factory, mqtt_collect, power_sample, tmp_path
):
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    await passwords(passwd, "cell-1", "cell-2", "consumer")
    acl.write_text(ACL, encoding="utf-8")
    broker = mosquitto_factory(
        global_options=[f"password_file {passwd}", f"acl_file {acl}"], allow_anonymous=False
    )
    secret = tmp_path / "cell-1-password"
    secret.write_text("cell-1-secret\n", encoding="utf-8")
    everything = await mqtt_collect(
        broker, "edgecell/#", username="consumer", password="consumer-secret"
    )
    config = MqttConfig.model_validate(
        {"host": broker.host, "port": broker.port, "username": "cell-1",
         "password_file": str(secret), "reconnect_min": "50ms", "reconnect_max": "500ms"}
    )
    publisher = MqttPublisher(
        config, base_topic="edgecell/cell-1", client_id="edgecell-cell-1",
        state_dir=tmp_path / "state", clock=SYSTEM_CLOCK,
        birth=topics.birth(version="1", config_hash="0", started=0),
    )
    commands: list[str] = []

    async def handler(topic: str, payload: bytes, properties: object) -> None:
        commands.append(topic)
        publisher.respond(None, b'{"ok": true}')

    publisher.subscribe_commands(handler)
    async with publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        publisher.publish_samples("press", [power_sample(1.0)])
        # Into another gateway's topics, with cell-1's account: the broker drops it.
        async with aiomqtt.Client(
            broker.host, broker.port, identifier="cell-1-stray", username="cell-1",
            password="cell-1-secret", timeout=5,
        ) as stray:
            await stray.publish("edgecell/cell-2/data/press", b'{"seq": 1}', qos=1, timeout=5)
            await stray.publish("edgecell/cell-2/cmd/reload", b"{}", qos=1, timeout=5)
        async with aiomqtt.Client(
            broker.host, broker.port, identifier="operator", username="consumer",
            password="consumer-secret", timeout=5,
        ) as operator:
            await operator.publish("edgecell/cell-1/cmd/reload", b"{}", qos=1, timeout=5)
        await everything.wait_for(lambda _: "edgecell/cell-1/cmd/response" in everything.topics())

    def stopped(_: object) -> bool:  # the clean stop's offline, published under the ACL
        status = [p for t, p in zip(everything.topics(), everything.payloads(), strict=True)
                  if t == "edgecell/cell-1/status"]
        return bool(status) and status[-1]["state"] == "offline"

    await everything.wait_for(stopped)
    seen = everything.topics()
    assert "edgecell/cell-1/status" in seen
    assert "edgecell/cell-1/data/press" in seen
    assert commands == ["edgecell/cell-1/cmd/reload"]
    assert not [t for t in seen if t.startswith("edgecell/cell-2/")]

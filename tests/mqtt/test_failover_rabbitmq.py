"""A real clustered broker: two RabbitMQ 3.10 nodes (Debian's rabbitmq-server, MQTT plugin,
MQTT 3.1.1 only) clustered on loopback, one cluster for this module (it boots in 15-40 s).

The gateway is on one node and the subscriber and operator on the other. Commands are answered
on `{base}/cmd/response` (3.1.1 has no response topic) across the nodes; then the gateway's node
is stopped while telemetry flows: it moves to the other node at once and the subscriber there
sees every seq. The node is left stopped (RabbitMQ 3.10's MQTT plugin takes 100 s to start
again on a node that was a member before), so the failover test runs last in this file.
bench/failover.py is the longer run, with both a stop and a crash (SIGKILL) of a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from closedloop import SteppedClock, float_tag, start_plant

from bench.rabbitmq_cluster import RabbitCluster, RabbitNode, installed
from controller.clock import SYSTEM_CLOCK
from controller.mqtt import topics
from controller.mqtt.commands import CommandHandler
from controller.mqtt.config import MqttConfig
from controller.mqtt.publisher import MqttPublisher
from controller.rules.engine import RuleEngine
from tests.faults.delivery import arrivals_by_device, assert_delivered_in_order


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    if not installed():
        pytest.fail("rabbitmq-server is not installed (scripts/setup installs it with apt-get)")
    with RabbitCluster(tmp_path_factory.mktemp("rabbitmq"), nodes=2) as started:
        yield started


def name(node: RabbitNode) -> str:
    return f"{node.host}:{node.port}"


def cluster_config(cluster: RabbitCluster) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "brokers": [{"host": n.host, "port": n.port} for n in cluster.nodes],
            "protocol": "3.1.1",
            "reconnect_min": "30s",  # moving to the other node must not wait a backoff out
            "reconnect_max": "60s",
        }
    )


class Operator:
    """Sends commands as a 3.1.1 client on a node and reads the answers on cmd/response."""

    def __init__(self, node: RabbitNode, base: str, names: Any, collect: Any) -> None:
        self.node, self.base, self.names, self.collect = node, base, names, collect
        self.sent = 0

    async def send(self, command: str, payload: str) -> dict[str, Any]:
        replies = await self.collect(
            self.node, topics.command_response(self.base), protocol="3.1.1"
        )
        self.sent += 1
        async with aiomqtt.Client(
            self.node.host,
            self.node.port,
            identifier=self.names.client_id(f"operator-{self.sent}"),
            protocol=aiomqtt.ProtocolVersion.V311,
            timeout=10,
        ) as client:
            await client.publish(f"{self.base}/cmd/{command}", payload, qos=1, timeout=10)
        await replies.wait_count(1)
        answer: dict[str, Any] = replies.payloads()[0]
        return answer


@pytest.fixture
async def gateway(
    cluster, mqtt_names, tmp_path: Path
) -> AsyncIterator[tuple[MqttPublisher, Any]]:
    """The publisher on the cluster, commands wired to a real Modbus device through the
    actuator (as tests/mqtt/test_commands.py); yields (publisher, plant)."""
    clock = SteppedClock()
    plant = await start_plant(
        [float_tag("setpoint_bar", 0, writable=True, min=6.0, max=8.0, fallback=7.0)],
        clock,
        tmp_path / "comp",
        initial={"setpoint_bar": 7.0},
    )
    publisher = MqttPublisher(
        cluster_config(cluster),
        base_topic=mqtt_names.topic("gw"),
        client_id=mqtt_names.client_id("gw"),
        state_dir=tmp_path / "state",
        clock=clock,
        birth=topics.birth(version="1.2.3", config_hash="cafe", started=1_700_000_000_000),
    )
    async with publisher:
        actuator = plant.actuator(
            clock, publisher, base_topic=publisher.base_topic, manual_writes=True
        )
        engine = RuleEngine(
            [], plant.table, actuator, clock, events=publisher, base_topic=publisher.base_topic
        )

        async def nothing() -> None:
            return None

        async def refused() -> bool:
            return False

        publisher.subscribe_commands(
            CommandHandler(
                engine=engine, actuator=actuator, responder=publisher,
                base_topic=publisher.base_topic, on_reload=refused, on_rebirth=nothing,
                clock=clock,
            )
        )
        await plant.poll()
        yield publisher, plant
    await plant.stop()


def write(value: float) -> str:
    return f'{{"tag": "comp.setpoint_bar", "value": {value}, "ttl": "10min"}}'


async def on_node(publisher: MqttPublisher, node: RabbitNode, within: float) -> float:
    began = time.monotonic()
    async with asyncio.timeout(within):
        while publisher.stats().broker != name(node):  # noqa: ASYNC110 - stats have no event
            await asyncio.sleep(0.01)
    return time.monotonic() - began


async def outage_while(publisher: MqttPublisher, left: RabbitNode, taken: RabbitNode) -> float:
    """Seconds between the publisher's session on `left` ending and its session on `taken`
    beginning (run as a task while the node is stopped)."""
    while publisher.stats().broker == name(left):  # noqa: ASYNC110 - stats have no event
        await asyncio.sleep(0.002)
    lost = time.monotonic()
    await on_node(publisher, taken, 30)
    return time.monotonic() - lost


async def test_a_command_sent_on_the_other_node_is_answered_on_cmd_response(
    cluster, gateway, mqtt_names, mqtt_collect
):
    publisher, plant = gateway
    first, second = cluster.nodes
    await on_node(publisher, first, 20)
    operator = Operator(second, publisher.base_topic, mqtt_names, mqtt_collect)
    answer = await operator.send("write", write(6.5))
    assert (answer["ok"], answer["outcome"]) == (True, "written")
    assert await plant.value("setpoint_bar") == pytest.approx(6.5)
    refused = await operator.send("write", write(9.5))
    assert refused["ok"] is False
    assert "above the max 8" in refused["error"]


def fleet_permissions(cluster: RabbitCluster, user: str) -> None:
    """docs/fleet.md's per-gateway permissions for RabbitMQ, as written there."""
    cluster.ctl(0, "add_user", user, f"{user}-secret")
    queues = f"mqtt-subscription-edgecell-{user}qos[01]"
    cluster.ctl(
        0, "set_permissions", "-p", "/", user,
        f"^{queues}$", f"^(amq\\.topic|{queues})$", f"^(amq\\.topic|{queues})$",
    )
    cluster.ctl(
        0, "set_topic_permissions", "-p", "/", user, "amq.topic",
        "^edgecell\\.{username}\\.", "^edgecell\\.{username}\\.cmd\\.",
    )


async def test_a_gateway_under_the_fleet_permissions_publishes_its_topics_and_nothing_else(
    cluster, mqtt_names, mqtt_collect, power_sample, tmp_path
):
    first, second = cluster.nodes
    user = mqtt_names.stem[-12:].strip("-_") + "-gw"
    await asyncio.to_thread(fleet_permissions, cluster, user)
    secret = tmp_path / "password"
    secret.write_text(f"{user}-secret\n", encoding="utf-8")
    base, other = f"edgecell/{user}", f"edgecell/{user}-other"
    mine = await mqtt_collect(second, f"{base}/#", protocol="3.1.1")
    theirs = await mqtt_collect(second, f"{other}/#", protocol="3.1.1")
    config = cluster_config(cluster).model_copy(
        update={"username": user, "password_file": secret}
    )
    publisher = MqttPublisher(
        config, base_topic=base, client_id=f"edgecell-{user}", state_dir=tmp_path / "state",
        clock=SYSTEM_CLOCK, birth=topics.birth(version="1", config_hash="0", started=0),
    )

    async def answer(topic: str, payload: bytes, properties: object) -> None:
        publisher.respond(None, b'{"ok": true}')

    publisher.subscribe_commands(answer)
    async with publisher:
        await on_node(publisher, first, 20)
        publisher.publish_samples("press", [power_sample(1.0)])
        # With the gateway's account into another gateway's topics: refused by the broker.
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(
                first.host, first.port, identifier=f"edgecell-{user}-stray", username=user,
                password=f"{user}-secret", protocol=aiomqtt.ProtocolVersion.V311, timeout=10,
            ) as stray:
                await stray.publish(f"{other}/data/press", b'{"seq": 1}', qos=1, timeout=10)
        operator = Operator(second, base, mqtt_names, mqtt_collect)
        assert (await operator.send("reload", "{}"))["ok"] is True
        await mine.wait_for(lambda _: f"{base}/data/press" in mine.topics())
    assert f"{base}/status" in mine.topics()
    assert theirs.messages == []


async def test_the_node_in_use_stopped_the_gateway_moves_over_and_the_subscriber_sees_no_gap(
    cluster, gateway, mqtt_names, mqtt_collect, power_sample
):
    publisher, plant = gateway
    first, second = cluster.nodes
    base = publisher.base_topic
    await on_node(publisher, first, 20)
    # The subscriber on the other node: a persistent 3.1.1 session (a durable queue there).
    data = await mqtt_collect(
        second, topics.data(base, "press"), protocol="3.1.1", persistent=True
    )
    status = await mqtt_collect(second, topics.status(base), protocol="3.1.1")
    published: list[int] = []

    async def produce_at_50_hz() -> None:
        while True:
            published.append(publisher.publish_samples("press", [power_sample(len(published))]))
            await asyncio.sleep(0.02)

    async with asyncio.TaskGroup() as tasks:
        producer = tasks.create_task(produce_at_50_hz())
        await data.wait_count(20)
        outage = tasks.create_task(outage_while(publisher, first, second))
        await asyncio.to_thread(cluster.stop_app, 0)
        outage_s = await outage
        await asyncio.sleep(1.0)
        producer.cancel()
    await data.wait_for(lambda _: set(published) <= {p["seq"] for p in data.payloads()})
    print(f"\nRabbitMQ: on the other node {outage_s * 1000:.0f} ms after the session ended")
    assert outage_s < 1.0  # no backoff (drawn up to 30 s) was waited out
    by_epoch = assert_delivered_in_order("press", arrivals_by_device(data)["press"])
    assert set(next(iter(by_epoch.values()))) == set(published)
    # The status seen on the surviving node ends online, naming it.
    await status.wait_for(
        lambda _: bool(status.messages) and status.payloads()[-1].get("broker") == name(second)
    )
    assert status.payloads()[-1]["state"] == "online"
    late = await mqtt_collect(second, topics.status(base), protocol="3.1.1")
    await late.wait_count(1)  # retained on the node that is left
    assert late.payloads()[0]["broker"] == name(second)
    assert publisher.stats().failovers == 1
    # Commands still work on the node that is left.
    operator = Operator(second, base, mqtt_names, mqtt_collect)
    answer = await operator.send("write", write(7.5))
    assert answer["ok"] is True
    assert await plant.value("setpoint_bar") == pytest.approx(7.5)

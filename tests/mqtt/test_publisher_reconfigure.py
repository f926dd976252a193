"""A config reload gives the running publisher new `mqtt:` settings: a new broker is used at
once and nothing accepted before, during or after the switch is lost; buffer settings apply to
the open buffer without a new connection. Two real mosquitto brokers."""

from __future__ import annotations

import asyncio

from controller.mqtt import topics
from tests.waiting import until


def seqs(collector) -> set[int]:
    return {payload["seq"] for payload in collector.payloads()}


async def test_a_new_broker_gets_the_data_at_once_and_no_seq_is_lost_in_the_switch(
    mosquitto_factory, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    old_broker, new_broker = mosquitto_factory(), mosquitto_factory()
    data_topic = topics.data(mqtt_names.topic("gw"), "press")
    on_old = await mqtt_collect(old_broker, data_topic)
    on_new = await mqtt_collect(new_broker, data_topic)
    published: list[int] = []

    async with make_publisher(mqtt_config(old_broker)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)

        async def produce(count: int) -> None:
            for _ in range(count):
                published.append(publisher.publish_samples("press", [power_sample(1.0)]))
                await asyncio.sleep(0.02)

        await produce(20)
        await on_old.wait_for(lambda _: len(seqs(on_old)) >= 5)
        # The switch happens while messages are being accepted.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(produce(50))
            await asyncio.sleep(0.3)
            reconnected = await publisher.reconfigure(
                mqtt_config(new_broker), client_id=mqtt_names.client_id("gw")
            )
        assert reconnected is True
        await on_new.wait_for(lambda _: published[-1] in seqs(on_new))

    assert seqs(on_old) | seqs(on_new) == set(published) == set(range(1, 71))
    assert seqs(on_old), "the old broker got the first part"
    assert seqs(on_new), "the new broker got the rest"
    # After the switch everything goes to the new broker, in order.
    new_in_order = [p["seq"] for p in on_new.payloads()]
    assert list(dict.fromkeys(new_in_order)) == sorted(set(new_in_order))


async def test_the_old_broker_is_told_offline_and_the_new_one_online(
    mosquitto_factory, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    old_broker, new_broker = mosquitto_factory(), mosquitto_factory()
    status_topic = topics.status(mqtt_names.topic("gw"))
    async with make_publisher(mqtt_config(old_broker)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        await publisher.reconfigure(mqtt_config(new_broker), client_id=mqtt_names.client_id("gw"))
        on_new = await mqtt_collect(new_broker, status_topic)
        await on_new.wait_for(lambda _: any(p["state"] == "online" for p in on_new.payloads()))
        # Retained on the old broker: the clean offline of the ended session, not a Will.
        on_old = await mqtt_collect(old_broker, status_topic)
        await on_old.wait_count(1)
    assert on_old.payloads()[-1]["state"] == "offline"
    assert on_old.payloads()[-1]["clean"] is True


async def test_a_new_broker_is_tried_at_once_while_the_old_one_is_away(
    mosquitto_factory, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    old_broker, new_broker = mosquitto_factory(), mosquitto_factory()
    on_new = await mqtt_collect(new_broker, topics.data(mqtt_names.topic("gw"), "press"))
    # Long backoff: without the reconfigure waking it, the publisher would wait up to 60 s.
    slow = {"reconnect_min": "30s", "reconnect_max": "60s"}
    async with make_publisher(mqtt_config(old_broker, **slow)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        old_broker.stop()
        for value in range(10):
            publisher.publish_samples("press", [power_sample(float(value))])
        await asyncio.sleep(1.0)
        assert publisher.stats().connected is False
        await publisher.reconfigure(
            mqtt_config(new_broker, **slow), client_id=mqtt_names.client_id("gw")
        )
        await asyncio.wait_for(publisher.connected(), 5)
        await on_new.wait_for(lambda _: seqs(on_new) >= set(range(1, 11)))
    assert seqs(on_new) == set(range(1, 11))


async def test_buffer_settings_apply_without_a_new_connection(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    status = await mqtt_collect(mosquitto, topics.status(mqtt_names.topic("gw")))
    data = await mqtt_collect(mosquitto, topics.data(mqtt_names.topic("gw"), "press"))
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        await status.wait_count(1)
        other_buffer = mqtt_config(mosquitto, buffer={"max_bytes": "1MiB", "drain_rate": 50})
        reconnected = await publisher.reconfigure(
            other_buffer, client_id=mqtt_names.client_id("gw")
        )
        assert reconnected is False
        seq = publisher.publish_samples("press", [power_sample(1.0)])
        await data.wait_for(lambda _: seq in seqs(data))
        assert publisher.stats().connected is True
    # A new session would have put a clean offline between two births; only the stop did.
    states = [p["state"] for p in status.payloads()]
    assert states == ["online", "offline"]


async def test_a_tighter_max_bytes_drops_the_oldest_of_the_backlog_and_counts_it(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    data = await mqtt_collect(
        mosquitto, topics.data(mqtt_names.topic("gw"), "press"), persistent=True, protocol="3.1.1"
    )
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        mosquitto.stop()
        await until(lambda: not publisher.stats().connected)
        for value in range(200):
            publisher.publish_samples("press", [power_sample(float(value))])
        await publisher.persisted()
        assert publisher.stats().buffer_depth == 200
        assert publisher.stats().buffer_dropped == 0

        tighter = mqtt_config(mosquitto, buffer={"max_bytes": 4096})
        await publisher.reconfigure(tighter, client_id=mqtt_names.client_id("gw"))
        await until(lambda: publisher.stats().buffer_dropped > 0)
        stats = publisher.stats()
        assert stats.buffer_bytes <= 4096
        assert stats.buffer_depth == 200 - stats.buffer_dropped
        mosquitto.start()
        await data.wait_for(lambda _: 200 in seqs(data), 20)
    # The oldest went, the newest were kept and delivered.
    assert seqs(data) == set(range(stats.buffer_dropped + 1, 201))

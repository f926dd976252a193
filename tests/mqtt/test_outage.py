"""Nothing lost: a broker outage while publishing at 10 Hz, and a gateway killed with SIGKILL
during an outage, against a real mosquitto that is stopped and started again."""

from __future__ import annotations

import asyncio
import time

from controller.mqtt import topics
from tests.faults.delivery import arrivals_by_device, assert_delivered_in_order


def seqs(collector) -> list[int]:
    return [payload["seq"] for payload in collector.payloads()]


async def test_broker_outage_delivers_every_seq_in_order(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    data = await mqtt_collect(
        mosquitto, topics.data(mqtt_names.topic("gw"), "press"), persistent=True, protocol="3.1.1"
    )
    published: list[int] = []
    producing = asyncio.Event()
    producing.set()

    async def produce_at_10_hz() -> None:
        while producing.is_set():
            published.append(publisher.publish_samples("press", [power_sample(len(published))]))
            await asyncio.sleep(0.1)

    async with make_publisher(mqtt_config(mosquitto, reconnect_max="1s")) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(produce_at_10_hz())
            await asyncio.sleep(1.0)
            mosquitto.stop()
            await asyncio.sleep(3.0)
            assert publisher.stats().connected is False
            in_outage = published[-1]
            restarted = time.monotonic()
            mosquitto.start()
            await asyncio.wait_for(publisher.connected(), 10)
            reconnected_s = time.monotonic() - restarted
            await data.wait_for(lambda _: set(range(1, in_outage + 1)) <= set(seqs(data)))
            backlog_delivered_s = time.monotonic() - restarted
            await asyncio.sleep(0.5)
            producing.clear()
        await data.wait_for(lambda _: set(published) <= set(seqs(data)))
    print(
        f"\nbroker outage recovery: reconnected {reconnected_s:.2f} s and the "
        f"{in_outage} messages up to the outage's end delivered {backlog_delivered_s:.2f} s "
        f"after the broker came back"
    )
    by_epoch = assert_delivered_in_order("press", arrivals_by_device(data)["press"])
    assert len(by_epoch) == 1
    assert set(next(iter(by_epoch.values()))) == set(published)


async def test_sigkill_during_outage_loses_no_durable_message(
    mosquitto, mqtt_names, mqtt_collect, spawn_gateway, tmp_path
):
    state = tmp_path / "state"
    first = await spawn_gateway(mosquitto, state, "always")
    assert await first.read_line() == "connected"
    mosquitto.stop()
    await first.go()  # publish at 10 Hz, printing `durable <seq>` as each reaches the disk
    await asyncio.sleep(1.5)
    printed = (await first.kill()).split()
    durable = [int(word) for word in printed[1::2]]
    assert len(durable) >= 5
    mosquitto.start()
    data = await mqtt_collect(mosquitto, topics.data(mqtt_names.topic("gw"), "press"))
    second = await spawn_gateway(mosquitto, state, "always")
    assert await second.read_line() == "connected"
    await data.wait_for(lambda _: set(range(1, max(durable) + 1)) <= set(seqs(data)))
    # The second process starts a new epoch (the first was killed): its own seqs begin at 1
    # and are told apart from the first one's by the epoch.
    await second.go()
    await data.wait_for(lambda _: len({p["epoch"] for p in data.payloads()}) == 2)
    by_epoch = assert_delivered_in_order("press", arrivals_by_device(data)["press"])
    first_epoch = data.payloads()[0]["epoch"]
    assert set(range(1, max(durable) + 1)) <= set(by_epoch[first_epoch])


async def test_sigkill_while_connected_never_reuses_a_seq_for_other_data(
    mosquitto, mqtt_names, mqtt_collect, spawn_gateway, tmp_path
):
    # `durability: outage`: the seq counter is saved every few seconds at best, so a process
    # killed while connected has given out numbers it never saved.
    state = tmp_path / "state"
    data = await mqtt_collect(mosquitto, topics.data(mqtt_names.topic("gw"), "press"))
    first = await spawn_gateway(mosquitto, state, "outage")
    assert await first.read_line() == "connected"
    await first.go()
    await data.wait_count(10)
    await first.kill()
    killed_at = len(data.messages)
    second = await spawn_gateway(mosquitto, state, "outage")
    assert await second.read_line() == "connected"
    await second.go()
    await data.wait_count(killed_at + 10)
    by_epoch = assert_delivered_in_order("press", arrivals_by_device(data)["press"])
    assert len(by_epoch) == 2

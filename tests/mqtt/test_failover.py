"""Failover between two real mosquitto brokers on loopback: the broker in use killed while
telemetry flows (nothing lost for a subscriber on both, the birth and retained state on the next
one at once), a broker left behind publishing the Will, and a broker that refuses skipped.

Backoffs are set long (reconnect_min 30 s): moving to the next broker must not wait one out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from controller.mqtt import topics
from controller.mqtt.config import MqttConfig
from tests.conftest import HOST, free_port
from tests.faults.delivery import arrivals_by_device, assert_delivered_in_order

SLOW_BACKOFF = {"reconnect_min": "30s", "reconnect_max": "60s"}


def entry(broker: Any, **settings: Any) -> dict[str, Any]:
    return {"host": broker.host, "port": broker.port, **settings}


def brokers_config(*entries: dict[str, Any]) -> MqttConfig:
    return MqttConfig.model_validate({"brokers": entries, **SLOW_BACKOFF})


def last(collector: Any) -> dict[str, Any]:
    """The last payload received, {} before the first."""
    payloads = collector.payloads()
    return payloads[-1] if payloads else {}


def name(broker: Any) -> str:
    return f"{broker.host}:{broker.port}"


async def wait_on(publisher: Any, broker: Any, within: float) -> float:
    """Seconds until the publisher's session is on `broker`; fails after `within`."""
    began = time.monotonic()
    async with asyncio.timeout(within):
        while publisher.stats().broker != name(broker):  # noqa: ASYNC110 - stats have no event
            await asyncio.sleep(0.01)
    return time.monotonic() - began


class Proxy:
    """socat between the gateway and a broker: killing it cuts the gateway's connection while
    the broker lives on (a network path lost, not a broker)."""

    def __init__(self, target: Any) -> None:
        self.host, self.port = HOST, free_port()
        # fork: a child per connection, all in the process group that kill() ends.
        self.process = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{self.port},bind={HOST},reuseaddr,fork",
                f"TCP:{target.host}:{target.port}",
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


@dataclass
class Both:
    """What a subscriber listening on both brokers received, in arrival order."""

    messages: list[Any]

    def payloads(self) -> list[Any]:
        return [topics.decode(m.payload) for m in self.messages]


@pytest.fixture
def proxy_to() -> Iterator[Any]:
    proxies: list[Proxy] = []

    def start(target: Any) -> Proxy:
        proxies.append(Proxy(target))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.kill()


async def test_the_broker_in_use_killed_the_next_one_takes_over_at_once_and_no_seq_is_lost(
    mosquitto_factory, mqtt_names, mqtt_collect, make_publisher, power_sample
):
    first, second = mosquitto_factory(), mosquitto_factory()
    base = mqtt_names.topic("gw")
    # One subscriber listening on both brokers (two connections).
    data_first = await mqtt_collect(first, topics.data(base, "press"))
    data_second = await mqtt_collect(second, topics.data(base, "press"))
    state_second = await mqtt_collect(second, topics.status(base))
    valve = topics.rule_state(base, "valve")
    retained_second = await mqtt_collect(second, valve)
    published: list[int] = []

    async def produce_at_50_hz() -> None:
        while True:
            published.append(publisher.publish_samples("press", [power_sample(len(published))]))
            await asyncio.sleep(0.02)

    async with make_publisher(brokers_config(entry(first), entry(second))) as publisher:
        await wait_on(publisher, first, 10)
        publisher.publish_retained(valve, b'{"mode": "auto"}')
        async with asyncio.TaskGroup() as tasks:
            producer = tasks.create_task(produce_at_50_hz())
            await asyncio.sleep(1.0)
            first.stop(kill=True)  # SIGKILL: no goodbye, mid-stream
            failover_s = await wait_on(publisher, second, 5)
            await asyncio.sleep(1.0)
            producer.cancel()

        def seen_on_both(_: object) -> bool:
            both = [*data_first.messages, *data_second.messages]
            return set(published) <= {topics.decode(m.payload)["seq"] for m in both}

        await data_second.wait_for(seen_on_both)
        stats = publisher.stats()
    print(f"\nfailover to the second broker {failover_s * 1000:.0f} ms after the SIGKILL")
    assert failover_s < 1.0  # a backoff (drawn up to 30 s) was not waited out
    assert (stats.failovers, stats.reconnects) == (1, 1)

    both = Both([*data_first.messages, *data_second.messages])
    by_epoch = assert_delivered_in_order("press", arrivals_by_device(both)["press"])
    assert sorted(set(next(iter(by_epoch.values())))) == sorted(published)
    # Before the kill on the first broker, after it on the second.
    assert data_first.payloads()
    assert data_second.payloads()
    # The birth and the retained state, published again on the second broker, name it.
    births = [p for p in state_second.payloads() if p["state"] == "online"]
    assert births
    assert births[-1]["broker"] == name(second)
    assert retained_second.payloads() == [{"mode": "auto"}]


async def test_a_broker_left_behind_tells_offline_and_the_next_one_online(
    mosquitto_factory, mqtt_names, mqtt_collect, make_publisher, proxy_to
):
    first, second = mosquitto_factory(), mosquitto_factory()
    path_to_first = proxy_to(first)
    status = topics.status(mqtt_names.topic("gw"))
    on_first = await mqtt_collect(first, status)
    on_second = await mqtt_collect(second, status)
    config = brokers_config(entry(path_to_first), entry(second))
    async with make_publisher(config) as publisher:
        await wait_on(publisher, path_to_first, 10)
        await on_first.wait_for(lambda _: last(on_first).get("state") == "online")
        path_to_first.kill()  # the first broker lives on and sees the connection die
        await wait_on(publisher, second, 5)
        await on_first.wait_for(lambda _: last(on_first).get("state") == "offline")
        await on_second.wait_for(lambda _: bool(on_second.messages))
        # A consumer that comes to either broker now reads the truth from the retained status.
        late_first = await mqtt_collect(first, status)
        late_second = await mqtt_collect(second, status)
        await late_first.wait_count(1)
        await late_second.wait_count(1)
    assert late_first.payloads()[0]["state"] == "offline"
    assert late_first.payloads()[0]["clean"] is False  # the Will
    assert late_second.payloads()[0]["state"] == "online"
    assert late_second.payloads()[0]["broker"] == name(second)


async def test_a_broker_that_refuses_the_credentials_is_skipped_at_once(
    mosquitto_factory, password_file, mqtt_names, mqtt_collect, make_publisher, power_sample,
    tmp_path,
):
    guarded = mosquitto_factory(
        global_options=[f"password_file {password_file}"], allow_anonymous=False
    )
    open_broker = mosquitto_factory()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-secret\n")
    config = brokers_config(
        entry(guarded, username="gateway", password_file=str(wrong)), entry(open_broker)
    )
    data = await mqtt_collect(open_broker, topics.data(mqtt_names.topic("gw"), "press"))
    async with make_publisher(config) as publisher:
        publisher.publish_samples("press", [power_sample(1.0)])
        connected_s = await wait_on(publisher, open_broker, 5)
        await data.wait_count(1)
    assert connected_s < 1.0
    assert "not authorised" in guarded.log_tail(400).lower()

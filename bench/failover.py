"""Broker failover and a gateway's message rate, measured (bench/README.md, "Failover").

`python -m bench.failover cluster`: a two-node RabbitMQ cluster on loopback; the gateway
publishes D devices at H Hz with `mqtt.brokers` listing both nodes, a persistent subscriber
sits on the other node. Phase 1 stops RabbitMQ on the gateway's node (`rabbitmqctl stop_app`,
a clean node shutdown), phase 2 restarts it and SIGKILLs the other node's VM (a crash), the
subscriber having moved. Per phase: the outage (session lost -> next session up), the time
until the subscriber holds every seq published, seqs lost (must be 0) and sent twice.

`python -m bench.failover mosquitto`: the same with two independent mosquittos and a subscriber
on both; the first is SIGKILLed.

`python -m bench.failover rate`: `edgecell demo` (the demo cell, configs/demo.yaml, real time)
against a private mosquitto for `--seconds`, a subscriber on `#` counting messages and bytes
per topic kind: what one gateway asks of a broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import yaml

from bench.rabbitmq_cluster import RabbitCluster
from controller.clock import SYSTEM_CLOCK
from controller.localbroker import LocalMosquitto
from controller.model import Quality, Sample
from controller.mqtt import topics
from controller.mqtt.config import MqttConfig
from controller.mqtt.publisher import MqttPublisher

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Endpoint:
    host: str
    port: int

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Subscriber:
    """A persistent QoS 1 subscriber (clean_session false: the broker queues for it while it
    reconnects) keeping every (device, seq) of `{base}/data/+`."""

    endpoint: Endpoint
    base: str
    client_id: str
    seqs: dict[str, list[int]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def holds(self, published: dict[str, list[int]], since: dict[str, int]) -> bool:
        """Every seq of `published` from `since` on (per device) was received."""
        return all(
            set(seqs[since[d] - 1:]) <= set(self.seqs.get(d, ()))
            for d, seqs in published.items()
        )

    async def _run(self) -> None:
        first = True
        while True:
            try:
                async with aiomqtt.Client(
                    self.endpoint.host, self.endpoint.port, identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V311, clean_session=False, timeout=10,
                ) as client:
                    if first:
                        await client.subscribe(f"{self.base}/data/+", qos=1)
                        first = False
                    self._ready.set()
                    async for message in client.messages:
                        device = message.topic.value.rsplit("/", 1)[-1]
                        seq = orjson.loads(message.payload)["seq"]  # type: ignore[arg-type]
                        self.seqs.setdefault(device, []).append(seq)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)


class Producer:
    """D devices, each a batch of one changed value at H Hz, through the real publisher."""

    def __init__(self, publisher: MqttPublisher, devices: int, hz: float) -> None:
        self.publisher, self.devices, self.period = publisher, devices, 1.0 / hz
        self.published: dict[str, list[int]] = {f"dev-{i:03d}": [] for i in range(devices)}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        tick = 0
        next_at = time.monotonic()
        while True:
            now = SYSTEM_CLOCK.wall_ms()
            for device, seqs in self.published.items():
                sample = Sample(device, "power_kw", float(tick), Quality.GOOD, now, now)
                seq = self.publisher.publish_samples(device, [sample])
                if seq is not None:
                    seqs.append(seq)
            tick += 1
            next_at += self.period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def outage(publisher: MqttPublisher, left: str, taken: str) -> float:
    """Seconds from the session on `left` ending to the session on `taken` beginning."""
    while publisher.stats().broker == left:  # noqa: ASYNC110 - stats have no event
        await asyncio.sleep(0.002)
    lost = time.monotonic()
    while publisher.stats().broker != taken:  # noqa: ASYNC110 - stats have no event
        await asyncio.sleep(0.002)
    return time.monotonic() - lost


def verdict(published: dict[str, list[int]], received: dict[str, list[int]], since: int = 1
            ) -> dict[str, int]:
    """Seqs lost (published from `since` on and never received) and received twice."""
    lost = twice = 0
    for device, seqs in published.items():
        got = [s for s in received.get(device, ()) if s >= since]
        lost += len({s for s in seqs if s >= since} - set(got))
        twice += len(got) - len(set(got))
    return {"lost": lost, "sent_twice": twice}


async def until_held(
    subscriber: Subscriber, producer: Producer, since: dict[str, int], within: float = 120.0
) -> float:
    began = time.monotonic()
    deadline = began + within
    while not subscriber.holds(producer.published, since) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def gateway(endpoints: list[Endpoint], protocol: str, state: Path
                  ) -> AsyncIterator[MqttPublisher]:
    config = MqttConfig.model_validate(
        {
            "brokers": [{"host": e.host, "port": e.port} for e in endpoints],
            "protocol": protocol,
            "reconnect_min": "30s",
            "reconnect_max": "60s",
        }
    )
    publisher = MqttPublisher(
        config, base_topic="bench/failover/gw", client_id="bench-failover-gw", state_dir=state,
        clock=SYSTEM_CLOCK,
        birth=topics.birth(version="bench", config_hash="bench", started=SYSTEM_CLOCK.wall_ms()),
    )
    async with publisher:
        async with asyncio.timeout(30):
            await publisher.connected()
        yield publisher


async def phase(
    name: str, publisher: MqttPublisher, producer: Producer, subscriber: Subscriber,
    left: Endpoint, taken: Endpoint, fault: Any,
) -> dict[str, Any]:
    since = {d: len(s) + 1 for d, s in producer.published.items()}
    watch = asyncio.create_task(outage(publisher, left.name, taken.name))
    fault_began = time.monotonic()
    await asyncio.to_thread(fault)
    fault_s = time.monotonic() - fault_began
    outage_s = await asyncio.wait_for(watch, 60)
    await asyncio.sleep(2.0)
    published = {d: s[since[d] - 1:] for d, s in producer.published.items()}
    held_s = await until_held(subscriber, producer, since)
    counts = Counter[str]()
    for device, seqs in published.items():
        counts.update(verdict({device: seqs}, subscriber.seqs, since[device]))
    row = {
        "phase": name,
        "fault_command_s": round(fault_s, 2),
        "outage_ms": round(outage_s * 1000, 1),
        "all_held_after_s": round(held_s, 2),
        "published_in_phase": sum(len(s) for s in published.values()),
        **counts,
    }
    print(orjson.dumps(row).decode(), flush=True)
    return row


async def run_cluster(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    boot = time.monotonic()
    with RabbitCluster(work / "rabbitmq", nodes=2) as cluster:
        print(f"cluster up in {time.monotonic() - boot:.1f} s", flush=True)
        n0, n1 = (Endpoint(n.host, n.port) for n in cluster.nodes)
        async with gateway([n0, n1], "3.1.1", work / "state") as publisher:
            producer = Producer(publisher, args.devices, args.hz)
            on_n1 = Subscriber(n1, publisher.base_topic, "bench-sub-n1")
            await on_n1.start()
            producer.start()
            await asyncio.sleep(args.warmup)
            rows.append(await phase(
                "rabbitmq stop_app", publisher, producer, on_n1, n0, n1,
                lambda: cluster.stop_app(0),
            ))
            restart = time.monotonic()
            await asyncio.to_thread(cluster.start_app, 0)
            print(f"node 0 serving MQTT again {time.monotonic() - restart:.1f} s after start_app",
                  flush=True)
            on_n0 = Subscriber(n0, publisher.base_topic, "bench-sub-n0")
            await on_n0.start()
            await asyncio.sleep(args.warmup)
            rows.append(await phase(
                "rabbitmq SIGKILL", publisher, producer, on_n0, n1, n0, lambda: cluster.kill(1),
            ))
            await producer.stop()
            await on_n1.stop()
            await on_n0.stop()
    return rows


async def run_mosquitto(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    async with LocalMosquitto() as first, LocalMosquitto() as second:
        a, b = Endpoint(first.host, first.port), Endpoint(second.host, second.port)
        async with gateway([a, b], "5", work / "state-mosquitto") as publisher:
            producer = Producer(publisher, args.devices, args.hz)
            on_a = Subscriber(a, publisher.base_topic, "bench-sub-a")
            on_b = Subscriber(b, publisher.base_topic, "bench-sub-b")
            await on_a.start()
            await on_b.start()
            producer.start()
            await asyncio.sleep(args.warmup)

            class Both(Subscriber):
                def holds(self, published: dict[str, list[int]], since: dict[str, int]) -> bool:
                    merged = {d: on_a.seqs.get(d, []) + on_b.seqs.get(d, []) for d in published}
                    self.seqs = merged
                    return super().holds(published, since)

            both = Both(b, publisher.base_topic, "unused")
            process = first._process  # the broker's process: SIGKILL it, a broker crash

            def crash() -> None:
                if process is not None:
                    os.kill(process.pid, signal.SIGKILL)

            row = await phase("mosquitto SIGKILL", publisher, producer, both, a, b, crash)
            await producer.stop()
            await on_a.stop()
            await on_b.stop()
    return [row]


def family(topic: str, base: str) -> str:
    """`data`, `tags`, `status`, `health`, `devices`, `rules`, `events/writes`, ..."""
    rest = topic[len(base) + 1:].split("/")
    if rest[0] == "events" and len(rest) > 1:
        return f"events/{rest[1]}"
    return rest[0]


async def retained_topics(host: str, port: int, base: str) -> dict[str, int]:
    """topic -> size of every retained message under `base` (what a new subscriber gets)."""
    found: dict[str, int] = {}
    async with aiomqtt.Client(host, port, identifier="bench-rate-retained") as client:
        await client.subscribe(f"{base}/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                async for message in client.messages:
                    if message.retain:
                        found[message.topic.value] = (
                            len(message.topic.value) + len(message.payload)  # type: ignore[arg-type]
                        )
    return found


async def run_rate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    async with LocalMosquitto() as broker:
        config["mqtt"].update({"host": broker.host, "port": broker.port})
        config["gateway"]["state_dir"] = str(work / "demo-state")
        path = work / "demo.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        base = config["mqtt"].get("base_topic") or f"edgecell/{config['gateway']['id']}"
        messages: Counter[str] = Counter()
        octets: Counter[str] = Counter()
        counting = asyncio.Event()
        ready = asyncio.Event()

        async def listen() -> None:
            async with aiomqtt.Client(broker.host, broker.port, identifier="bench-rate") as client:
                await client.subscribe(f"{base}/#", qos=1)
                ready.set()
                async for message in client.messages:
                    if counting.is_set() and not message.retain:
                        kind = family(message.topic.value, base)
                        messages[kind] += 1
                        octets[kind] += len(message.topic.value) + len(message.payload)  # type: ignore[arg-type]

        listener = asyncio.create_task(listen())
        await ready.wait()
        edgecell = shutil.which("edgecell", path=str(Path(sys.executable).parent)) or "edgecell"
        demo = await asyncio.create_subprocess_exec(
            edgecell, "demo", "--config", str(path), "--use-config-broker",
            "--duration", str(args.warmup + args.seconds + 5),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(args.warmup)
        counting.set()
        await asyncio.sleep(args.seconds)
        counting.clear()
        retained = await retained_topics(broker.host, broker.port, base)
        await demo.wait()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    total_m, total_b = sum(messages.values()), sum(octets.values())
    result = {
        "seconds": args.seconds,
        "devices": len(config["devices"]),
        "tags": sum(len(d.get("tags", ())) for d in config["devices"]),
        "messages_per_s": round(total_m / args.seconds, 2),
        "bytes_per_s": round(total_b / args.seconds),
        "retained_topics": len(retained),
        "retained_bytes": sum(retained.values()),
        "by_topic": {
            kind: {"per_s": round(messages[kind] / args.seconds, 2),
                   "bytes_per_s": round(octets[kind] / args.seconds)}
            for kind in sorted(messages)
        },
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)
    return result


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["cluster", "mosquitto", "rate", "all"])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--hz", type=float, default=10.0, help="batches per device per second")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="rate: measuring window")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="edgecell-failover-") as tmp:
        work = Path(tmp)
        if args.what in ("mosquitto", "all"):
            results["mosquitto"] = await run_mosquitto(args, work)
        if args.what in ("cluster", "all"):
            results["cluster"] = await run_cluster(args, work)
        if args.what in ("rate", "all"):
            results["rate"] = await run_rate(args, work)
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    failed = [r for rows in (results.get("mosquitto", []), results.get("cluster", []))
              for r in rows if r["lost"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

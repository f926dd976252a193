"""The Sparkplug edge node with a broker list (Sparkplug 3.0's "multiple MQTT servers"): it is
connected to one server at a time, moves to the next at once when its server dies, and when
the primary host goes offline on its server it ends the session there and walks to the next
(operational-behavior-primary-application-state-with-multiple-servers-*). Two real mosquittos."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from spb_peers import config_text, publish, watching
from test_edge_node import Writes, supply

from controller.clock import SYSTEM_CLOCK
from controller.config import parse_config
from controller.model import DeviceStatus, LinkState
from controller.sparkplug.config import SparkplugConfig
from controller.sparkplug.edge_node import EdgeNode

GROUP, NODE = "plant-1", "cell-7"


def _node(tmp_path: Path, a: Any, b: Any, **sparkplug: Any) -> EdgeNode:
    text = config_text(tmp_path, a, 1).replace(
        f"mqtt: {{host: 127.0.0.1, port: {a.port},",
        f"mqtt: {{brokers: ['127.0.0.1:{a.port}', '127.0.0.1:{b.port}'],",
    )
    config = parse_config(text, "c.yaml")
    assert len(config.mqtt.endpoints()) == 2
    table = {"supply_c": supply(1.0)}
    return EdgeNode(
        SparkplugConfig.model_validate(
            {"enabled": True, "group_id": GROUP, "edge_node_id": NODE, **sparkplug}
        ),
        config.mqtt,
        gateway_id="spb-gw",
        devices=config.devices,
        state_dir=tmp_path / "state",
        clock=SYSTEM_CLOCK,
        node_properties={},
        current=lambda device: [s for s in table.values() if s.device == device],
        writer=Writes(),
    )


async def test_a_dead_server_is_left_for_the_next_at_once(
    tmp_path: Path, mosquitto_factory: Any
) -> None:
    a, b = mosquitto_factory(), mosquitto_factory()
    async with watching(a, "watch-a") as on_a, watching(b, "watch-b") as on_b:
        async with _node(tmp_path, a, b) as node:
            node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
            first = (await on_a.wait_kind("NBIRTH"))[0]
            assert not on_b.of("NBIRTH")  # one server at a time
            a.stop(kill=True)
            started = asyncio.get_running_loop().time()
            second = (await on_b.wait_kind("NBIRTH", within=10))[0]
            moved = asyncio.get_running_loop().time() - started
            await on_b.wait_kind("DBIRTH", 1, "chiller")
            bdseq = first.metric("bdSeq").long_value
            assert second.metric("bdSeq").long_value == (bdseq + 1) % 256
            # reconnect_min is 50 ms: a wait of the backoff would not show, but a whole round
            # (two brokers) was not needed: under 5 s on a busy machine.
            assert moved < 5.0, moved


async def test_an_offline_primary_host_makes_the_node_walk_to_the_next_server(
    tmp_path: Path, mosquitto_factory: Any
) -> None:
    a, b = mosquitto_factory(), mosquitto_factory()
    state = "spBv1.0/STATE/scada-1"
    t0 = SYSTEM_CLOCK.wall_ms()
    for broker in (a, b):
        await publish(broker, state, orjson.dumps({"online": True, "timestamp": t0}), retain=True)
    async with watching(a, "watch-a") as on_a, watching(b, "watch-b") as on_b:
        async with _node(tmp_path, a, b, primary_host_id="scada-1") as node:
            node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
            await on_a.wait_kind("NBIRTH")
            await publish(
                a, state, orjson.dumps({"online": False, "timestamp": t0 + 1}), retain=True
            )
            await on_a.wait_kind("NDEATH")  # the session on A ends ...
            await on_b.wait_kind("NBIRTH", within=10)  # ... and the node is born on B
            await asyncio.sleep(0.5)
            assert len(on_a.of("NBIRTH")) == 1  # it did not come back to A

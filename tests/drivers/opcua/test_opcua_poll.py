"""Polled tags: one batched Read per cycle, split only at the server's MaxNodesPerRead."""

from __future__ import annotations

import pytest
from asyncua.common.callback import CallbackType
from opcua_peers import Recorder, device, good, new_plant, running, sim_server

from controller.model import LinkState, Quality
from drivers.opcua.driver import OpcUaDriver

pytestmark = pytest.mark.asyncio(loop_scope="session")

POINTS = [
    "compressor.pressure_bar",
    "compressor.pressure_setpoint_bar",
    "compressor.motor_power_kw",
    "compressor.running",
    "chiller.supply_temp_c",
]


async def test_polled_tags_arrive_together_each_cycle(sim, recorder: Recorder):
    tags = [{"name": p.replace(".", "_"), "node": sim.node_id(p), "mode": "poll"} for p in POINTS]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        await recorder.wait_for(lambda: len(recorder.batches) >= 3)
    names = {t["name"] for t in tags}
    for batch in recorder.batches[:3]:
        assert {s.tag for s in batch} == names
        assert all(s.quality is Quality.GOOD for s in batch)
    for point in POINTS:
        assert recorder.last("plc", point.replace(".", "_")).value == sim.plant.read_point(point)


async def test_polled_value_follows_the_server(sim, recorder: Recorder):
    tags = [{"name": "supply", "node": sim.node_id("chiller.supply_temp_c"), "mode": "poll"}]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        await recorder.wait_sample("plc", "supply", good)
        await sim.set_value("chiller.supply_temp_c", 6.25)
        sample = await recorder.wait_sample("plc", "supply", lambda s: s.value == 6.25)
    assert sample.quality is Quality.GOOD


async def test_polled_reads_split_at_the_servers_max_nodes_per_read(
    sim_cert_dir, recorder: Recorder
):
    reads: list[int] = []
    async with sim_server(new_plant(), sim_cert_dir, max_nodes_per_read=2) as server:
        ours = {server.node_id(p) for p in POINTS}

        def count(event, _dispatcher):
            nodes = {r.NodeId.to_string() for r in event.request_params.NodesToRead}
            if nodes <= ours:  # not the client's keep-alive read of ServerStatus
                reads.append(len(event.request_params.NodesToRead))

        tags = [
            {"name": p.replace(".", "_"), "node": server.node_id(p), "mode": "poll"} for p in POINTS
        ]
        driver = OpcUaDriver(device(server.endpoint, tags), recorder.context())
        async with running(driver):
            await recorder.wait_state("plc", LinkState.CONNECTED)
            server.server.subscribe_server_callback(CallbackType.PreRead, count)
            polls = driver.status().polls
            await recorder.wait_for(lambda: driver.status().polls >= polls + 2)
            server.server.unsubscribe_server_callback(CallbackType.PreRead, count)
    # Five tags at two nodes per Read: 2 + 2 + 1 each cycle, never more than the limit ...
    assert max(reads) == 2
    assert 1 in reads
    # ... and still one batch of all five samples per cycle.
    assert all(len(batch) == 5 for batch in recorder.batches[-2:])


async def test_poll_once_reads_every_tag_including_subscribed_ones(sim, recorder: Recorder):
    tags = [
        {"name": "pressure", "node": sim.node_id("compressor.pressure_bar")},
        {"name": "power", "node": sim.node_id("chiller.power_kw"), "mode": "poll"},
    ]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    try:
        await driver.poll_once()
    finally:
        await driver.close()
    assert [(s.tag, s.value) for s in recorder.batches[-1]] == [
        ("pressure", sim.plant.read_point("compressor.pressure_bar")),
        ("power", sim.plant.read_point("chiller.power_kw")),
    ]

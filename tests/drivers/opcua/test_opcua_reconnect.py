"""Losing the server: bad samples and `reconnecting` at once; when it is back (same port),
one new session with exactly one subscription, and data flows again."""

from __future__ import annotations

import asyncio
import socket

import pytest
from conftest import Recorder, device, good, new_plant, running, sim_server

from controller.model import LinkState, Quality
from drivers.opcua.driver import OpcUaDriver

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Long enough for several failed reconnect attempts (reconnect_min 200 ms, max 1 s).
SERVER_DOWN = 2.0


def _tags(server):
    return [
        {"name": "pressure", "node": server.node_id("compressor.pressure_bar")},
        {"name": "supply", "node": server.node_id("chiller.supply_temp_c")},
        {"name": "power", "node": server.node_id("chiller.power_kw"), "mode": "poll"},
    ]


async def test_lost_server_turns_samples_bad_and_state_reconnecting(
    sim_cert_dir, recorder: Recorder
):
    server = sim_server(new_plant(), sim_cert_dir, security=("None",))
    await server.start()
    try:
        driver = OpcUaDriver(device(server.endpoint, _tags(server)), recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            await server.stop()
            status = await recorder.wait_state("plc", LinkState.RECONNECTING)
            bad = await recorder.wait_sample("plc", "pressure", lambda s: s.quality is Quality.BAD)
    finally:
        await server.stop()
    assert status.last_error.startswith("connection lost: ")
    assert bad.reason == status.last_error


async def test_restarted_server_gets_one_new_subscription_and_data_resumes(
    sim_cert_dir, recorder: Recorder
):
    plant = new_plant()
    first = sim_server(plant, sim_cert_dir, security=("None",))
    await first.start()
    try:
        driver = OpcUaDriver(device(first.endpoint, _tags(first)), recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            await first.stop()
            await recorder.wait_state("plc", LinkState.RECONNECTING)
            await asyncio.sleep(SERVER_DOWN)
            second = sim_server(plant, sim_cert_dir, security=("None",), port=first.port)
            await second.start()
            try:
                await recorder.wait_for(
                    lambda: (
                        driver.status().reconnects == 1
                        and driver.status().state is LinkState.CONNECTED
                    )
                )
                await recorder.wait_sample("plc", "power", lambda s: good(s) and s.read_ts > 0)
                subscriptions = second.subscription_count()
                monitored_items = second.monitored_item_count()
                seen = len(recorder.of("plc", "pressure"))
                await second.set_value("compressor.pressure_bar", 9.5)
                await recorder.wait_sample("plc", "pressure", lambda s: s.value == 9.5)
                # Several publishing intervals: a second subscription would deliver it again.
                await asyncio.sleep(0.5)
                after = [s.value for s in recorder.of("plc", "pressure")[seen:]]
            finally:
                await second.stop()
    finally:
        await first.stop()
    assert (subscriptions, monitored_items) == (1, 2)
    assert after.count(9.5) == 1


async def test_cancelled_driver_stops_while_the_server_is_unreachable(recorder: Recorder):
    with socket.socket() as probe:  # a free port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tags = [{"name": "pressure", "node": "ns=2;s=Compressor.Pressure"}]
    driver = OpcUaDriver(device(f"opc.tcp://127.0.0.1:{port}", tags), recorder.context())
    task = asyncio.create_task(driver.run())
    try:
        # Failed attempts with the same error are not reported again: look at the status.
        async with asyncio.timeout(10):
            while driver.status().consecutive_failures < 3:  # noqa: ASYNC110  (a counter, not an event)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3.0)
    assert done == {task}
    assert task.cancelled()
    assert driver.status().state is LinkState.STOPPED
    assert driver.status().last_error == "connection refused"

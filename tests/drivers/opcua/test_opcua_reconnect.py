"""Losing the server: bad samples and `reconnecting` at once; when it is back (same port),
one new session with exactly one subscription, and data flows again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest
from opcua_peers import Recorder, device, good, new_plant, running, sim_server

from controller.model import LinkState, Quality
from drivers.opcua.driver import OpcUaDriver

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO = Path(__file__).resolve().parents[3]
# The simulated PLC in a process of its own, so that the test can freeze it (SIGSTOP): the
# socket stays open and nothing answers, as with a PLC whose CPU hangs.
SEPARATE_SERVER = textwrap.dedent(
    """
    import asyncio, json, sys
    import structlog
    from drivers.sim.opcua_server import SimOpcUaServer, SimOpcUaSpec
    from drivers.sim.plant.plant import Plant
    from drivers.sim.scenario import load_scenario

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    async def main():
        scenario = load_scenario("normal-day")
        spec = SimOpcUaSpec.model_validate(
            scenario.opcua_devices[0].model_dump(include={"namespace", "objects", "alarms"})
        )
        plant = Plant(scenario)
        async with SimOpcUaServer(plant, spec, security=("None",), server_clock=False) as server:
            node = server.node_id("compressor.pressure_bar")
            print(json.dumps({"endpoint": server.endpoint, "node": node}), flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)

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


async def test_frozen_server_is_detected_by_keepalive_and_reconnected(recorder: Recorder):
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SEPARATE_SERVER,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        async with asyncio.timeout(60):
            hello = json.loads(await server.stdout.readline())
        tags = [{"name": "pressure", "node": hello["node"]}]
        config = device(hello["endpoint"], tags, keepalive_interval="1s", timeout="1s")
        driver = OpcUaDriver(config, recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            os.kill(server.pid, signal.SIGSTOP)
            lost = await recorder.wait_state("plc", LinkState.RECONNECTING)
            os.kill(server.pid, signal.SIGCONT)
            await recorder.wait_for(
                lambda: (
                    driver.status().reconnects == 1 and driver.status().state is LinkState.CONNECTED
                ),
                within=30,
            )
    finally:
        if server.returncode is None:
            os.kill(server.pid, signal.SIGCONT)
            server.terminate()
        await server.wait()
    # asyncua's ServerStatus probe or the subscription's own keep-alive, whichever is first.
    assert lost.last_error == "connection lost: timeout" or lost.last_error.startswith(
        "connection lost: no publish response or keep-alive for"
    )

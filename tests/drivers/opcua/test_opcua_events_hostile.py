"""Events are device input: a server that sends a severity outside 1-1000, a message of
thousands of characters with control characters, or a flood of events must not get any of it
through unchecked. Against a real asyncua server emitting events from its Server object."""

from __future__ import annotations

import pytest
from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from opcua_peers import Recorder, device, running

from controller.model import DeviceEvent, DeviceEventKind, LinkState
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.events import MAX_MESSAGE_CHARS
from drivers.sim.opcua_server import SimOpcUaServer

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _driver(sim: SimOpcUaServer, recorder: Recorder, **events: object) -> OpcUaDriver:
    spec = device(
        sim.endpoint,
        [{"name": "pressure", "node": sim.node_id("compressor.pressure_bar")}],
        events=[{"min_severity": 1, **events}],
    )
    return OpcUaDriver(spec, recorder.context())


async def _plain_generator(sim: SimOpcUaServer):  # type: ignore[no-untyped-def]
    return await sim.server.get_event_generator(
        ua.NodeId(ua.Int32(ObjectIds.BaseEventType)), ua.NodeId(ua.Int32(ObjectIds.Server))
    )


async def test_bad_severity_is_clamped_and_a_long_message_is_cut(sim, recorder: Recorder):
    driver = _driver(sim, recorder)
    generator = await _plain_generator(sim)
    async with running(driver):
        await recorder.wait_state("plc", LinkState.CONNECTED)
        generator.event.Severity = 5000
        await generator.trigger(message="out of range")
        generator.event.Severity = 300
        await generator.trigger(message="\x1b[2J" + "x" * 10_000)
        await recorder.wait_for(lambda: len(_plain(recorder)) >= 2)
    high, long = _plain(recorder)
    assert (high.severity, long.severity) == (1000, 300)
    assert len(long.message) == MAX_MESSAGE_CHARS
    assert "\x1b" not in long.message
    assert long.condition is None  # a plain event, not a condition


async def test_a_flood_of_events_is_published_at_the_configured_rate(sim, recorder: Recorder):
    driver = _driver(sim, recorder, max_rate=20)
    generator = await _plain_generator(sim)
    async with running(driver):
        await recorder.wait_state("plc", LinkState.CONNECTED)
        generator.event.Severity = 200
        for n in range(300):
            await generator.trigger(message=f"event {n}")
        await recorder.wait_for(lambda: len(_plain(recorder)) >= 300, within=20)
    published = sum(1 for _, publish in recorder.events if publish)
    # A burst of at most max(10, max_rate) plus what the rate refills while they arrive.
    assert 20 <= published < 100, published
    assert driver.status().extra["events_dropped"] == 300 - published


def _plain(recorder: Recorder) -> list[DeviceEvent]:
    return [event for event, _ in recorder.events if event.kind is DeviceEventKind.EVENT]

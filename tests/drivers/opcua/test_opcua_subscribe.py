"""Subscribed tags against a real asyncua server: values, types, quality and timestamps as
the server publishes them; deadbands; tags whose node is missing."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from asyncua import ua
from opcua_peers import Recorder, device, good, running

from controller.model import Quality
from drivers.opcua.driver import OpcUaDriver
from drivers.sim.opcua_server import SimOpcUaServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

TYPED_VALUES: dict[str, tuple[object, ua.VariantType, object]] = {
    # node name: (value on the server, its type, the Sample value expected)
    "Flag": (True, ua.VariantType.Boolean, True),
    "Small": (-12, ua.VariantType.SByte, -12),
    "Count": (40_000, ua.VariantType.UInt16, 40_000),
    "Signed": (-70_000, ua.VariantType.Int32, -70_000),
    "Big": (2**40, ua.VariantType.UInt64, 2**40),
    "Ratio": (0.1, ua.VariantType.Float, 0.1),
    "Level": (1234.5678, ua.VariantType.Double, 1234.5678),
    "Recipe": ("PET-0.5L", ua.VariantType.String, "PET-0.5L"),
    "Changed": (
        dt.datetime(2024, 3, 1, 6, 30, tzinfo=dt.UTC),
        ua.VariantType.DateTime,
        int(dt.datetime(2024, 3, 1, 6, 30, tzinfo=dt.UTC).timestamp() * 1000),
    ),
    "Profile": ([1.0, 2.5, 4.0], ua.VariantType.Double, [1.0, 2.5, 4.0]),
}


@contextlib.asynccontextmanager
async def _typed_nodes(sim: SimOpcUaServer) -> AsyncIterator[dict[str, str]]:
    """A Types object with one variable per TYPED_VALUES entry, removed afterwards (the
    server is shared with other tests)."""
    idx = sim.namespace_index
    folder = await sim.server.nodes.objects.add_object(f"ns={idx};s=Types", f"{idx}:Types")
    try:
        node_ids = {}
        for name, (value, vtype, _expected) in TYPED_VALUES.items():
            node = await folder.add_variable(
                f"ns={idx};s=Types.{name}", f"{idx}:{name}", ua.Variant(value, vtype)
            )
            node_ids[name] = node.nodeid.to_string()
        yield node_ids
    finally:
        await sim.server.delete_nodes([folder], recursive=True)


async def test_subscribed_values_arrive_with_their_types(sim, recorder: Recorder):
    async with _typed_nodes(sim) as node_ids:
        tags = [{"name": name.lower(), "node": node_id} for name, node_id in node_ids.items()]
        driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
        async with running(driver):
            for name, (_value, _vtype, expected) in TYPED_VALUES.items():
                sample = await recorder.wait_sample("plc", name.lower(), good)
                assert (sample.value, type(sample.value)) == (expected, type(expected)), name


async def test_subscribed_change_carries_the_server_source_timestamp(sim, recorder: Recorder):
    tags = [{"name": "pressure", "node": sim.node_id("compressor.pressure_bar")}]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    stamped = dt.datetime(2025, 1, 2, 3, 4, 5, 678_000, tzinfo=dt.UTC)
    async with running(driver):
        await recorder.wait_sample("plc", "pressure", good)
        await sim.set_value("compressor.pressure_bar", 8.5, at=stamped)
        sample = await recorder.wait_sample("plc", "pressure", lambda s: s.value == 8.5)
    assert sample.source_ts == int(stamped.timestamp() * 1000)
    assert sample.read_ts >= sample.source_ts


async def test_status_codes_from_the_server_become_quality_with_reason(sim, recorder: Recorder):
    tags = [{"name": "pressure", "node": sim.node_id("compressor.pressure_bar")}]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    node = ua.NodeId.from_string(sim.node_id("compressor.pressure_bar"))
    async with running(driver):
        await recorder.wait_sample("plc", "pressure", good)
        await sim.server.write_attribute_value(
            node,
            ua.DataValue(
                Value=ua.Variant(6.5, ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
            ),
        )
        uncertain = await recorder.wait_sample(
            "plc", "pressure", lambda s: s.quality is Quality.UNCERTAIN
        )
        await sim.server.write_attribute_value(
            node, ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure))
        )
        bad = await recorder.wait_sample("plc", "pressure", lambda s: s.quality is Quality.BAD)
    assert (uncertain.value, uncertain.reason) == (6.5, "UncertainLastUsableValue")
    assert (bad.value, bad.reason) == (None, "BadSensorFailure")


async def test_absolute_deadband_suppresses_small_changes(sim, recorder: Recorder):
    node = sim.node_id("compressor.pressure_bar")
    tags = [
        {"name": "every_change", "node": node},
        {"name": "banded", "node": node, "deadband": 0.5},
    ]
    start = sim.plant.read_point("compressor.pressure_bar")
    small, large = start + 0.2, start + 1.0
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        await recorder.wait_sample("plc", "banded", lambda s: s.value == start)
        await sim.set_value("compressor.pressure_bar", small)
        # The server published the small change (the tag without deadband has it) ...
        await recorder.wait_sample("plc", "every_change", lambda s: s.value == small)
        await sim.set_value("compressor.pressure_bar", large)
        await recorder.wait_sample("plc", "banded", lambda s: s.value == large)
    # ... but not to the monitored item with a 0.5 bar deadband.
    assert [s.value for s in recorder.of("plc", "banded")] == [start, large]


async def test_percent_deadband_is_a_share_of_the_eu_range(sim, recorder: Recorder):
    # Pressure's EURange is 0..16 bar: 5 % is 0.8 bar.
    node = sim.node_id("compressor.pressure_bar")
    tags = [
        {"name": "every_change", "node": node},
        {"name": "banded", "node": node, "deadband": "5%"},
    ]
    start = sim.plant.read_point("compressor.pressure_bar")
    small, large = start + 0.7, start + 1.6
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        await recorder.wait_sample("plc", "banded", lambda s: s.value == start)
        await sim.set_value("compressor.pressure_bar", small)
        await recorder.wait_sample("plc", "every_change", lambda s: s.value == small)
        await sim.set_value("compressor.pressure_bar", large)
        await recorder.wait_sample("plc", "banded", lambda s: s.value == large)
    assert [s.value for s in recorder.of("plc", "banded")] == [start, large]


async def test_percent_deadband_without_eu_range_is_a_bad_tag(sim, recorder: Recorder):
    tags = [
        {"name": "loaded", "node": sim.node_id("compressor.loaded"), "deadband": "1%"},
        {"name": "pressure", "node": sim.node_id("compressor.pressure_bar")},
    ]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        bad = await recorder.wait_sample("plc", "loaded", lambda s: s.quality is Quality.BAD)
        await recorder.wait_sample("plc", "pressure", good)
    assert bad.reason == "a percent deadband needs the node's EURange, which it has not"


async def test_unknown_browse_path_is_a_bad_tag_and_the_others_run(sim, recorder: Recorder):
    ns = sim.namespace_index
    tags = [
        {"name": "ghost", "browse_path": f"Objects/{ns}:Compressor/{ns}:Nope"},
        {"name": "pressure", "browse_path": sim.browse_path("compressor.pressure_bar")},
    ]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        ghost = await recorder.wait_sample("plc", "ghost", lambda s: s.quality is Quality.BAD)
        pressure = await recorder.wait_sample("plc", "pressure", good)
    assert ghost.reason.startswith("BadNoMatch: browse path")
    assert pressure.value == sim.plant.read_point("compressor.pressure_bar")


async def test_unknown_node_id_is_a_bad_tag_naming_the_status(sim, recorder: Recorder):
    tags = [
        {"name": "ghost", "node": f"ns={sim.namespace_index};s=Compressor.Nope"},
        {"name": "pressure", "node": sim.node_id("compressor.pressure_bar")},
    ]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        ghost = await recorder.wait_sample("plc", "ghost", lambda s: s.quality is Quality.BAD)
        await recorder.wait_sample("plc", "pressure", good)
    assert ghost.reason == "BadNodeIdUnknown"

"""The simulated cell's OPC UA server, seen by a plain asyncua client: plant points as nodes,
setpoint writes handed to the plant (which clamps them), refresh stamping source times."""

from __future__ import annotations

import datetime as dt

import pytest
from asyncua import Client, ua

from drivers.sim.opcua_server import SimOpcUaSpec, default_spec

in_session_loop = pytest.mark.asyncio(loop_scope="session")  # where the shared server runs


@in_session_loop
async def test_setpoint_write_reaches_the_plant_which_clamps_it(sim):
    async with Client(sim.endpoint, timeout=5) as client:
        node = client.get_node(sim.node_id("compressor.pressure_setpoint_bar"))
        await node.write_value(ua.DataValue(ua.Variant(12.0, ua.VariantType.Double)))
        shown = await node.read_value()
    # The plant's limit for the pressure setpoint is 8 bar.
    assert sim.plant.read_point("compressor.pressure_setpoint_bar") == 8.0
    assert shown == 8.0


@in_session_loop
async def test_refresh_copies_plant_points_with_their_source_time(sim):
    before = sim.plant.read_point("chiller.supply_temp_c")
    sim.plant.step(600.0)
    assert sim.plant.read_point("chiller.supply_temp_c") != before
    stamp = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
    await sim.refresh(at=stamp)
    async with Client(sim.endpoint, timeout=5) as client:
        value = await client.get_node(sim.node_id("chiller.supply_temp_c")).read_data_value()
    assert value.Value.Value == sim.plant.read_point("chiller.supply_temp_c")
    assert value.SourceTimestamp.replace(tzinfo=dt.UTC) == stamp


@in_session_loop
async def test_measurements_are_read_only_for_clients(sim):
    before = sim.plant.read_point("compressor.pressure_bar")
    async with Client(sim.endpoint, timeout=5) as client:
        node = client.get_node(sim.node_id("compressor.pressure_bar"))
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await node.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
    assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    assert sim.plant.read_point("compressor.pressure_bar") == before


def test_spec_refuses_a_point_outside_its_object():
    data = default_spec().model_dump()
    data["objects"][0]["points"]["stray"] = {"node": "Chiller.Stray"}
    with pytest.raises(ValueError, match=r"node 'Chiller\.Stray' is not below 'Compressor'"):
        SimOpcUaSpec.model_validate(data)

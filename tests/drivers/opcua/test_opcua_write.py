"""Writes: the value reaches the server node (and the plant behind it) in the node's own data
type; the server's refusals come back as WriteError naming its StatusCode."""

from __future__ import annotations

import pytest
from asyncua import ua
from opcua_peers import Recorder, device, good, running

from controller.model import LinkState, WriteError
from drivers.base import UnencodableValueError
from drivers.opcua.driver import OpcUaDriver

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _tags(sim):
    return [
        {
            "name": "setpoint",
            "node": sim.node_id("compressor.pressure_setpoint_bar"),
            "writable": True,
        },
        {"name": "pressure", "node": sim.node_id("compressor.pressure_bar"), "writable": True},
        {"name": "running", "node": sim.node_id("compressor.running")},
    ]


async def _connected(recorder: Recorder) -> None:
    await recorder.wait_state("plc", LinkState.CONNECTED)


async def test_write_changes_the_server_node_and_reaches_the_plant(sim, recorder: Recorder):
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim)), recorder.context())
    async with running(driver):
        await _connected(recorder)
        await driver.write("setpoint", 7.25)
        sample = await recorder.wait_sample("plc", "setpoint", lambda s: s.value == 7.25)
    node = ua.NodeId.from_string(sim.node_id("compressor.pressure_setpoint_bar"))
    assert sim.server.read_attribute_value(node).Value.Value == 7.25
    assert sim.plant.read_point("compressor.pressure_setpoint_bar") == 7.25
    assert good(sample)


async def test_write_is_converted_to_the_node_data_type(sim, recorder: Recorder):
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim)), recorder.context())
    async with running(driver):
        await _connected(recorder)
        await driver.write("setpoint", 7)  # an int, to a Double node
    node = ua.NodeId.from_string(sim.node_id("compressor.pressure_setpoint_bar"))
    variant = sim.server.read_attribute_value(node).Value
    assert (variant.VariantType, repr(variant.Value)) == (ua.VariantType.Double, "7.0")


async def test_write_of_the_wrong_type_is_refused_with_the_server_status(sim, recorder: Recorder):
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim)), recorder.context())
    async with running(driver):
        await _connected(recorder)
        with pytest.raises(WriteError, match="BadTypeMismatch") as refused:
            await driver.write("setpoint", "high")
    assert "plc.setpoint: the server refused the write of 'high'" in str(refused.value)


async def test_write_to_a_read_only_node_is_refused_with_the_server_status(sim, recorder: Recorder):
    # Declared writable in the config, but the PLC does not let anyone write a measurement.
    before = sim.plant.read_point("compressor.pressure_bar")
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim)), recorder.context())
    async with running(driver):
        await _connected(recorder)
        with pytest.raises(WriteError, match="BadUserAccessDenied"):
            await driver.write("pressure", 3.0)
    assert sim.plant.read_point("compressor.pressure_bar") == before


async def test_write_to_a_tag_not_declared_writable_never_reaches_the_server(
    sim, recorder: Recorder
):
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim)), recorder.context())
    async with running(driver):
        await _connected(recorder)
        with pytest.raises(WriteError, match=r"plc\.running is not declared writable"):
            await driver.write("running", False)
    assert sim.plant.read_point("compressor.running") is True


async def test_write_while_disconnected_is_refused(sim, recorder: Recorder):
    tags = [{"name": "setpoint", "node": "ns=2;s=X", "writable": True}]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())  # never run
    with pytest.raises(WriteError, match=r"plc\.setpoint: the device is not connected"):
        await driver.write("setpoint", 8.0)


async def test_value_the_node_type_cannot_hold_is_refused_before_it_is_sent(
    sim, recorder: Recorder
):
    tags = [*_tags(sim)[:2], {**_tags(sim)[2], "writable": True}]
    driver = OpcUaDriver(device(sim.endpoint, tags), recorder.context())
    async with running(driver):
        await _connected(recorder)
        with pytest.raises(UnencodableValueError, match=r"plc\.setpoint is Double: True"):
            driver.check_write("setpoint", True)
        with pytest.raises(UnencodableValueError, match=r"plc\.running is Boolean: 5\.0"):
            driver.check_write("running", 5.0)
        driver.check_write("setpoint", 7.5)
        driver.check_write("running", False)
        assert driver.whole_steps("setpoint") is None
    assert sim.plant.read_point("compressor.running") is True

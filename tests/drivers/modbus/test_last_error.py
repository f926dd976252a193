"""A device status's `last_error` is the error of the last poll: a consumer reading "empty when
none" must not see the error of an outage that is over."""

from __future__ import annotations

import asyncio

from controller.model import LinkState
from controller.mqtt import topics
from drivers.base import DriverContext
from drivers.modbus import build_modbus_drivers
from drivers.modbus.link import Backoff

from .conftest import Recorder, RunningServer, ServerFactory, device_config, tcp

HOLDING = 3


async def test_last_error_is_empty_again_after_a_good_reconnect(
    modbus_server: ServerFactory, refused_port: int, ctx: DriverContext, recorder: Recorder
) -> None:
    device = device_config("plc", tcp(refused_port), [{"name": "a", "address": 0}])
    (driver,) = build_modbus_drivers([device], ctx, backoff=Backoff(initial=0.01, cap=0.02))
    await driver.poll_once()
    assert (driver.status().state, driver.status().last_error) == (
        LinkState.RECONNECTING,
        "connection refused",
    )
    server: RunningServer = await modbus_server(port=refused_port)
    await server.set(HOLDING, 0, [7])
    async with asyncio.timeout(5):
        while driver.status().state is not LinkState.CONNECTED:
            await asyncio.sleep(0.03)
            await driver.poll_once()
    published = topics.decode(topics.device_status_payload(recorder.status_of("plc"), ts=0))
    await driver.close()
    assert (published["state"], published["last_error"]) == ("connected", "")
    assert recorder.latest("plc")["a"].value == 7


async def test_last_error_stays_while_the_unit_answers_with_an_exception(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    tags = [{"name": "a", "address": 0}, {"name": "far", "address": 1000}]  # 1000: unmapped
    (driver,) = build_modbus_drivers([device_config("plc", tcp(server.port), tags)], ctx)
    await driver.poll_once()
    status = recorder.status_of("plc")
    await driver.close()
    assert (status.state, status.last_error) == (
        LinkState.CONNECTED,
        "exception 2: illegal data address",
    )

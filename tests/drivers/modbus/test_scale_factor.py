"""Tags whose scale comes from another register (SunSpec scale factors): validated in the
config, planned into the same request as their factor, scaled on read and on write, bad with a
reason when the factor is unimplemented or out of range. Against real pymodbus servers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.model import Quality, WriteError
from drivers.base import DriverContext
from drivers.modbus import ModbusDriver, build_modbus_drivers
from drivers.modbus.link import Backoff
from drivers.modbus.planner import plan_device

from .conftest import Recorder, RunningServer, ServerFactory, device_config, tcp

HOLDING, INPUT = 3, 4

# A SunSpec-like block: amps at 2..5 scaled by A_SF at 6, watts at 14 by W_SF at 15, a
# setpoint at 52 scaled by a factor 40 registers away.
TAGS: list[dict[str, Any]] = [
    {"name": "amps", "address": 2, "type": "uint16", "scale_factor": "a_sf", "unit": "A"},
    {"name": "amps_l1", "address": 3, "type": "uint16", "scale_factor": "a_sf"},
    {"name": "a_sf", "address": 6, "type": "int16"},
    {"name": "watts", "address": 14, "type": "int16", "scale_factor": "w_sf"},
    {"name": "w_sf", "address": 15, "type": "int16"},
    {
        "name": "rate",
        "address": 52,
        "type": "int16",
        "scale_factor": "rate_sf",
        "writable": True,
        "min": -100,
        "max": 100,
    },
    {"name": "rate_sf", "address": 92, "type": "int16"},
]


def one_driver(device: Any, ctx: DriverContext) -> ModbusDriver:
    (driver,) = build_modbus_drivers([device], ctx, backoff=Backoff(initial=0.02, cap=0.1))
    assert isinstance(driver, ModbusDriver)
    return driver


def test_a_tag_and_its_scale_factor_are_read_in_one_request() -> None:
    device = device_config("inv", tcp(1502), TAGS)  # max_gap 16: 52 and 92 are 39 apart
    requests = plan_device(device)
    by_tag = {tag.name: r for r in requests for tag in r.tags}
    assert by_tag["rate"] is by_tag["rate_sf"]
    assert by_tag["amps"] is by_tag["a_sf"]
    assert by_tag["watts"] is by_tag["w_sf"]
    # Without the factor, the far register would be a request of its own.
    plain = [dict(t, scale_factor=None) if t["name"] == "rate" else t for t in TAGS]
    separate = {
        tag.name: r for r in plan_device(device_config("inv", tcp(1502), plain)) for tag in r.tags
    }
    assert separate["rate"] is not separate["rate_sf"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "watts", "scale_factor": "nope"}, r"tags\[3\]\.scale_factor: no tag 'nope'"),
        ({"name": "w_sf", "type": "uint16"}, "'w_sf' is uint16; a scale factor is int16"),
        ({"name": "w_sf", "table": "input"}, "one request must read both"),
        ({"name": "w_sf", "scale": 0.1}, "must be read raw"),
        ({"name": "w_sf", "writable": True}, "a scale factor is read-only"),
        ({"name": "w_sf", "address": 200}, r"'w_sf' and the tags it scales span 187 registers"),
        ({"name": "watts", "scale_factor": "watts"}, "cannot be its own scale factor"),
        ({"name": "watts", "type": "string", "length": 1}, "a string tag has no scale"),
    ],
)
def test_a_scale_factor_that_cannot_work_is_refused_naming_the_tag(
    change: dict[str, Any], message: str
) -> None:
    tags = [dict(t, **change) if t["name"] == change["name"] else t for t in TAGS]
    with pytest.raises(ValidationError, match=message):
        device_config("inv", tcp(1502), tags)


async def _serve(server: RunningServer, *, a_sf: int, w_sf: int, rate_sf: int) -> None:
    await server.set(HOLDING, 2, [1234, 411])
    await server.set(HOLDING, 6, [a_sf & 0xFFFF])
    await server.set(HOLDING, 14, [(-2500) & 0xFFFF, w_sf & 0xFFFF])
    await server.set(HOLDING, 52, [500])
    await server.set(HOLDING, 92, [rate_sf & 0xFFFF])


async def test_values_are_scaled_by_the_factor_read_with_them(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    await _serve(server, a_sf=-1, w_sf=2, rate_sf=-1)
    driver = one_driver(device_config("inv", tcp(server.port), TAGS), ctx)
    await driver.poll_once()
    got = {name: s.value for name, s in recorder.latest("inv").items()}
    assert got["amps"] == 123.4  # divided, not multiplied by 0.1: exact
    assert got["amps_l1"] == 41.1
    assert got["watts"] == -250_000
    assert got["rate"] == 50.0
    assert got["a_sf"] == -1
    # The device changes its exponent: the next poll follows it.
    await server.set(HOLDING, 15, [0])
    await driver.poll_once()
    assert recorder.latest("inv")["watts"].value == -2500
    await driver.close()


async def test_an_unimplemented_or_wild_factor_makes_its_tags_bad_with_the_reason(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    await _serve(server, a_sf=-32768, w_sf=42, rate_sf=-1)
    driver = one_driver(device_config("inv", tcp(server.port), TAGS), ctx)
    await driver.poll_once()
    await driver.close()
    latest = recorder.latest("inv")
    assert latest["amps"].quality is Quality.BAD
    assert "a_sf reads -32768: not implemented" in (latest["amps"].reason or "")
    assert latest["amps_l1"].quality is Quality.BAD
    assert latest["watts"].quality is Quality.BAD
    assert "w_sf reads 42, outside -10..10" in (latest["watts"].reason or "")
    assert latest["rate"].quality is Quality.GOOD
    assert latest["a_sf"].value == -32768  # the factor itself is what it is


async def test_a_write_uses_the_last_factor_read_and_waits_for_one(
    modbus_server: ServerFactory, ctx: DriverContext, recorder: Recorder
) -> None:
    server: RunningServer = await modbus_server()
    await _serve(server, a_sf=0, w_sf=0, rate_sf=-1)
    driver = one_driver(device_config("inv", tcp(server.port), TAGS), ctx)
    try:
        with pytest.raises(WriteError, match="scale factor rate_sf has not been read yet"):
            await driver.write("rate", 40.0)
        assert await server.get(HOLDING, 52, 1) == [500]
        await driver.poll_once()
        assert driver.whole_steps("rate") is not None
        await driver.write("rate", -40.0)
        assert await server.get(HOLDING, 52, 1) == [(-400) & 0xFFFF]
        with pytest.raises(WriteError, match=r"not one of its steps of 0\.1"):
            await driver.write("rate", 12.34)
        await server.set(HOLDING, 92, [0x8000])  # now unimplemented: no raw value is safe
        await driver.poll_once()
        with pytest.raises(WriteError, match="has not been read yet"):
            await driver.write("rate", 40.0)
        assert await server.get(HOLDING, 52, 1) == [(-400) & 0xFFFF]
    finally:
        await driver.close()

"""A start is bumpless: the daemon reads before it acts. Started against a real Modbus device
whose inputs are fine, the closed loop never writes an output's fallback value (the fallback
is for a controller that lost its inputs, not for one that has not read them yet)."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime

VALVE = 2  # float32 holding registers 2-3

CONFIG = """
gateway: {{id: {gateway}, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
devices:
  - name: rinse
    driver: modbus
    link: {{transport: tcp, host: 127.0.0.1, port: {modbus}}}
    poll_interval: 300ms
    tags:
      - {{name: conductivity, address: 0, type: float32}}
      - {{name: fresh_valve, address: 2, type: float32, writable: true,
         min: 0, max: 100, fallback: 50}}
rules:
  - kind: threshold
    name: fresh-water
    when: {{tag: rinse.conductivity, above: 800, release: 700}}
    set: {{rinse.fresh_valve: 100}}
    otherwise: {{rinse.fresh_valve: 0}}
actuation: {{cycle: 200ms}}
"""


def words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


async def test_start_writes_no_fallback_before_the_first_reading(
    tmp_path: Path, mosquitto: Any, mqtt_names: Any
) -> None:
    written: list[float] = []
    first_write = asyncio.Event()

    def trace(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and pdu.function_code == 16 and pdu.address == VALVE:
            written.append(struct.unpack(">f", struct.pack(">HH", *pdu.registers))[0])
            first_write.set()
        return pdu

    unit = SimDevice(
        1,
        simdata=(
            [SimData(0, count=8, values=False, datatype=SimType.BITS)],
            [SimData(0, count=8, values=False, datatype=SimType.BITS)],
            [SimData(0, count=8, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, count=8, values=0, datatype=SimType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer([unit], address=("127.0.0.1", 0), trace_pdu=trace)
    await server.serve_forever(background=True)
    try:
        await server.async_setValues(1, 16, 0, words(420.0))  # clean rinse water
        await server.async_setValues(1, 16, VALVE, words(20.0))  # the valve as the PLC left it
        text = CONFIG.format(
            gateway=mqtt_names.stem,
            state=tmp_path / "state",
            mqtt=mosquitto.port,
            modbus=server.transport.sockets[0].getsockname()[1],
        )
        runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))
        daemon = asyncio.create_task(runtime.run())
        await asyncio.wait_for(first_write.wait(), 10)  # the rule's first write: it closes
        await asyncio.sleep(1.0)  # five more cycles: nothing else is written
        runtime.request_stop()
        await asyncio.wait_for(daemon, 10)
    finally:
        await server.shutdown()
    assert written == [0.0]

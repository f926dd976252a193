"""The benchmark's Modbus devices: N pymodbus TCP servers x M holding registers in one process,
changing a known 10% of the registers every period and recording when, and every request.

The change pattern is what lets a subscriber measure latency without a shared clock other than
the machine's: generation g (the g-th period after start) writes the value g to the tags (in
the register map of bench.workload) whose `(index + device) % 10 == g % 10`, index being the
tag's position in the map; its apply time per device is recorded. A subscriber that sees a
tag's value become g (after scaling) knows which change it is looking at.

With `--static` (the idle benchmark, bench/idle.py) every tag holds generation 1 from the start
and nothing ever changes.

Run as `python -m bench.simulator --devices N --registers M --duration S --out FILE`; it prints
one JSON line `{"ports": [...]}` when every server listens, stops by itself after `--duration`
(or on SIGTERM/SIGINT) and writes FILE: change times and the arrival time of every request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from bench.workload import REGISTER_MAPS, Field, Workload

UNIT_ID = 1
FC_HOLDING = 3
CHANGE_MODULUS = 10  # one register in ten changes per period


def encode(tag: Field, generation: int) -> list[int]:
    """The registers of `tag` holding generation `generation` (before its scale)."""
    if tag.kind == "float32":
        return list(struct.unpack(">HH", struct.pack(">f", float(generation))))
    if tag.kind == "int16":
        return [generation & 0x7FFF]
    return [generation & 0xFFFF]


@dataclass
class _Device:
    index: int
    image: list[int]
    server: ModbusTcpServer | None = None
    port: int = 0
    # (arrival time, function code, address, count) of every request received
    requests: list[tuple[float, int, int, int]] = field(default_factory=list)


def _trace(device: _Device, sending: bool, pdu: Any) -> Any:
    if not sending:
        device.requests.append(
            (time.time(), int(pdu.function_code), int(getattr(pdu, "address", 0)),
             int(getattr(pdu, "count", 0)))
        )
    return pdu


async def _serve(devices: list[_Device]) -> None:
    for device in devices:
        simdevice = SimDevice(
            id=UNIT_ID,
            simdata=[SimData(0, values=list(device.image), datatype=SimType.REGISTERS)],
        )
        server = ModbusTcpServer(
            simdevice,
            address=("127.0.0.1", 0),
            trace_pdu=functools.partial(_trace, device),
        )
        await server.serve_forever(background=True)
        listener: Any = server.transport
        device.server = server
        device.port = int(listener.sockets[0].getsockname()[1])


def change_offset(generation: int, device: int, devices: int, period: float) -> float:
    """When, within its period, generation `generation` reaches device `device`: spread over
    the devices and moving from one generation to the next (golden-ratio steps), so that the
    phase between a gateway's polls and the changes takes every value, and latency shows its
    true spread instead of one fixed phase."""
    return ((generation * 0.6180339887 + device / devices) % 1.0) * period


async def _change_loop(
    devices: list[_Device],
    fields: tuple[Field, ...],
    period: float,
    start: float,
    changes: list[list[float]],
) -> None:
    """Generation g reaches device d at start + g * period + change_offset(g, d); a late one is
    applied at once, never skipped, so every generation exists (subscribers count them)."""
    generation = 1
    count = len(devices)
    while True:
        phase = generation % CHANGE_MODULUS
        applied: list[float] = [float(generation)] + [0.0] * count
        due = sorted((
            (start + generation * period + change_offset(generation, d.index, count, period), d)
            for d in devices
        ), key=lambda item: item[0])
        for at, device in due:
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            image = device.image
            for tag in fields[(phase - device.index) % CHANGE_MODULUS :: CHANGE_MODULUS]:
                image[tag.address : tag.address + tag.registers] = encode(tag, generation)
            assert device.server is not None
            await device.server.async_setValues(UNIT_ID, FC_HOLDING, 0, image)
            applied[1 + device.index] = time.time()
        changes.append(applied)
        generation += 1


async def run(args: argparse.Namespace) -> None:
    fields = Workload(args.devices, args.registers, args.period, args.map).fields
    devices = [_Device(i, [0] * args.registers) for i in range(args.devices)]
    if args.static:
        for device in devices:
            for tag in fields:
                device.image[tag.address : tag.address + tag.registers] = encode(tag, 1)
    await _serve(devices)
    start = time.time()
    print(orjson.dumps({"ports": [d.port for d in devices], "start": start}).decode(), flush=True)
    changes: list[list[float]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with asyncio.TaskGroup() as tg:
            changer = None
            if not args.static:
                changer = tg.create_task(
                    _change_loop(devices, fields, args.period, start, changes))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=args.duration)
            if changer is not None:
                changer.cancel()
    finally:
        for device in devices:
            if device.server is not None:
                await device.server.shutdown()  # type: ignore[no-untyped-call]
        # The process is ending: nothing else runs on the loop that a blocking write delays.
        Path(args.out).write_bytes(  # noqa: ASYNC240
            orjson.dumps(
                {
                    "start": start,
                    "period": args.period,
                    "registers": args.registers,
                    "changes": changes,
                    "requests": [d.requests for d in devices],
                }
            )
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simulator", description=__doc__)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--registers", type=int, required=True)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between changes")
    parser.add_argument("--map", choices=REGISTER_MAPS, default="uint16", help="register map")
    parser.add_argument("--static", action="store_true",
                        help="every tag holds generation 1 and never changes (idle benchmark)")
    parser.add_argument("--duration", type=float, required=True, help="stop after S seconds")
    parser.add_argument("--out", required=True, help="where to write change and request times")
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()

"""A real pymodbus TCP server whose holding registers count the reads: every register a request
reads is incremented as it is read, so every poll of edgecell sees a new value (one data message
per poll, and the `ts` of each value is the time of that poll).

Used in-process (`CounterServer`) or as its own process, to be killed with SIGKILL:
`python tests/faults/counter_server.py PORT` prints `port <n>` once it listens (PORT 0: any).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

REGISTERS = 200
READ_HOLDING = 3


class CounterServer:
    """Unit 1 with REGISTERS holding registers from 0; counts TCP connections accepted."""

    def __init__(self, port: int = 0) -> None:
        self.requested_port = port
        self.port = 0
        self.connections = 0
        self.reads = 0
        self._server: ModbusTcpServer | None = None

    async def _count_reads(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if function_code != READ_HOLDING or set_values is not None:
            return
        self.reads += 1
        first = address - start_address
        for i in range(first, first + count):
            registers[i] = (registers[i] + 1) & 0xFFFF

    def _on_connection(self, connected: bool) -> None:
        self.connections += connected

    async def start(self) -> CounterServer:
        unit = SimDevice(
            1,
            simdata=(
                [SimData(0, count=16, values=False, datatype=SimType.BITS)],
                [SimData(0, count=16, values=False, datatype=SimType.BITS)],
                [SimData(0, count=REGISTERS, values=0, datatype=SimType.REGISTERS)],
                [SimData(0, count=REGISTERS, values=0, datatype=SimType.REGISTERS)],
            ),
            action=self._count_reads,
        )
        server = ModbusTcpServer(
            [unit],
            address=("127.0.0.1", self.port or self.requested_port),
            trace_connect=self._on_connection,
        )
        await server.serve_forever(background=True)
        self._server = server
        listening: Any = server.transport  # an asyncio.Server
        self.port = int(listening.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await cast(Any, server).shutdown()


async def _serve(port: int) -> None:
    server = await CounterServer(port).start()
    print(f"port {server.port}", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))

"""Modbus TCP peers that misbehave, as plain asyncio servers on loopback (no protocol library
between the fault and edgecell): one that accepts and never answers, one that answers every
request with random bytes, one that answers correctly but with the wrong transaction id."""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections.abc import Awaitable, Callable

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
READ_HOLDING = 3

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """One MBAP request: (transaction id, unit id, pdu)."""
    header = await reader.readexactly(MBAP.size)
    transaction, _protocol, length, unit = MBAP.unpack(header)
    pdu = await reader.readexactly(length - 1)
    return transaction, unit, pdu


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads everything, answers nothing (a PLC whose Modbus task hangs)."""
    while await reader.read(4096):
        pass


async def random_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request gets 1 to 40 random bytes back (a serial gateway gone mad)."""
    while await reader.read(4096):
        writer.write(os.urandom(random.randint(1, 40)))
        await writer.drain()


async def wrong_transaction(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-formed answer to every read of holding registers, with the transaction id of
    another request (a gateway that mixes up its clients' requests)."""
    while True:
        try:
            transaction, unit, pdu = await _read_request(reader)
        except asyncio.IncompleteReadError:
            return
        if pdu[0] != READ_HOLDING or len(pdu) < 5:
            continue
        _address, count = struct.unpack(">HH", pdu[1:5])
        body = bytes([READ_HOLDING, 2 * count]) + bytes(2 * count)
        wrong = (transaction + 0x5A5A) & 0xFFFF
        writer.write(MBAP.pack(wrong, 0, len(body) + 1, unit) + body)
        await writer.drain()


class BadPeer:
    """`async with BadPeer(handler) as peer:` serves on 127.0.0.1:`peer.port`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> BadPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)

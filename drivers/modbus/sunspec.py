"""SunSpec discovery for `edgecell browse modbus://host:port`: find the `SunS` marker, walk the
model headers to the end model, read the models edgecell knows, and print them as a list or as
a `devices:` entry whose tags carry their scale factors (docs/modbus.md, "SunSpec discovery").

A one-shot command, not the daemon: it talks to the device with a plain pymodbus client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from controller.configtypes import format_duration
from drivers.modbus.sunspec_models import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    MODELS,
    NOT_IMPLEMENTED,
    SUNS_MARKER,
    SunSpecModel,
    SunSpecPoint,
)

MAX_MODELS = 64  # a map longer than this is not a SunSpec device that ends its chain
_READ_MAX = 125  # registers per read (protocol limit)
# SunSpec type -> edgecell tag type (bitfields and accumulators as unsigned integers).
TAG_TYPES: dict[str, str] = {
    "int16": "int16",
    "uint16": "uint16",
    "sunssf": "int16",
    "enum16": "uint16",
    "bitfield16": "uint16",
    "count": "uint16",
    "acc16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "acc32": "uint32",
    "bitfield32": "uint32",
    "enum32": "uint32",
    "string": "string",
}
# Tag name prefixes of the models edgecell knows.
PREFIXES: dict[int, str] = {1: "common", 103: "inverter", 124: "storage"}


class SunSpecBrowseError(Exception):
    """The device cannot be browsed as SunSpec (no marker, a broken chain, no answer)."""


@dataclass
class FoundModel:
    id: int
    address: int  # of its ID register
    length: int  # L
    known: SunSpecModel | None
    registers: list[int] = field(default_factory=list)  # after ID and L; known models only

    @property
    def label(self) -> str:
        return self.known.label if self.known is not None else "not known to edgecell"


@dataclass
class SunSpecDevice:
    host: str
    port: int
    unit: int
    base: int
    models: list[FoundModel]


async def _read(client: AsyncModbusTcpClient, address: int, count: int, unit: int) -> list[int]:
    reply = await client.read_holding_registers(address, count=count, device_id=unit)
    if reply.isError():
        raise SunSpecBrowseError(f"reading {count} registers at {address}: {reply}")
    registers = list(reply.registers)
    if len(registers) != count:
        raise SunSpecBrowseError(f"asked {count} registers at {address}, got {len(registers)}")
    return registers


async def discover(
    host: str, port: int, unit: int, *, request_timeout: float = 3.0
) -> SunSpecDevice:
    """Find the marker at 40000, 0 or 50000 and walk the chain of models to the end model."""
    client = AsyncModbusTcpClient(host, port=port, timeout=request_timeout, retries=0)
    try:
        if not await client.connect():
            raise SunSpecBrowseError(f"cannot connect to {host}:{port}")
        base = None
        for candidate in BASE_ADDRESSES:
            try:
                marker = await _read(client, candidate, 2, unit)
            except (SunSpecBrowseError, ModbusException):
                continue
            if tuple(marker) == SUNS_MARKER:
                base = candidate
                break
        if base is None:
            raise SunSpecBrowseError(
                f"no SunSpec marker 'SunS' at {', '.join(map(str, BASE_ADDRESSES))} "
                f"on {host}:{port} unit {unit}"
            )
        models: list[FoundModel] = []
        address = base + 2
        while True:
            if len(models) >= MAX_MODELS or address + 2 > 0xFFFF:
                raise SunSpecBrowseError(f"no end model after {len(models)} models: not SunSpec")
            model_id, length = await _read(client, address, 2, unit)
            if model_id == END_MODEL_ID:
                break
            known = MODELS.get(model_id)
            if known is not None and length != known.length:
                raise SunSpecBrowseError(
                    f"model {model_id} at {address} says length {length}; SunSpec's is "
                    f"{known.length}"
                )
            found = FoundModel(model_id, address, length, known)
            if known is not None:
                for start in range(0, length, _READ_MAX):
                    count = min(_READ_MAX, length - start)
                    found.registers += await _read(client, address + 2 + start, count, unit)
            models.append(found)
            address += 2 + length
        return SunSpecDevice(host, port, unit, base, models)
    except ModbusException as exc:
        raise SunSpecBrowseError(f"{host}:{port} unit {unit}: {exc}") from exc
    finally:
        client.close()


def _implemented(point: SunSpecPoint, registers: list[int]) -> bool:
    words = registers[point.offset - 2 : point.offset - 2 + point.size]
    if point.type == "string":
        return any(words)
    if point.type in ("acc32", "count", "acc16"):
        return True  # 0 is both "not implemented" and a real count
    if point.size == 2:
        return words != [0xFFFF, 0xFFFF]
    return words[0] != NOT_IMPLEMENTED.get(point.type, -1)


def _text(point: SunSpecPoint, registers: list[int]) -> str:
    words = registers[point.offset - 2 : point.offset - 2 + point.size]
    data = b"".join(w.to_bytes(2, "big") for w in words)
    return data.rstrip(b"\0").decode("ascii", "replace")


def format_models(device: SunSpecDevice) -> str:
    """The models found, one line each, with the common model's identity."""
    lines = [f"SunSpec device {device.host}:{device.port} unit {device.unit}, base {device.base}"]
    for found in device.models:
        lines.append(f"  {found.address:>5}  model {found.id:<5} L {found.length:<4} {found.label}")
        if found.known is not None and found.id == 1:
            for name in ("Mn", "Md", "SN", "Vr"):
                point = found.known.point(name)
                lines.append(f"{'':16}{name}: {_text(point, found.registers)}")
    last = device.models[-1] if device.models else None
    end = last.address + 2 + last.length if last is not None else device.base + 2
    lines.append(f"  {end:>5}  end model")
    return "\n".join(lines) + "\n"


def _prefixes(device: SunSpecDevice) -> list[str]:
    """A tag prefix per model: its short name, numbered when a model repeats."""
    seen: dict[int, int] = {}
    out = []
    for found in device.models:
        seen[found.id] = seen.get(found.id, 0) + 1
        base = PREFIXES.get(found.id, f"model{found.id}")
        out.append(base if seen[found.id] == 1 else f"{base}{seen[found.id]}")
    return out


def format_yaml(device: SunSpecDevice, *, device_name: str, poll_interval: float = 5.0) -> str:
    """A config that validates as it is: one read-only tag per implemented point of each known
    model, scaled tags naming their scale factor. Writable points are marked in a comment:
    declare them `writable` with limits to write them."""
    lines = [
        f"# edgecell browse modbus://{device.host}:{device.port} --unit {device.unit}: "
        f"SunSpec, base {device.base}.",
        "# One tag per implemented point; edit names, drop what you do not need.",
        "gateway:",
        "  id: cell-1  # this gateway's name in MQTT topics (edgecell/cell-1/...): set yours",
        "devices:",
        "  - driver: modbus",
        f"    name: {json.dumps(device_name)}",
        f"    link: {{transport: tcp, host: {json.dumps(device.host)}, port: {device.port}}}",
        f"    unit_id: {device.unit}",
        f"    poll_interval: {format_duration(poll_interval)}",
        "    tags:",
    ]
    skipped: list[str] = []
    count = 0
    for found, prefix in zip(device.models, _prefixes(device), strict=True):
        known = found.known
        if known is None:
            skipped.append(
                f"    # model {found.id} at {found.address} (L {found.length}): not known"
            )
            continue
        implemented = {
            p.name for p in known.points if p.type != "pad" and _implemented(p, found.registers)
        }
        for point in known.points:
            if point.type == "pad" or point.type not in TAG_TYPES:
                continue
            name = f"{prefix}_{point.name.lower()}"
            if point.name not in implemented:
                skipped.append(f"    # {name}: not implemented by the device")
                continue
            if point.sf is not None and point.sf not in implemented:
                skipped.append(f"    # {name}: its scale factor {point.sf} is not implemented")
                continue
            fields = [
                f"name: {name}",
                f"address: {found.address + point.offset}",
                f"type: {TAG_TYPES[point.type]}",
            ]
            if point.type == "string":
                fields.append(f"length: {point.size}")
            if point.sf is not None:
                fields.append(f"scale_factor: {prefix}_{point.sf.lower()}")
            if point.units:
                fields.append(f"unit: {json.dumps(point.units.strip())}")
            notes = [point.label] if point.label else []
            if point.writable:
                notes.append("writable on the device")
            note = f"  # {'; '.join(notes)}" if notes else ""
            lines.append(f"      - {{{', '.join(fields)}}}{note}")
            count += 1
    if count == 0:
        lines.append("      []  # no known model with implemented points")
    lines += skipped
    return "\n".join(lines) + "\n"


def run_browse(args: argparse.Namespace) -> int:
    """`edgecell browse modbus://host:port [--unit N] [--yaml] [--name NAME]`; exit 0 found,
    1 no SunSpec device there, 2 a bad address."""
    url = urlparse(args.url)
    try:
        port = url.port or 502
    except ValueError as exc:
        sys.stderr.write(f"edgecell browse: {args.url}: {exc}\n")
        return 2
    if url.scheme != "modbus" or not url.hostname or url.path not in ("", "/"):
        sys.stderr.write(f"edgecell browse: {args.url}: write modbus://host[:port]\n")
        return 2
    unit = args.unit
    if not 0 <= unit <= 247:
        sys.stderr.write(f"edgecell browse: --unit {unit} is not a Modbus unit id (0-247)\n")
        return 2
    try:
        device = asyncio.run(discover(url.hostname, port, unit, request_timeout=args.timeout))
    except (SunSpecBrowseError, OSError, TimeoutError) as exc:
        sys.stderr.write(f"edgecell browse: {exc}\n")
        return 1
    if args.yaml:
        name = args.name or _name_from(device)
        sys.stdout.write(format_yaml(device, device_name=name))
    else:
        sys.stdout.write(format_models(device))
    return 0


def _name_from(device: SunSpecDevice) -> str:
    host = "".join(c if c.isalnum() else "_" for c in device.host).strip("_") or "sunspec"
    return f"{host}_{device.unit}"[:64]

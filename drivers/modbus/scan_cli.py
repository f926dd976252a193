"""`edgecell scan`: the Modbus discovery command, added to the `edgecell` parser by
controller/cli.py. Prints a starting config on stdout, progress on stderr.
Exit codes: 0 done (whatever was found), 1 the link failed, 2 bad input."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from pydantic import ValidationError

from drivers.modbus.config import SerialLink, Table, TcpLink

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

_TCP = re.compile(r"^(?:(tcp|rtu_over_tcp)://)?([^\s/:]+)(?::(\d{1,5}))?$")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = subparsers.add_parser(
        "scan",
        help="find the Modbus units and readable register blocks of a host or serial line",
        description=(
            "Read-only discovery: which unit ids answer, which registers and bits of each "
            "table can be read, SunSpec markers. Prints a starting config (devices: entries)."
        ),
    )
    scan.add_argument(
        "target",
        help="host[:port], tcp://host:port, rtu_over_tcp://host:port, or a serial port "
        "(/dev/ttyUSB0, rtu:///dev/ttyUSB0)",
    )
    scan.add_argument(
        "--units", default=None, help="ids to try, e.g. 1-10,17 (TCP: 1-3, serial: 1-247)"
    )
    scan.add_argument("--rate", type=float, default=20.0, help="requests per second (20)")
    scan.add_argument("--timeout", type=float, default=0.5, help="seconds per request (0.5)")
    scan.add_argument(
        "--max-address", type=int, default=2_000, help="probe addresses below this (2000)"
    )
    scan.add_argument("--max-requests", type=int, default=2_000, help="per unit (2000)")
    scan.add_argument(
        "--tables", default="holding,input,coil,discrete", help="tables to probe (all four)"
    )
    scan.add_argument("--name", default=None, help="device name prefix (default: from the target)")
    serial = scan.add_argument_group("serial line")
    serial.add_argument("--baudrate", type=int, default=9600)
    serial.add_argument("--parity", choices=("N", "E", "O"), default="N")
    serial.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    scan.set_defaults(handler=run_scan)


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def parse_target(args: argparse.Namespace) -> TcpLink | SerialLink:
    target: str = args.target
    if target.startswith(("rtu://", "/")):
        return SerialLink(
            transport="rtu",
            port=target.removeprefix("rtu://"),
            baudrate=args.baudrate,
            parity=args.parity,
            stopbits=args.stopbits,
        )
    match = _TCP.match(target)
    if match is None:
        raise ValueError(f"{target!r} is neither host[:port] nor a serial port")
    transport, host, port = match.groups()
    return TcpLink(transport=transport or "tcp", host=host, port=int(port or 502))


def run_scan(args: argparse.Namespace) -> int:
    from drivers.modbus.scan import (  # noqa: PLC0415  (pymodbus loads when the command runs)
        ScanError,
        ScanLimits,
        format_yaml,
        parse_units,
        scan,
    )

    try:
        link = parse_target(args)
        default_units = "1-3" if isinstance(link, TcpLink) else "1-247"
        units = parse_units(args.units or default_units)
        tables = tuple(Table(name.strip()) for name in args.tables.split(","))
        _check_bounds(args)
        limits = ScanLimits(
            timeout=args.timeout,
            rate=args.rate,
            max_address=args.max_address,
            max_requests=args.max_requests,
            tables=tables,
        )
    except (ValidationError, ValueError) as exc:
        _err(f"edgecell scan: {exc}")
        return EXIT_BAD_INPUT
    prefix = args.name or _name_from(link)
    try:
        report = asyncio.run(scan(link, units, limits, progress=lambda text: _err(f"scan: {text}")))
    except ScanError as exc:
        _err(f"edgecell scan: {exc}")
        return EXIT_FAILURE
    _err(
        f"scan: {len(report.units)} unit(s), {sum(len(u.blocks) for u in report.units)} "
        f"block(s), {report.requests} requests in {report.seconds:.1f} s"
    )
    sys.stdout.write(format_yaml(link, report, device_prefix=prefix))
    return EXIT_OK


def _check_bounds(args: argparse.Namespace) -> None:
    if not 0 < args.rate <= 1000 or not 0 < args.timeout <= 60:
        raise ValueError("--rate is 0-1000 a second and --timeout 0-60 s")
    if not 0 < args.max_address <= 65536 or args.max_requests < 1:
        raise ValueError("--max-address is 1-65536 and --max-requests at least 1")


def _name_from(link: TcpLink | SerialLink) -> str:
    raw = link.host if isinstance(link, TcpLink) else link.port.rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-").lower() or "modbus"
    return name[:40]

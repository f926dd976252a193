"""`edgecell browse` and `edgecell certs`: the OPC UA commands, added to the `edgecell`
parser by controller/cli.py (`add_commands`). Exit codes: 0 ok, 1 failure, 2 bad input."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import structlog
from pydantic import ValidationError

from controller.config import ConfigError, load_config
from drivers.opcua.config import (
    DEFAULT_APPLICATION_URI,
    OpcUaAuth,
    OpcUaDevice,
    OpcUaSecurity,
    SecurityMode,
    SecurityPolicy,
    check_endpoint,
)
from drivers.opcua.errors import OpcUaSetupError

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
DEFAULT_STATE_DIR = Path("/var/lib/edgecell")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `browse` and `certs`; each sets `handler` to a function `(args) -> exit code`."""
    browse = subparsers.add_parser(
        "browse",
        help=(
            "show an OPC UA server's nodes or a SunSpec device's models, or a device entry "
            "for the config (--yaml)"
        ),
        description=(
            "Browse an OPC UA server below Objects, or a SunSpec device over Modbus TCP "
            "(modbus://host:port --unit N)."
        ),
    )
    browse.add_argument("url", help="opc.tcp://host:port[/path] or modbus://host[:port]")
    browse.add_argument("--unit", type=int, default=1, help="Modbus unit id (modbus://, default 1)")
    browse.add_argument("--depth", type=int, default=3, help="levels below Objects (default 3)")
    browse.add_argument(
        "--yaml", action="store_true", help="print a devices: entry with one tag per variable"
    )
    browse.add_argument("--name", help="device name in the --yaml output (default: from host)")
    browse.add_argument("--include-server", action="store_true", help="also the Server object")
    browse.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    _add_security_flags(browse)
    browse.set_defaults(handler=run_browse)

    certs = subparsers.add_parser(
        "certs",
        help="create (once) and show the OPC UA client certificate servers must trust",
        description=(
            "Create the OPC UA client certificate and key under STATE_DIR/opcua/ if missing, "
            "and print what to compare on the server's trust list."
        ),
    )
    certs.add_argument("--config", type=Path, help="take state_dir and application URIs from it")
    certs.add_argument("--state-dir", type=Path, default=None, help="default /var/lib/edgecell")
    certs.add_argument("--application-uri", default=None, help=f"default {DEFAULT_APPLICATION_URI}")
    certs.set_defaults(handler=run_certs)


def _add_security_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security")
    group.add_argument("--policy", choices=[p.value for p in SecurityPolicy], default="None")
    group.add_argument("--mode", choices=[m.value for m in SecurityMode], default=None)
    group.add_argument("--client-cert", type=Path, help="default: generated in --state-dir")
    group.add_argument("--client-key", type=Path)
    group.add_argument("--server-cert", type=Path, help="pinned server certificate")
    group.add_argument("--application-uri", default=DEFAULT_APPLICATION_URI)
    group.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    group.add_argument("--user", help="user name (default: anonymous)")
    group.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    group.add_argument("--password-file", type=Path)


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _security_from(args: argparse.Namespace) -> tuple[OpcUaSecurity, OpcUaAuth]:
    mode = args.mode or ("None" if args.policy == "None" else "SignAndEncrypt")
    security = OpcUaSecurity(
        policy=SecurityPolicy(args.policy),
        mode=SecurityMode(mode),
        client_cert=args.client_cert,
        client_key=args.client_key,
        server_cert=args.server_cert,
        application_uri=args.application_uri,
    )
    password: str | None = None
    if args.password_env is not None:
        if args.password_env not in os.environ:
            raise ValueError(f"environment variable {args.password_env} is not set")
        password = os.environ[args.password_env]
    auth = OpcUaAuth(username=args.user, password=password, password_file=args.password_file)
    return security, auth


def run_browse(args: argparse.Namespace) -> int:
    if args.url.startswith("modbus://"):
        from drivers.modbus.sunspec import run_browse as run_sunspec_browse  # noqa: PLC0415

        return run_sunspec_browse(args)
    from drivers.opcua.browse import browse, format_tree, format_yaml  # noqa: PLC0415

    try:
        check_endpoint(args.url)
        security, auth = _security_from(args)
    except (ValidationError, ValueError) as exc:
        _err(f"edgecell browse: {_first_error(exc)}")
        return EXIT_BAD_INPUT
    if args.depth < 1:
        _err("edgecell browse: --depth is at least 1")
        return EXIT_BAD_INPUT
    try:
        root = asyncio.run(
            browse(
                args.url,
                args.depth,
                security=security,
                auth=auth,
                state_dir=args.state_dir,
                request_timeout=args.timeout,
                include_server=args.include_server,
            )
        )
    except OpcUaSetupError as exc:
        _err(f"edgecell browse: {exc}")
        return EXIT_FAILURE
    except (OSError, TimeoutError) as exc:
        _err(f"edgecell browse: cannot reach {args.url}: {exc!r}")
        return EXIT_FAILURE
    except Exception as exc:
        # asyncua raises its UaError family for server refusals; anything else is shown
        # as it is rather than as a traceback.
        _err(f"edgecell browse: {type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    if args.yaml:
        text = format_yaml(
            root,
            endpoint=args.url,
            device_name=args.name or _name_from(args.url),
            security=security,
            auth=auth,
        )
    else:
        text = format_tree(root)
    sys.stdout.write(text)
    return EXIT_OK


def _name_from(url: str) -> str:
    host = urlparse(url).hostname or "plc"
    name = "".join(c if c.isalnum() else "_" for c in host).strip("_")
    return (name or "plc")[:64]


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
        message = str(error["msg"]).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(exc)


def run_certs(args: argparse.Namespace) -> int:
    from drivers.opcua.security import (  # noqa: PLC0415
        certificate_summary,
        generate_client_certificate,
    )

    state_dir: Path = args.state_dir or DEFAULT_STATE_DIR
    uris: list[str] = []
    if args.config is not None:
        try:
            config = load_config(args.config).config
        except ConfigError as exc:
            for problem in exc.problems:
                _err(problem)
            return EXIT_BAD_INPUT
        state_dir = args.state_dir or config.gateway.state_dir
        for device in config.devices:
            if not isinstance(device, OpcUaDevice) or device.security.client_cert is not None:
                continue
            if device.security.application_uri not in uris:
                uris.append(device.security.application_uri)
    if args.application_uri is not None:
        uris = [args.application_uri]
    if not uris:
        uris = [DEFAULT_APPLICATION_URI]
    for uri in uris:
        try:
            cert_path, key_path = generate_client_certificate(state_dir, uri)
            summary = certificate_summary(cert_path.read_bytes())
        except (OSError, OpcUaSetupError) as exc:
            _err(f"edgecell certs: {exc}")
            return EXIT_FAILURE
        sys.stdout.write(
            f"certificate:      {cert_path}\n"
            f"private key:      {key_path}\n"
            f"application URI:  {summary['application_uri']}\n"
            f"subject:          {summary['subject']}\n"
            f"SHA-256:          {summary['sha256']}\n"
            f"valid until:      {summary['valid_until']}\n"
            "Trust this certificate on each OPC UA server (copy the .der file to its trusted\n"
            "certificates, or accept it in its rejected list after a first connect).\n"
        )
    return EXIT_OK

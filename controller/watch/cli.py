"""`edgecell watch`'s arguments, and its entry point. Only argparse and the config models are
imported here; textual (the `console` extra) loads when the command runs, so the daemon's
`edgecell run` never imports it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from controller.mqtt.config import TlsConfig
from controller.watch.link import (
    BrokerAddressError,
    BrokerSettings,
    default_by,
    parse_broker,
    settings_from_config,
)

EXIT_OK = 0
EXIT_BAD_INPUT = 2
MISSING_EXTRA = (
    "edgecell watch needs the console extra (textual): pip install 'edgecell[console]'"
    " (in a checkout: .venv/bin/pip install -e '.[console]')"
)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = sub.add_parser(
        "watch",
        help="live console of a gateway, from its MQTT topics (needs the console extra)",
        description="A live view of one gateway from its MQTT topics alone: devices, tags, "
        "rules, alarms, writes, health. Give --config (the gateway's own config: broker, "
        "login, TLS and base topic as the daemon has them), or --broker and --gateway.",
    )
    watch.add_argument("--config", type=Path, help="the gateway's config file")
    watch.add_argument(
        "--broker",
        metavar="HOST[:PORT]",
        help="the broker (default port 1883); overrides the one in --config",
    )
    watch.add_argument("--gateway", metavar="ID", help="the gateway id (gateway.id)")
    watch.add_argument(
        "--base-topic", help="the gateway's mqtt.base_topic, when not edgecell/{gateway}"
    )
    watch.add_argument("--mqtt-protocol", choices=("5", "3.1.1"), default=None)
    watch.add_argument("--username")
    watch.add_argument("--password-file", type=Path, help="a file holding the password")
    watch.add_argument("--tls", action="store_true", help="TLS with the system's CAs")
    watch.add_argument("--ca-file", type=Path, help="TLS with this CA (implies --tls)")
    watch.add_argument("--cert-file", type=Path, help="client certificate (implies --tls)")
    watch.add_argument("--key-file", type=Path, help="its key")
    watch.add_argument(
        "--tls-insecure", action="store_true", help="skip the hostname check (test brokers)"
    )
    watch.add_argument(
        "--by", default=None, help="who the commands are from (default: <user>@watch)"
    )
    watch.set_defaults(handler=run_watch)


class WatchArgumentError(ValueError):
    """Arguments that name no gateway or contradict each other."""


def settings_from_args(args: argparse.Namespace) -> tuple[BrokerSettings, str, str]:
    """(settings, gateway id, broker shown as host:port) from the command line."""
    by = (args.by or default_by())[:64]
    if args.config is not None:
        settings, gateway = settings_from_config(args.config, by)
    elif args.gateway is None or args.broker is None:
        raise WatchArgumentError("give --config, or --broker and --gateway")
    else:
        gateway = args.gateway
        settings = BrokerSettings(host="127.0.0.1", port=1883, base=f"edgecell/{gateway}", by=by)
    if args.gateway is not None:
        gateway = args.gateway
    if args.broker is not None:
        host, port = parse_broker(args.broker)
        settings = replace(settings, host=host, port=port)
    if args.base_topic is not None:
        settings = replace(settings, base=args.base_topic.rstrip("/"))
    elif args.config is None:
        settings = replace(settings, base=f"edgecell/{gateway}")
    if args.mqtt_protocol is not None:
        settings = replace(settings, protocol=args.mqtt_protocol)
    if args.username is not None:
        settings = replace(settings, username=args.username)
    if args.password_file is not None:
        path: Path = args.password_file
        settings = replace(settings, password=lambda: path.read_text(encoding="utf-8").strip())
    if args.tls or args.ca_file or args.cert_file or args.tls_insecure:
        tls = TlsConfig(
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            insecure=args.tls_insecure,
        )
        settings = replace(settings, tls=tls)
    if not settings.base or any(c in settings.base for c in "+#"):
        raise WatchArgumentError(f"base topic {settings.base!r} is not a topic without wildcards")
    return settings, gateway, f"{settings.host}:{settings.port}"


def run_watch(args: argparse.Namespace) -> int:
    from controller.config import ConfigError  # noqa: PLC0415

    try:
        settings, gateway, label = settings_from_args(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BrokerAddressError, WatchArgumentError, ValueError) as exc:
        print(f"edgecell watch: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from controller.watch.app import WatchApp  # noqa: PLC0415
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("textual", "rich"):
            print(MISSING_EXTRA, file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    WatchApp(settings, gateway=gateway, broker_label=label).run()
    return EXIT_OK

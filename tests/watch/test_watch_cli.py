"""`edgecell watch`'s command line: where the broker and the gateway come from (the arguments,
or the gateway's own config with its TLS and login), and the daemon's footprint: `edgecell run`
never imports textual, and `watch` without the console extra says which extra to install."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from controller.cli import build_parser
from controller.watch.cli import settings_from_args
from controller.watch.link import BrokerAddressError, WatchLink, parse_broker
from controller.watch.state import CellState
from tests.mqtt.test_publisher import _write_tls_material

ROOT = Path(__file__).resolve().parents[2]


def watch_args(*argv: str) -> Any:
    return build_parser().parse_args(["watch", *argv])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("broker.plant", ("broker.plant", 1883)),
        ("10.0.0.5:8883", ("10.0.0.5", 8883)),
        ("[::1]:1884", ("::1", 1884)),
        ("[fe80::1]", ("fe80::1", 1883)),
    ],
)
def test_broker_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_broker(text) == expected


@pytest.mark.parametrize("text", ["", ":1883", "host:0", "host:99999", "host:x", "[::1", "[::1]x"])
def test_bad_broker_addresses_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(BrokerAddressError, match="--broker"):
        parse_broker(text)


def test_broker_and_gateway_give_the_default_base_topic() -> None:
    settings, gateway, label = settings_from_args(
        watch_args("--broker", "gw.local:1884", "--gateway", "press-3", "--by", "anna")
    )
    assert (settings.host, settings.port, settings.base) == ("gw.local", 1884, "edgecell/press-3")
    assert (gateway, label, settings.by, settings.tls) == ("press-3", "gw.local:1884", "anna", None)


def test_the_gateway_config_gives_broker_login_tls_and_base_topic(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    (tmp_path / "ca.pem").write_text("")  # the config checks that it exists
    config = tmp_path / "edgecell.yaml"
    config.write_text(
        "gateway: {id: line-7, state_dir: ./state}\n"
        "mqtt:\n"
        "  host: broker.plant\n  port: 8883\n  protocol: '3.1.1'\n  base_topic: plant/line-7\n"
        f"  username: gw\n  password_file: {secret}\n"
        f"  tls: {{ca_file: {tmp_path / 'ca.pem'}, insecure: true}}\n"
    )
    settings, gateway, _ = settings_from_args(watch_args("--config", str(config)))
    assert (settings.host, settings.port, settings.base, gateway) == (
        "broker.plant",
        8883,
        "plant/line-7",
        "line-7",
    )
    assert (settings.protocol, settings.username, settings.password()) == ("3.1.1", "gw", "s3cret")
    assert settings.tls is not None
    assert settings.tls.ca_file == tmp_path / "ca.pem"
    assert settings.tls.insecure
    # From a laptop the broker has another address than the gateway's: --broker overrides it.
    settings, _, label = settings_from_args(
        watch_args("--config", str(config), "--broker", "10.1.2.3")
    )
    assert (settings.host, settings.port, settings.base, label) == (
        "10.1.2.3",
        1883,
        "plant/line-7",
        "10.1.2.3:1883",
    )


def run_cli(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_daemon_does_not_import_textual() -> None:
    done = run_cli(
        "import sys\n"
        "from controller.cli import main\n"
        "import controller.runtime\n"
        "code = main(['validate', 'configs/demo.yaml'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print(code, loaded)\n"
    )
    assert done.stdout.splitlines()[-1] == "0 []", done.stdout + done.stderr


def test_watch_without_the_console_extra_names_the_extra_to_install() -> None:
    done = run_cli(
        "import sys\n"
        "sys.modules['textual'] = None  # as when the extra is not installed\n"
        "from controller.cli import main\n"
        "sys.exit(main(['watch', '--broker', '127.0.0.1:1', '--gateway', 'x']))\n"
    )
    assert done.returncode == 2
    assert "pip install 'edgecell[console]'" in done.stderr


def test_watch_without_a_gateway_is_refused() -> None:
    done = run_cli("from controller.cli import main\nraise SystemExit(main(['watch']))\n")
    assert done.returncode == 2
    assert "give --config, or --broker and --gateway" in done.stderr


async def test_the_console_connects_with_the_gateways_tls_settings(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    """A broker that wants TLS and a client certificate; the console, given only the gateway's
    config file, gets in and reads the gateway's retained status."""
    tls = _write_tls_material(tmp_path)
    broker = mosquitto_factory(
        listener_options=[
            f"cafile {tls['ca']}",
            f"certfile {tls['server_cert']}",
            f"keyfile {tls['server_key']}",
            "require_certificate true",
        ]
    )
    config = tmp_path / "edgecell.yaml"
    config.write_text(
        "gateway: {id: tls-gw, state_dir: ./state}\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n"
        f"  tls: {{ca_file: {tls['ca']}, cert_file: {tls['client_cert']},"
        f" key_file: {tls['client_key']}}}\n"
    )
    settings, _, _ = settings_from_args(watch_args("--config", str(config)))
    client_tls = ssl.create_default_context(cafile=str(tls["ca"]))
    client_tls.load_cert_chain(tls["client_cert"], tls["client_key"])
    async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=client_tls) as gateway:
        await gateway.publish(
            "edgecell/tls-gw/status", b'{"state": "online", "version": "9.9"}', qos=1, retain=True
        )
    state = CellState(settings.base)
    link = asyncio.create_task(WatchLink(settings, state).run())
    try:
        async with asyncio.timeout(10):
            while state.gateway.get("version") != "9.9":  # noqa: ASYNC110  (polls the state)
                await asyncio.sleep(0.05)
        assert state.broker == "connected"
    finally:
        link.cancel()

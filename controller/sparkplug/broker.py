"""Where the Sparkplug session connects, from the same `mqtt:` settings as the JSON contract
(host, port, TLS, credentials), and the MQTT client it connects with.

`brokers()` is the one place the broker is chosen: the edge node tries its entries in order,
moving to the next when a connection fails or ends. With one broker in `mqtt:` it is a list
of one; a broker list in `mqtt:` (failover) is read here and nowhere else in this package.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiomqtt

from controller.mqtt.config import MqttConfig, TlsConfig

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int


def brokers(config: MqttConfig) -> list[Broker]:
    """The brokers of `mqtt:`, in the order they are tried."""
    return [Broker(config.host, config.port)]


def read_secrets(config: MqttConfig) -> tuple[str | None, ssl.SSLContext | None]:
    """The password and TLS context, read again at every connect (rotated files are picked up).
    Blocking: call it in a thread."""
    tls = config.tls
    return config.resolve_password(), (_tls_context(tls) if tls is not None else None)


def make_client(
    config: MqttConfig,
    broker: Broker,
    *,
    client_id: str,
    will: aiomqtt.Will,
    password: str | None,
    tls_context: ssl.SSLContext | None,
) -> aiomqtt.Client:
    """An MQTT 3.1.1 client with a clean session (Sparkplug 3.0 asks Clean Session true; with
    3.1.1 an intentional stop is NDEATH then DISCONNECT, with no MQTT 5 reason code to get
    right)."""
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=config.username,
        password=password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V311,
        will=will,
        clean_session=True,
        timeout=CONNECT_TIMEOUT,
        keepalive=max(1, round(config.keepalive)),
        tls_context=tls_context,
    )


def _tls_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(tls.ca_file) if tls.ca_file is not None else None
    )
    if tls.cert_file is not None:
        context.load_cert_chain(
            str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
        )
    if tls.insecure:
        context.check_hostname = False
    return context

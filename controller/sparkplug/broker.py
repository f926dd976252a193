"""Where the Sparkplug session connects, from the same `mqtt:` settings as the JSON contract
(host, port, TLS, credentials), and the MQTT client it connects with.

`rotation()` is the one place the broker is chosen: the same `BrokerRotation` as the JSON
session's, over `mqtt.brokers` (or the one `host`), so the edge node fails over as it does.
"""

from __future__ import annotations

import ssl

import aiomqtt

from controller.mqtt.brokers import BrokerEndpoint, BrokerRotation
from controller.mqtt.config import MqttConfig

CONNECT_TIMEOUT = 10.0


def rotation(config: MqttConfig, previous: BrokerRotation | None = None) -> BrokerRotation:
    """The brokers of `mqtt:` in the order they are tried, with the JSON session's failover
    rules (controller/mqtt/brokers.py): the next broker at once after a loss, a backoff only
    when a whole round failed. `previous` (a reload) keeps the broker it was on."""
    return BrokerRotation.from_config(config, previous)


def make_client(
    config: MqttConfig,
    broker: BrokerEndpoint,
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
        username=broker.username,
        password=password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V311,
        will=will,
        clean_session=True,
        timeout=CONNECT_TIMEOUT,
        keepalive=max(1, round(config.keepalive)),
        tls_context=tls_context,
    )

"""MqttPublisher against a real mosquitto: birth and Last Will, data batches, both protocol
versions, credentials, TLS, retained state after reconnect, commands, a corrupt buffer file."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.mqtt import topics
from controller.mqtt.buffer import BUFFER_FILE
from controller.mqtt.publisher import PublisherNotRunningError, PublisherReentryError


def last_state(messages: list[aiomqtt.Message]) -> str | None:
    return topics.decode(messages[-1].payload)["state"] if messages else None


async def test_birth_is_published_retained_on_connect_with_the_epoch_of_the_data(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    base = mqtt_names.topic("gw")
    data = await mqtt_collect(mosquitto, topics.data(base, "press"))
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        publisher.publish_samples("press", [power_sample(1.0)])
        # A subscriber that comes later still gets it: it is retained.
        status = await mqtt_collect(mosquitto, topics.status(base))
        await status.wait_count(1)
        await data.wait_count(1)
    assert status.messages[0].retain
    epoch = data.payloads()[0]["epoch"]
    assert re.fullmatch("[0-9a-f]{12}", epoch)
    assert status.payloads()[0] == {
        "state": "online",
        "version": "1.2.3",
        "config_hash": "cafe",
        "started": 1_700_000_000_000,
        "epoch": epoch,
        "broker": f"{mosquitto.host}:{mosquitto.port}",
    }


async def test_clean_stop_publishes_offline_retained(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
    status = await mqtt_collect(mosquitto, topics.status(mqtt_names.topic("gw")))
    await status.wait_count(1)
    assert status.messages[0].retain
    assert status.payloads()[0]["state"] == "offline"
    assert status.payloads()[0]["clean"] is True


async def test_killed_process_leaves_offline_last_will(
    mosquitto, mqtt_names, mqtt_collect, spawn_gateway, tmp_path
):
    child = await spawn_gateway(mosquitto, tmp_path)
    assert await child.read_line() == "connected"
    status = await mqtt_collect(mosquitto, topics.status(mqtt_names.topic("gw")))
    await status.wait_for(lambda messages: last_state(messages) == "online")
    await child.kill()
    await status.wait_for(lambda messages: last_state(messages) == "offline")
    assert status.payloads()[-1]["clean"] is False
    later = await mqtt_collect(mosquitto, topics.status(mqtt_names.topic("gw")))
    await later.wait_count(1)
    assert later.messages[0].retain
    assert later.payloads()[0]["state"] == "offline"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_data_batches_arrive_with_increasing_seq(
    protocol, mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    base = mqtt_names.topic("gw")
    data = await mqtt_collect(mosquitto, topics.data(base, "press"), protocol=protocol)
    async with make_publisher(mqtt_config(mosquitto, protocol=protocol)) as publisher:
        for value in range(5):
            publisher.publish_samples("press", [power_sample(float(value))])
        await data.wait_count(5)
    payloads = data.payloads()
    assert [p["seq"] for p in payloads] == [1, 2, 3, 4, 5]
    assert [p["values"]["power_kw"]["v"] for p in payloads] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(p["values"]["power_kw"]["q"] == "good" for p in payloads)


async def test_seq_continues_after_restart(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    data = await mqtt_collect(mosquitto, topics.data(mqtt_names.topic("gw"), "press"))
    for _ in range(2):
        async with make_publisher(mqtt_config(mosquitto)) as publisher:
            publisher.publish_samples("press", [power_sample(1.0)])
            publisher.publish_samples("press", [power_sample(2.0)])
            await asyncio.wait_for(publisher.connected(), 10)
    await data.wait_count(4)
    assert [p["seq"] for p in data.payloads()] == [1, 2, 3, 4]
    # A clean stop saved the counter: the same epoch goes on.
    assert len({p["epoch"] for p in data.payloads()}) == 1


async def test_username_and_password_connect(
    mosquitto_factory, password_file, mqtt_names, mqtt_collect, tmp_path, mqtt_config,
    make_publisher, power_sample,
):
    broker = mosquitto_factory(
        global_options=[f"password_file {password_file}"], allow_anonymous=False
    )
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    base = mqtt_names.topic("gw")
    data = await mqtt_collect(
        broker, topics.data(base, "press"), username="gateway", password="s3cret"
    )
    config = mqtt_config(broker, username="gateway", password_file=str(secret))
    async with make_publisher(config) as publisher:
        publisher.publish_samples("press", [power_sample(1.0)])
        await data.wait_count(1)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _signed(
    subject: str, ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _write_tls_material(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgecell test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert, server_key = _signed("127.0.0.1", ca_name, ca_key, server=True)
    client_cert, client_key = _signed("gateway", ca_name, ca_key, server=False)
    files = {
        "ca": ca_cert.public_bytes(serialization.Encoding.PEM),
        "server_cert": server_cert.public_bytes(serialization.Encoding.PEM),
        "server_key": _pem_key(server_key),
        "client_cert": client_cert.public_bytes(serialization.Encoding.PEM),
        "client_key": _pem_key(client_key),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(content)
    return paths


async def test_tls_connects_with_the_configured_ca(
    mosquitto_factory, mqtt_names, mqtt_collect, tmp_path, mqtt_config, make_publisher, power_sample
):
    tls = _write_tls_material(tmp_path)
    broker = mosquitto_factory(
        listener_options=[
            f"cafile {tls['ca']}", f"certfile {tls['server_cert']}", f"keyfile {tls['server_key']}"
        ]
    )
    data = await mqtt_collect(
        broker,
        topics.data(mqtt_names.topic("gw"), "press"),
        tls_context=ssl.create_default_context(cafile=str(tls["ca"])),
    )
    config = mqtt_config(broker, tls={"ca_file": str(tls["ca"])})
    async with make_publisher(config) as publisher:
        publisher.publish_samples("press", [power_sample(1.0)])
        await data.wait_count(1)
    assert data.payloads()[0]["seq"] == 1


async def test_tls_client_certificate_is_presented(
    mosquitto_factory, mqtt_names, mqtt_collect, tmp_path, mqtt_config, make_publisher, power_sample
):
    tls = _write_tls_material(tmp_path)
    broker = mosquitto_factory(
        listener_options=[
            f"cafile {tls['ca']}", f"certfile {tls['server_cert']}", f"keyfile {tls['server_key']}",
            "require_certificate true",
        ]
    )
    subscriber_tls = ssl.create_default_context(cafile=str(tls["ca"]))
    subscriber_tls.load_cert_chain(tls["client_cert"], tls["client_key"])
    data = await mqtt_collect(
        broker, topics.data(mqtt_names.topic("gw"), "press"), tls_context=subscriber_tls
    )
    config = mqtt_config(
        broker,
        tls={
            "ca_file": str(tls["ca"]),
            "cert_file": str(tls["client_cert"]),
            "key_file": str(tls["client_key"]),
        },
    )
    async with make_publisher(config) as publisher:
        publisher.publish_samples("press", [power_sample(1.0)])
        await data.wait_count(1)
    assert data.payloads()[0]["seq"] == 1


async def test_retained_state_is_republished_after_reconnect(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    base = mqtt_names.topic("gw")
    rule_topic = topics.rule_state(base, "chiller")
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        publisher.publish_retained(rule_topic, b'{"mode":"auto"}')
        first = await mqtt_collect(mosquitto, rule_topic)
        await first.wait_count(1)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as operator:
            # The broker forgets the retained state ...
            await operator.publish(rule_topic, b"", qos=1, retain=True)
        # ... and the gateway's session is taken over, so it reconnects.
        gateway_id = mqtt_names.client_id("gw")
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=gateway_id):
            pass
        await first.wait_count(3)  # the clearing, then the state again
        later = await mqtt_collect(mosquitto, rule_topic)
        await later.wait_count(1)
    assert later.messages[0].retain
    assert later.payloads() == [{"mode": "auto"}]
    assert publisher.stats().reconnects == 1


async def test_command_is_answered_on_its_response_topic(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    base = mqtt_names.topic("gw")
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        async def on_command(topic: str, payload: bytes, properties: Properties | None) -> None:
            publisher.respond(properties, b'{"ok":true,"echo":' + payload + b"}")

        publisher.subscribe_commands(on_command)
        await asyncio.wait_for(publisher.connected(), 10)
        replies = await mqtt_collect(mosquitto, mqtt_names.topic("replies"))
        request = Properties(PacketTypes.PUBLISH)
        request.ResponseTopic = mqtt_names.topic("replies")
        request.CorrelationData = b"req-7"
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as operator:
            await operator.publish(f"{base}/cmd/reload", b"1", qos=1, properties=request)
        await replies.wait_count(1)
    assert replies.payloads()[0] == {"ok": True, "echo": 1}
    assert replies.messages[0].properties.CorrelationData == b"req-7"


async def test_command_without_response_topic_is_answered_on_cmd_response(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    base = mqtt_names.topic("gw")
    config = mqtt_config(mosquitto, protocol="3.1.1")
    async with make_publisher(config) as publisher:
        async def on_command(topic: str, payload: bytes, properties: Properties | None) -> None:
            publisher.respond(properties, b'{"topic":"' + topic.encode() + b'"}')

        publisher.subscribe_commands(on_command)
        await asyncio.wait_for(publisher.connected(), 10)
        replies = await mqtt_collect(mosquitto, topics.command_response(base))
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as operator:
            await operator.publish(f"{base}/cmd/rebirth", b"", qos=1)
        await replies.wait_count(1)
        await asyncio.sleep(0.2)  # our own answer must not come back as a command
    assert replies.payloads() == [{"topic": f"{base}/cmd/rebirth"}]


async def test_corrupt_buffer_file_is_moved_aside_and_publisher_starts(
    mosquitto, mqtt_names, mqtt_collect, tmp_path, mqtt_config, make_publisher, power_sample
):
    state = tmp_path / "state"
    state.mkdir()
    (state / BUFFER_FILE).write_bytes(b"this is not an SQLite database" * 100)
    data = await mqtt_collect(mosquitto, topics.data(mqtt_names.topic("gw"), "press"))
    async with make_publisher(mqtt_config(mosquitto), state) as publisher:
        publisher.publish_samples("press", [power_sample(1.0)])
        await data.wait_count(1)
    moved = list(state.glob(f"{BUFFER_FILE}.corrupt-*"))
    assert len(moved) == 1
    assert moved[0].read_bytes().startswith(b"this is not an SQLite database")


async def test_health_is_published_live_when_connected(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    health = await mqtt_collect(mosquitto, topics.health(mqtt_names.topic("gw")))
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        await asyncio.wait_for(publisher.connected(), 10)
        publisher.publish_health({"loop_lag_ms": 1.5, **publisher.stats().as_dict()})
        await health.wait_count(1)
    payload = health.payloads()[0]
    assert payload["loop_lag_ms"] == 1.5
    assert payload["connected"] is True
    assert payload["buffer_depth"] == 0
    assert isinstance(payload["ts"], int)


async def test_health_is_not_buffered_while_the_broker_is_away(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher
):
    health = await mqtt_collect(
        mosquitto, topics.health(mqtt_names.topic("gw")), persistent=True, protocol="3.1.1"
    )
    mosquitto.stop()
    async with make_publisher(mqtt_config(mosquitto)) as publisher:
        publisher.publish_health({"loop_lag_ms": 1.5})
        assert publisher.stats().health_skipped == 1
        mosquitto.start()
        await asyncio.wait_for(publisher.connected(), 10)
        publisher.publish_health({"loop_lag_ms": 2.5})
        await health.wait_count(1)
    assert [payload["loop_lag_ms"] for payload in health.payloads()] == [2.5]


async def test_publisher_is_reusable_but_not_reentrant(
    mosquitto, mqtt_names, mqtt_collect, mqtt_config, make_publisher, power_sample
):
    data = await mqtt_collect(mosquitto, topics.data(mqtt_names.topic("gw"), "press"))
    publisher = make_publisher(mqtt_config(mosquitto))
    async with publisher:
        with pytest.raises(PublisherReentryError):
            await publisher.__aenter__()
        publisher.publish_samples("press", [power_sample(1.0)])
    with pytest.raises(PublisherNotRunningError):
        publisher.publish_samples("press", [power_sample(2.0)])
    async with publisher:
        publisher.publish_samples("press", [power_sample(3.0)])
    await data.wait_count(2)
    assert [p["values"]["power_kw"]["v"] for p in data.payloads()] == [1.0, 3.0]

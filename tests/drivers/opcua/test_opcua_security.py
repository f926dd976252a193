"""Security: Basic256Sha256 SignAndEncrypt with a user, the client certificate made once,
server certificates trusted on first use or pinned; a wrong password, an untrusted server
certificate or a policy the server does not offer fail clearly and leave other devices alone.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from asyncua.crypto import cert_gen
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import DNSName, UniformResourceIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID
from opcua_peers import USERS, Recorder, device, good, running

from controller.model import LinkState
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.security import TRUSTED_SERVER_CERT_FILE, fingerprint

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECURE = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt"}


def _tags(sim):
    return [{"name": "pressure", "node": sim.node_id("compressor.pressure_bar")}]


def _other_device(sim, recorder: Recorder) -> OpcUaDriver:
    """A second device on the same server, anonymous and without security."""
    return OpcUaDriver(device(sim.endpoint, _tags(sim), name="other"), recorder.context())


def _foreign_certificate(path: Path) -> Path:
    """A well-formed server certificate that is not the simulated server's."""
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "impostor",
        {},
        [UniformResourceIdentifier("urn:impostor"), DNSName(socket.gethostname())],
        [ExtendedKeyUsageOID.SERVER_AUTH],
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return path


async def test_sign_and_encrypt_with_user_and_password_connects(sim, recorder: Recorder):
    config = device(
        sim.endpoint,
        _tags(sim),
        security=SECURE,
        auth={"username": "operator", "password": USERS["operator"]},
    )
    driver = OpcUaDriver(config, recorder.context())
    async with running(driver):
        await recorder.wait_state("plc", LinkState.CONNECTED)
        sample = await recorder.wait_sample("plc", "pressure", good)
    assert sample.value == sim.plant.read_point("compressor.pressure_bar")


async def test_first_connect_trusts_and_saves_the_server_certificate(sim, recorder: Recorder):
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim), security=SECURE), recorder.context())
    async with running(driver):
        await recorder.wait_state("plc", LinkState.CONNECTED)
    saved = recorder.state_dir / "opcua" / "plc" / TRUSTED_SERVER_CERT_FILE
    assert saved.read_bytes() == sim.certificate_path.read_bytes()


async def test_wrong_password_fails_clearly_while_another_device_runs(sim, recorder: Recorder):
    config = device(
        sim.endpoint,
        _tags(sim),
        security=SECURE,
        auth={"username": "operator", "password": "wrong"},
    )
    failing = OpcUaDriver(config, recorder.context())
    other = _other_device(sim, recorder)
    async with running(failing, other):
        status = await recorder.wait_state("plc", LinkState.FAILED)
        await recorder.wait_sample("other", "pressure", good)
    assert status.last_error == (
        "the server refused user 'operator': BadUserAccessDenied (wrong user name or password?)"
    )
    assert recorder.status_of("other").state is not LinkState.FAILED


async def test_untrusted_server_certificate_fails_clearly_while_another_device_runs(
    sim, recorder: Recorder, tmp_path: Path
):
    pinned = _foreign_certificate(tmp_path / "pinned.der")
    config = device(sim.endpoint, _tags(sim), security={**SECURE, "server_cert": str(pinned)})
    failing = OpcUaDriver(config, recorder.context())
    other = _other_device(sim, recorder)
    async with running(failing, other):
        status = await recorder.wait_state("plc", LinkState.FAILED)
        await recorder.wait_sample("other", "pressure", good)
    presented = fingerprint(sim.certificate_path.read_bytes())
    assert status.last_error == (
        f"the server's certificate (SHA-256 {presented}) is not the pinned {pinned} "
        f"(SHA-256 {fingerprint(pinned.read_bytes())})"
    )
    assert recorder.status_of("other").state is not LinkState.FAILED


async def test_server_certificate_changed_since_first_use_is_refused(sim, recorder: Recorder):
    trusted = recorder.state_dir / "opcua" / "plc" / TRUSTED_SERVER_CERT_FILE
    trusted.parent.mkdir(parents=True)
    _foreign_certificate(trusted)
    driver = OpcUaDriver(device(sim.endpoint, _tags(sim), security=SECURE), recorder.context())
    async with running(driver):
        status = await recorder.wait_state("plc", LinkState.FAILED)
    assert status.last_error.startswith(
        "the server's certificate changed since it was first trusted"
    )
    assert "delete that file to trust the new certificate" in status.last_error


async def test_policy_the_server_does_not_offer_fails_clearly_while_another_device_runs(
    sim, recorder: Recorder
):
    config = device(sim.endpoint, _tags(sim), security={"policy": "Basic256Sha256", "mode": "Sign"})
    failing = OpcUaDriver(config, recorder.context())
    other = _other_device(sim, recorder)
    async with running(failing, other):
        status = await recorder.wait_state("plc", LinkState.FAILED)
        await recorder.wait_sample("other", "pressure", good)
    assert status.last_error == (
        "the server does not offer security Basic256Sha256/Sign; "
        "it offers Basic256Sha256/SignAndEncrypt, None/None"
    )


async def test_failed_device_publishes_bad_samples_naming_the_error(sim, recorder: Recorder):
    config = device(sim.endpoint, _tags(sim), auth={"username": "operator", "password": "wrong"})
    driver = OpcUaDriver(config, recorder.context())
    async with running(driver):
        await recorder.wait_state("plc", LinkState.FAILED)
    sample = recorder.last("plc", "pressure")
    assert (sample.value, sample.quality.value) == (None, "bad")
    assert sample.reason.startswith("not connected: the server refused user 'operator'")

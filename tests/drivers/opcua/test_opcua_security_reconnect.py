"""Security survives reconnects: after the server restarts, the driver's new session runs on
exactly the configured policy, mode and user, as the server records it; a server that comes
back offering less security, or presenting another certificate, is refused and never gets a
session. Every server here is a real asyncua server on loopback, restarted on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto.permission_rules import User
from asyncua.server.user_managers import UserManager
from opcua_peers import USERS, Recorder, device, good, new_plant, running, sim_server

from controller.model import LinkState, Quality, Sample
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.security import TRUSTED_SERVER_CERT_FILE, fingerprint
from drivers.sim.opcua_server import SERVER_CERT_FILE, SimEndpoint, SimOpcUaServer
from drivers.sim.plant.plant import Plant

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECURE = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt"}
OPERATOR = {"username": "operator", "password": USERS["operator"]}
# What a restarted server offers unless a test says otherwise: a driver that dropped its
# security on reconnect would find the None endpoint here and use it.
EVERY_ENDPOINT: tuple[SimEndpoint, ...] = (
    "None",
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
)


@dataclass(frozen=True)
class Activation:
    """One ActivateSession the server handled: the user, whether the server accepted it, and
    the security policy and mode of the secure channel it came on."""

    user: str | None
    accepted: bool
    policy: str
    mode: str


SECURE_OPERATOR = Activation("operator", True, "Basic256Sha256", "SignAndEncrypt")


class SessionAudit(UserManager):
    """Put in front of a running server's own user check: every ActivateSession passes
    through `get_user`, which is recorded with the secure channel that carries it."""

    def __init__(self, server: SimOpcUaServer) -> None:
        iserver = server.server.iserver
        self._check = iserver.user_manager
        self._connections = server.server.bserver.clients
        self.activations: list[Activation] = []
        iserver.set_user_manager(self)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        user = self._check.get_user(
            iserver, username=username, password=password, certificate=certificate
        )
        policy, mode = self._channel_security(certificate)
        self.activations.append(Activation(username, user is not None, policy, mode))
        return user

    def _channel_security(self, certificate: bytes | None) -> tuple[str, str]:
        """Policy and mode of the channel whose session is being activated now: its session
        is not active yet and its peer certificate is the one the user check was given.
        (asyncua keeps a connection's channel security in the processor's `_connection`.)"""
        channels = [
            conn.processor._connection.security_policy
            for conn in self._connections
            if conn.processor is not None
            and conn.processor.session is not None
            and not conn.processor.session.is_activated()
            and conn.processor._connection.security_policy.peer_certificate == certificate
        ]
        if len(channels) != 1:
            return f"{len(channels)} candidate channels", "unknown"
        policy = channels[0]
        return policy.URI.rsplit("#", 1)[-1], policy.Mode.name.rstrip("_")


@contextlib.asynccontextmanager
async def serving(
    plant: Plant, cert_dir: Path, **options: Any
) -> AsyncIterator[tuple[SimOpcUaServer, SessionAudit]]:
    """The simulated PLC started (on `port=` if given) with its activations audited; stopped
    on leaving (stopping twice is harmless, so a test may stop it earlier)."""
    options.setdefault("security", EVERY_ENDPOINT)
    server = sim_server(plant, cert_dir, **options)
    await server.start()
    try:
        # Installed before the loop runs again: no client can have activated a session yet.
        yield server, SessionAudit(server)
    finally:
        await server.stop()


def _tags(server: SimOpcUaServer) -> list[dict[str, Any]]:
    return [{"name": "pressure", "node": server.node_id("compressor.pressure_bar")}]


def _reconnected(driver: OpcUaDriver, times: int = 1) -> bool:
    status = driver.status()
    return status.reconnects == times and status.state is LinkState.CONNECTED


async def _connect_attempts(driver: OpcUaDriver, more: int) -> None:
    """Wait until the driver has failed `more` further connect attempts (a repeated error
    is not reported again, so the status is watched)."""
    target = driver.status().consecutive_failures + more
    async with asyncio.timeout(10):
        while driver.status().consecutive_failures < target:  # noqa: ASYNC110  (a counter, not an event)
            await asyncio.sleep(0.05)


def _since(recorder: Recorder, mark: int) -> list[Sample]:
    return [s for s in recorder.samples[mark:] if s.device == "plc" and s.tag == "pressure"]


async def test_restarted_server_gets_a_new_session_with_the_same_policy_mode_and_user(
    sim_cert_dir: Path, recorder: Recorder
):
    plant = new_plant()
    async with serving(plant, sim_cert_dir) as (first, first_audit):
        config = device(first.endpoint, _tags(first), security=SECURE, auth=OPERATOR)
        driver = OpcUaDriver(config, recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            await first.stop()
            await recorder.wait_state("plc", LinkState.RECONNECTING)
            async with serving(plant, sim_cert_dir, port=first.port) as (second, audit):
                await recorder.wait_for(lambda: _reconnected(driver))
                await second.set_value("compressor.pressure_bar", 9.5)
                resumed = await recorder.wait_sample(
                    "plc", "pressure", lambda s: good(s) and s.value == 9.5
                )
    assert first_audit.activations == [SECURE_OPERATOR]
    assert audit.activations == [SECURE_OPERATOR]
    assert resumed.quality is Quality.GOOD


async def test_server_back_without_security_is_refused_until_the_secure_server_returns(
    sim_cert_dir: Path, recorder: Recorder
):
    plant = new_plant()
    async with serving(plant, sim_cert_dir) as (secure, _):
        port = secure.port
        config = device(secure.endpoint, _tags(secure), security=SECURE, auth=OPERATOR)
        driver = OpcUaDriver(config, recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            await secure.stop()
            lost_at = len(recorder.samples)
            async with serving(plant, sim_cert_dir, port=port, security=("None",)) as (
                _insecure,
                insecure_audit,
            ):
                refused = await recorder.wait_state("plc", LinkState.FAILED)
                # Two more attempts against the insecure server, each refused by the driver.
                await _connect_attempts(driver, 2)
                still = (driver.status().state, driver.status().last_error)
            while_insecure = _since(recorder, lost_at)
            async with serving(plant, sim_cert_dir, port=port) as (_back, back_audit):
                await recorder.wait_for(lambda: _reconnected(driver))
                await recorder.wait_sample("plc", "pressure", good)
    expected = (
        "the server does not offer security Basic256Sha256/SignAndEncrypt; it offers None/None"
    )
    assert refused.last_error == expected
    assert still == (LinkState.FAILED, expected)
    assert insecure_audit.activations == []
    assert while_insecure
    assert all(s.quality is Quality.BAD for s in while_insecure)
    assert back_audit.activations == [SECURE_OPERATOR]


async def test_server_back_with_another_certificate_is_refused_after_trust_on_first_use(
    sim, sim_cert_dir: Path, recorder: Recorder, tmp_path: Path
):
    plant = new_plant()
    trusted_file = recorder.state_dir / "opcua" / "plc" / TRUSTED_SERVER_CERT_FILE
    other = OpcUaDriver(
        device(sim.endpoint, _tags(sim), name="other", security=SECURE, auth=OPERATOR),
        recorder.context(),
    )
    async with serving(plant, sim_cert_dir) as (genuine, _):
        config = device(genuine.endpoint, _tags(genuine), security=SECURE, auth=OPERATOR)
        driver = OpcUaDriver(config, recorder.context())
        async with running(driver, other):
            await recorder.wait_sample("plc", "pressure", good)
            trusted = trusted_file.read_bytes()
            await genuine.stop()
            async with serving(plant, tmp_path, port=genuine.port) as (impostor, audit):
                refused = await recorder.wait_state("plc", LinkState.FAILED)
                await _connect_attempts(driver, 1)
                still = driver.status().state
                other_seen = len(recorder.of("other", "pressure"))
                await sim.set_value("compressor.pressure_bar", 8.25)
                await recorder.wait_sample("other", "pressure", lambda s: s.value == 8.25)
                presented = impostor.certificate_path.read_bytes()
    assert refused.last_error == (
        f"the server's certificate changed since it was first trusted: now SHA-256 "
        f"{fingerprint(presented)}, trusted {fingerprint(trusted)} in {trusted_file}; "
        "if the change is expected, delete that file to trust the new certificate"
    )
    assert still is LinkState.FAILED
    assert audit.activations == []
    assert trusted_file.read_bytes() == trusted
    assert all(good(s) for s in recorder.of("other", "pressure")[other_seen:])
    assert all(s.state is not LinkState.FAILED for s in recorder.statuses if s.device == "other")


async def test_server_back_with_another_certificate_than_the_pinned_one_is_refused(
    sim_cert_dir: Path, recorder: Recorder, tmp_path: Path
):
    plant = new_plant()
    async with serving(plant, sim_cert_dir) as (genuine, _):
        pinned = sim_cert_dir / SERVER_CERT_FILE
        security = {**SECURE, "server_cert": str(pinned)}
        config = device(genuine.endpoint, _tags(genuine), security=security, auth=OPERATOR)
        driver = OpcUaDriver(config, recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            await genuine.stop()
            async with serving(plant, tmp_path, port=genuine.port) as (impostor, audit):
                refused = await recorder.wait_state("plc", LinkState.FAILED)
                await _connect_attempts(driver, 1)
                presented = impostor.certificate_path.read_bytes()
    assert refused.last_error == (
        f"the server's certificate (SHA-256 {fingerprint(presented)}) is not the pinned "
        f"{pinned} (SHA-256 {fingerprint(pinned.read_bytes())})"
    )
    assert audit.activations == []


async def test_sign_mode_reconnects_as_sign(sim_cert_dir: Path, recorder: Recorder):
    plant = new_plant()
    async with serving(plant, sim_cert_dir) as (first, first_audit):
        security = {"policy": "Basic256Sha256", "mode": "Sign"}
        config = device(first.endpoint, _tags(first), security=security, auth=OPERATOR)
        driver = OpcUaDriver(config, recorder.context())
        async with running(driver):
            await recorder.wait_sample("plc", "pressure", good)
            await first.stop()
            await recorder.wait_state("plc", LinkState.RECONNECTING)
            async with serving(plant, sim_cert_dir, port=first.port) as (second, audit):
                await recorder.wait_for(lambda: _reconnected(driver))
                await second.set_value("compressor.pressure_bar", 6.75)
                await recorder.wait_sample("plc", "pressure", lambda s: good(s) and s.value == 6.75)
    signed = Activation("operator", True, "Basic256Sha256", "Sign")
    assert first_audit.activations == [signed]
    assert audit.activations == [signed]

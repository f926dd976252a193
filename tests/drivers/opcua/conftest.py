"""Fixtures for the OPC UA tests: one simulated server shared by all of them, reset for each
test, and a recorder of what the driver reports. The helpers are in opcua_peers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from opcua_peers import Recorder, new_plant, sim_server

from drivers.sim.opcua_server import SimOpcUaServer


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(state_dir=tmp_path / "state")


@pytest.fixture(scope="session")
def sim_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated server's certificate, made once per test session (RSA keys are slow)."""
    return tmp_path_factory.mktemp("sim-certs")


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def shared_sim(sim_cert_dir: Path) -> AsyncIterator[SimOpcUaServer]:
    """One server for all OPC UA tests (starting one takes seconds: asyncua builds the whole
    standard address space); `sim` resets it for every test. Tests that use it run in the
    session's event loop (`pytest.mark.asyncio(loop_scope="session")`)."""
    async with sim_server(new_plant(), sim_cert_dir) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def sim(shared_sim: SimOpcUaServer) -> SimOpcUaServer:
    """The shared server in front of a fresh plant, every node showing it."""
    shared_sim.plant = new_plant()
    await shared_sim.refresh(force=True)
    return shared_sim

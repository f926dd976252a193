"""A state directory that cannot be written: the daemon runs with its buffer in memory and its
health says so (`buffer_storage: memory`, `buffer_disk_ok: false`); every start numbers its
data in a new epoch, since nothing could be saved; and it still keeps a second daemon out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.daemon import gateway_config, modbus_device
from tests.read_only import read_only_directory

BASE = "edgecell/readonly"


@pytest.fixture
def read_only_state_dir(tmp_path: Path) -> Iterator[Path]:
    with read_only_directory(tmp_path / "state") as path:
        yield path


async def test_a_read_only_state_dir_is_reported_and_every_start_is_a_new_epoch(
    read_only_state_dir: Path,  # before start_daemon: made writable after the daemons are gone
    mosquitto: Any,
    mqtt_collect: Any,
    counter_server: Any,
    start_daemon: Any,
) -> None:
    server = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    health = await mqtt_collect(mosquitto, f"{BASE}/health")
    config = gateway_config(
        "readonly", read_only_state_dir, mosquitto,
        [modbus_device("press", server.port, poll="100ms")],
    )
    epochs = []
    for run in range(2):
        started_ms = int(time.time() * 1000)
        daemon = start_daemon(config)
        await health.wait_for(
            lambda _, t=started_ms: any(p["ts"] >= t for p in health.payloads()), 20
        )
        await data.wait_for(
            lambda _, t=started_ms: sum(p["ts"] >= t for p in data.payloads()) >= 3, 20
        )
        mqtt = health.payloads()[-1]["mqtt"]
        assert mqtt["buffer_disk_ok"] is False, mqtt
        assert mqtt["buffer_storage"] == "memory", mqtt
        this_run = [p for p in data.payloads() if p["ts"] >= started_ms]
        epochs.append({p.get("epoch") for p in this_run})
        assert min(p["seq"] for p in this_run) == 1
        if run == 0:
            # Even without a lock file (nothing can be created) a second daemon is refused.
            second = start_daemon(config)
            assert await asyncio.to_thread(second.process.wait, 20) == 1, second.log_tail()
            assert any(e.get("event") == "state_dir_in_use" for e in second.log_events())
        assert await daemon.stop() == 0, daemon.log_tail()
    assert all(len(run_epochs) == 1 for run_epochs in epochs), epochs
    assert epochs[0] != epochs[1], "two starts numbered their data in the same epoch"

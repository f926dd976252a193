"""Two daemons on one state directory: the second refuses to start, naming the holder's pid,
before it touches a device or the broker; a killed holder leaves no lock behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from controller.statedir import LOCK_FILE
from tests.faults.daemon import Daemon, gateway_config, modbus_device

BASE = "edgecell/statelock"


async def exited_within(daemon: Daemon, seconds: float) -> int | None:
    """The exit status, or None if it still runs after `seconds`."""
    assert daemon.process is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = daemon.process.poll()
        if status is not None:
            return status
        await asyncio.sleep(0.1)
    return None


async def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    server = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    status = await mqtt_collect(mosquitto, f"{BASE}/status")
    state = tmp_path / "state"
    config = gateway_config(
        "statelock", state, mosquitto, [modbus_device("press", server.port, poll="100ms")]
    )
    first = start_daemon(config)
    await data.wait_count(3, 20)
    assert (state / LOCK_FILE).read_text().strip() == str(first.pid)
    first_started = {p["started"] for p in status.payloads() if p["state"] == "online"}

    second = start_daemon(config)
    exit_status = await exited_within(second, 20)
    assert exit_status is not None, f"the second daemon still runs:\n{second.log_tail()}"
    assert exit_status != 0
    events = second.log_events()
    refusal = [e for e in events if e.get("event") == "state_dir_in_use"]
    assert refusal, second.log_tail()
    assert refusal[0]["holder_pid"] == first.pid
    assert f"process {first.pid}" in refusal[0]["error"]
    # It touched neither a device nor the broker, nor the buffer; the first one goes on.
    touched = {"mqtt_connected", "mqtt_unavailable", "device_state", "buffer_opened"}
    assert not [e for e in events if e.get("event") in touched], second.log_tail()
    await asyncio.sleep(0.5)
    assert {p["started"] for p in status.payloads() if p["state"] == "online"} == first_started
    assert first.running, first.log_tail()

    # The kernel drops the lock with its holder, even on SIGKILL: the next start runs.
    first.kill()
    third = start_daemon(config)
    started_ms = int(time.time() * 1000)
    await data.wait_for(lambda _: any(p["ts"] >= started_ms for p in data.payloads()), 20)
    assert third.running, third.log_tail()
    assert (state / LOCK_FILE).read_text().strip() == str(third.pid)
    assert await third.stop() == 0, third.log_tail()

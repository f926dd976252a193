"""The daemon is SIGKILLed while the broker is away, started again, and then the broker comes
back: with `mqtt.buffer.durability: always`, every message the first daemon had accepted (on
disk, which is what "accepted" means in that mode) is delivered, and each device's seq goes on
from where it stopped: 1..N with no gap across the restart."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from controller.mqtt.buffer import BUFFER_FILE
from tests.faults.daemon import gateway_config, modbus_device
from tests.faults.delivery import assert_every_seq_in_order, complete, seqs_by_device

BASE = "edgecell/sigkill"
DEVICES = ("press", "oven")


def accepted_on_disk(state_dir: Path, copy_to: Path) -> dict[str, set[int]]:
    """The data messages in the buffer file of a killed daemon, by device. Read from a copy, so
    that opening it (SQLite recovers the WAL on open) leaves the daemon's file as it was."""
    copy_to.mkdir()
    for suffix in ("", "-wal"):
        source = state_dir / f"{BUFFER_FILE}{suffix}"
        if source.exists():
            shutil.copy(source, copy_to / source.name)
    db = sqlite3.connect(copy_to / BUFFER_FILE)
    try:
        rows = db.execute("SELECT topic, payload FROM messages ORDER BY id").fetchall()
    finally:
        db.close()
    found: dict[str, set[int]] = {}
    for topic, payload in rows:
        if topic.startswith(f"{BASE}/data/"):
            found.setdefault(topic.rsplit("/", 1)[-1], set()).add(orjson.loads(payload)["seq"])
    return found


async def test_sigkill_during_an_outage_loses_no_accepted_message_and_seq_goes_on(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    servers = [await counter_server() for _ in DEVICES]
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+", persistent=True, protocol="3.1.1")
    state = tmp_path / "state"
    devices = [
        modbus_device(name, server.port, poll="100ms")
        for name, server in zip(DEVICES, servers, strict=True)
    ]
    config = gateway_config("sigkill", state, mosquitto, devices, buffer={"durability": "always"})
    first = start_daemon(config)
    await data.wait_for(lambda _: all(len(seqs_by_device(data).get(d, [])) >= 5 for d in DEVICES))
    mosquitto.stop()
    await asyncio.sleep(3.0)  # ~30 messages per device, only in the buffer
    first.kill()
    on_disk = accepted_on_disk(state, tmp_path / "copy")
    for device in DEVICES:
        assert len(on_disk.get(device, ())) >= 20, (device, on_disk)

    second = start_daemon(config)
    second_started_ms = int(time.time() * 1000)
    await asyncio.sleep(1.0)  # the second daemon polls and buffers while the broker is away
    mosquitto.start()

    def done(_: object) -> bool:
        received = seqs_by_device(data)
        return all(
            complete(received.get(d, [])) and max(received[d]) > max(on_disk[d]) + 20
            for d in DEVICES
        )

    await data.wait_for(done, 30)
    print(
        "\nSIGKILLed with "
        + ", ".join(f"{d}: seq {min(on_disk[d])}..{max(on_disk[d])}" for d in DEVICES)
        + " on disk only; all delivered after the restart"
    )
    assert await second.stop() == 0, second.log_tail()
    received = seqs_by_device(data)
    for device in DEVICES:
        assert on_disk[device] <= set(received[device]), device
        assert_every_seq_in_order(device, received[device])
        # The second daemon's first message of this device carries the next seq.
        second_run = [
            p["seq"]
            for m, p in zip(data.messages, data.payloads(), strict=True)
            if m.topic.value.endswith(f"/{device}") and p["ts"] >= second_started_ms
        ]
        assert min(second_run) == max(on_disk[device]) + 1, device

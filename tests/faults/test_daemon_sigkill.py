"""The daemon is SIGKILLed while the broker is away, started again, and then the broker comes
back: with `mqtt.buffer.durability: always`, every message the first daemon had accepted (on
disk, which is what "accepted" means in that mode) is delivered. The second daemon cannot prove
the counters it found continuous (the first was killed), so it numbers its data in a new epoch
from seq 1: no (epoch, seq) is used twice, and each epoch is complete and in order."""

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
from tests.faults.delivery import arrivals_by_device, assert_delivered_in_order, complete

BASE = "edgecell/sigkill"
DEVICES = ("press", "oven")


def accepted_on_disk(state_dir: Path, copy_to: Path) -> dict[str, set[tuple[str, int]]]:
    """The (epoch, seq) of the data messages in the buffer file of a killed daemon, by device.
    Read from a copy, so that opening it (SQLite recovers the WAL on open) leaves the daemon's
    file as it was."""
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
    found: dict[str, set[tuple[str, int]]] = {}
    for topic, payload in rows:
        if topic.startswith(f"{BASE}/data/"):
            message = orjson.loads(payload)
            found.setdefault(topic.rsplit("/", 1)[-1], set()).add(
                (message.get("epoch", ""), message["seq"])
            )
    return found


def by_epoch(collector: Any, device: str) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for arrival in arrivals_by_device(collector).get(device, []):
        seqs.setdefault(arrival.epoch, []).append(arrival.seq)
    return seqs


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
    await data.wait_for(
        lambda _: all(len(arrivals_by_device(data).get(d, [])) >= 5 for d in DEVICES)
    )
    first_epoch = data.payloads()[0].get("epoch", "")
    mosquitto.stop()
    await asyncio.sleep(3.0)  # ~30 messages per device, only in the buffer
    first.kill()
    on_disk = accepted_on_disk(state, tmp_path / "copy")
    for device in DEVICES:
        assert len(on_disk.get(device, ())) >= 20, (device, on_disk)
        assert {epoch for epoch, _ in on_disk[device]} == {first_epoch}

    second = start_daemon(config)
    second_started_ms = int(time.time() * 1000)
    await asyncio.sleep(1.0)  # the second daemon polls and buffers while the broker is away
    mosquitto.start()

    def done(_: object) -> bool:
        for device in DEVICES:
            received = by_epoch(data, device)
            newer = [seqs for epoch, seqs in received.items() if epoch != first_epoch]
            if not (complete(received.get(first_epoch, []))
                    and {seq for _, seq in on_disk[device]} <= set(received[first_epoch])
                    and newer and len(newer[0]) >= 20):
                return False
        return True

    await data.wait_for(done, 30)
    print(
        "\nSIGKILLed with "
        + ", ".join(
            f"{d}: seq {min(s for _, s in on_disk[d])}..{max(s for _, s in on_disk[d])}"
            for d in DEVICES
        )
        + " on disk only; all delivered after the restart"
    )
    assert await second.stop() == 0, second.log_tail()
    for device in DEVICES:
        epochs = assert_delivered_in_order(device, arrivals_by_device(data)[device])
        assert {seq for _, seq in on_disk[device]} <= set(epochs[first_epoch]), device
        # The second daemon's data: one new epoch, from seq 1.
        second_run = {
            p.get("epoch", "")
            for m, p in zip(data.messages, data.payloads(), strict=True)
            if m.topic.value.endswith(f"/{device}") and p["ts"] >= second_started_ms
        }
        assert len(second_run) == 1, second_run
        assert first_epoch not in second_run, device
        assert min(epochs[second_run.pop()]) == 1, device

"""The broker goes away for a minute while two devices publish at 10 Hz (every poll a new value),
then comes back: a subscriber with a persistent session gets every seq of both devices at least
once, in order per device, none missing. Prints the recovery time.

The broker is stopped with SIGTERM, which lets mosquitto save the subscriber's session: a
SIGKILLed broker loses what it had acknowledged and not yet delivered, which no publisher can
recover (and which would fail this test for the broker's reasons, not edgecell's).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.daemon import gateway_config, modbus_device
from tests.faults.delivery import (
    arrivals_by_device,
    assert_delivered_in_order,
    complete,
    seqs_by_device,
)

BASE = "edgecell/outage"
DEVICES = ("press", "oven")
OUTAGE_S = 60.0


@pytest.mark.timeout(OUTAGE_S + 90)
async def test_broker_outage_of_a_minute_loses_no_seq_of_either_device(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    servers = [await counter_server() for _ in DEVICES]
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+", persistent=True, protocol="3.1.1")
    health = await mqtt_collect(mosquitto, f"{BASE}/health")
    devices = [
        modbus_device(name, server.port, poll="100ms")
        for name, server in zip(DEVICES, servers, strict=True)
    ]
    daemon = start_daemon(gateway_config("outage", tmp_path / "state", mosquitto, devices))

    def seqs() -> dict[str, list[int]]:
        return seqs_by_device(data)

    await data.wait_for(lambda _: all(len(seqs().get(d, [])) >= 10 for d in DEVICES), 20)
    mosquitto.stop()
    stopped_at = time.time()
    await asyncio.sleep(OUTAGE_S)
    assert daemon.running, daemon.log_tail()
    mosquitto.start()
    back = time.monotonic()
    back_ms = int(time.time() * 1000)

    def drained(_: object) -> bool:
        """Backlog drained: live data (built after the broker came back) has arrived, and
        nothing below it is missing."""
        latest_ts: dict[str, int] = {}
        for message, payload in zip(data.messages, data.payloads(), strict=True):
            device = message.topic.value.rsplit("/", 1)[-1]
            latest_ts[device] = max(latest_ts.get(device, 0), payload["ts"])
        received = seqs()
        return all(latest_ts.get(d, 0) >= back_ms and complete(received[d]) for d in DEVICES)

    await data.wait_for(drained, 60)
    recovery_s = time.monotonic() - back
    in_outage = len(
        {
            (message.topic.value, payload["seq"])
            for message, payload in zip(data.messages, data.payloads(), strict=True)
            if stopped_at * 1000 <= payload["ts"] < back_ms
        }
    )
    # The gateway's own view agrees: its buffer is empty again (a few live messages in flight).
    await health.wait_for(
        lambda m: bool(m) and health.payloads()[-1]["mqtt"]["buffer_depth"] < 5, 10
    )
    print(
        f"\nbroker away {OUTAGE_S:.0f} s; {in_outage} data messages built meanwhile; broker back "
        f"-> backlog drained and live data caught up in {recovery_s:.2f} s "
        f"(reconnect backoff up to reconnect_max 1 s, drain_rate 500/s)"
    )
    assert await daemon.stop() == 0, daemon.log_tail()
    for device in DEVICES:
        # One run, one epoch: every seq of it, in order, none reused for other data.
        epochs = assert_delivered_in_order(device, arrivals_by_device(data)[device])
        assert len(epochs) == 1, (device, list(epochs))
    assert in_outage >= OUTAGE_S * 10 * len(DEVICES) * 0.9

"""The broker goes away for 15 s while an OPC UA device publishes subscribed changes (its server
changes a value at 10 Hz) beside a Modbus device polled at 10 Hz, then comes back: a subscriber
with a persistent session gets every seq of the OPC UA device at least once, in order, none
missing, and the values in seq order are the server's changes in the order it made them.

As in test_broker_outage.py, the broker is stopped with SIGTERM so that it keeps the
subscriber's session.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.daemon import gateway_config, modbus_device, opcua_device
from tests.faults.delivery import (
    arrivals_by_device,
    assert_delivered_in_order,
    complete,
    seqs_by_device,
    values_by_device,
)
from tests.faults.opcua_server import POLLED, SUBSCRIBED

BASE = "edgecell/ua-outage"
DEVICES = ("plc", "press")
OUTAGE_S = 15.0


@pytest.mark.timeout(OUTAGE_S + 60)
async def test_broker_outage_loses_no_seq_of_an_opcua_device_publishing_subscribed_changes(
    tmp_path: Path,
    mosquitto: Any,
    mqtt_collect: Any,
    counter_server: Any,
    opcua_server_process: Any,
    start_daemon: Any,
) -> None:
    plc = await opcua_server_process()
    press = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+", persistent=True, protocol="3.1.1")
    devices = [
        opcua_device("plc", plc.port, subscribed=SUBSCRIBED, polled=POLLED),
        modbus_device("press", press.port, poll="100ms"),
    ]
    daemon = start_daemon(gateway_config("ua-outage", tmp_path / "state", mosquitto, devices))

    def seqs() -> dict[str, list[int]]:
        return seqs_by_device(data)

    await data.wait_for(lambda _: all(len(seqs().get(d, [])) >= 10 for d in DEVICES), 20)
    mosquitto.stop()
    stopped_ms = int(time.time() * 1000)
    await asyncio.sleep(OUTAGE_S)
    assert daemon.running, daemon.log_tail()
    mosquitto.start()
    back_ms = int(time.time() * 1000)

    def drained(_: object) -> bool:
        """Live data (built after the broker came back) has arrived for both devices, and
        nothing below it is missing."""
        latest_ts: dict[str, int] = {}
        for message, payload in zip(data.messages, data.payloads(), strict=True):
            device = message.topic.value.rsplit("/", 1)[-1]
            latest_ts[device] = max(latest_ts.get(device, 0), payload["ts"])
        received = seqs()
        return all(latest_ts.get(d, 0) >= back_ms and complete(received[d]) for d in DEVICES)

    await data.wait_for(drained, 30)
    assert await daemon.stop() == 0, daemon.log_tail()

    in_outage = {
        payload["seq"]
        for message, payload in zip(data.messages, data.payloads(), strict=True)
        if message.topic.value.endswith("/plc") and stopped_ms <= payload["ts"] < back_ms
    }
    print(f"\nOPC UA device: {len(in_outage)} data messages built while the broker was away")
    assert len(in_outage) >= OUTAGE_S * 10 * 0.7
    for device in DEVICES:
        # One run, one epoch: every seq of it, in order, none reused for other data.
        epochs = assert_delivered_in_order(device, arrivals_by_device(data)[device])
        assert len(epochs) == 1, (device, list(epochs))
    ticks = [entry for _seq, entry in sorted(values_by_device(data, "ticks")["plc"])]
    assert all(entry["q"] == "good" for entry in ticks)
    assert all(a["v"] < b["v"] for a, b in itertools.pairwise(ticks)), "ticks out of order"

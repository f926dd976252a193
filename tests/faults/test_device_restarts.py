"""A Modbus device server process is SIGKILLed and started again ten times in a row: edgecell
reconnects every time (its device status goes to reconnecting, then back to connected, and
counts the reconnects), while a second device on the same daemon keeps its poll cadence: every
interval between two of its polls stays within 10% of its poll interval throughout.

The cadence is measured from the data: the second device's register changes at every read, so
each poll gives one message, and the `ts` of its value is the time of that read.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.faults.daemon import gateway_config, modbus_device
from tests.faults.delivery import values_by_device

BASE = "edgecell/restarts"
RESTARTS = 10
STEADY_POLL_S = 0.5
TOLERANCE = 0.10
DOWN_S = 0.5  # how long the killed server stays away each time


@pytest.mark.timeout(150)
async def test_a_device_killed_ten_times_is_reconnected_and_its_neighbour_keeps_cadence(
    tmp_path: Path,
    mosquitto: Any,
    mqtt_collect: Any,
    counter_server_process: Any,
    start_daemon: Any,
) -> None:
    flaky = await counter_server_process()
    steady = await counter_server_process()
    statuses = await mqtt_collect(mosquitto, f"{BASE}/devices/flaky/status")
    data = await mqtt_collect(mosquitto, f"{BASE}/data/steady")
    devices = [
        modbus_device("flaky", flaky.port, poll="100ms", timeout="300ms"),
        modbus_device("steady", steady.port, poll=f"{STEADY_POLL_S * 1000:.0f}ms"),
    ]
    daemon = start_daemon(gateway_config("restarts", tmp_path / "state", mosquitto, devices))

    def state() -> tuple[str, int] | None:
        payloads = statuses.payloads()
        return (payloads[-1]["state"], payloads[-1]["reconnects"]) if payloads else None

    await statuses.wait_for(lambda _: state() is not None and state()[0] == "connected", 20)  # type: ignore[index]
    await data.wait_count(5)
    measured_from = len(data.messages)
    for restart in range(1, RESTARTS + 1):
        await flaky.kill()
        await statuses.wait_for(lambda _: state()[0] == "reconnecting", 10)  # type: ignore[index]
        await asyncio.sleep(DOWN_S)  # connection attempts are refused meanwhile
        await flaky.start()
        await statuses.wait_for(
            lambda _, n=restart: state() == ("connected", n), 20
        )
    measured_to = len(data.messages)
    assert daemon.running, daemon.log_tail()
    assert await daemon.stop() == 0, daemon.log_tail()

    # Every poll of the steady device during the ten restarts, by its read time.
    polls = values_by_device(data, "counter")["steady"]
    window = {p["seq"] for p in data.payloads()[measured_from:measured_to]}
    times = [entry["ts"] for seq, entry in polls if seq in window]
    assert all(entry["q"] == "good" for seq, entry in polls if seq in window)
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    worst = max(intervals, key=lambda i: abs(i - STEADY_POLL_S))
    print(
        f"\n{RESTARTS} restarts over {sum(intervals):.1f} s; steady device: {len(intervals)} "
        f"intervals, median {statistics.median(intervals) * 1000:.0f} ms, "
        f"worst {worst * 1000:.0f} ms (poll_interval {STEADY_POLL_S * 1000:.0f} ms)"
    )
    assert len(intervals) >= RESTARTS
    assert abs(worst - STEADY_POLL_S) <= TOLERANCE * STEADY_POLL_S

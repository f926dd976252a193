"""An OPC UA server process is SIGKILLed and started again on the same port five times in a row:
the daemon reconnects every time (device status `reconnecting`, then `connected` with the
reconnect counted, and in its log one warning for the loss and one for the refused reconnect,
nothing more) and data resumes with good quality from the new server, each run of the
server sees exactly one session with exactly one subscription (never two live at once), and a
Modbus device on the same daemon keeps its poll cadence: every interval between two of its
polls stays within 10 % of its poll interval throughout.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.faults.daemon import gateway_config, modbus_device, opcua_device
from tests.faults.delivery import values_by_device
from tests.faults.opcua_server import POLLED, SUBSCRIBED

BASE = "edgecell/ua-restarts"
RESTARTS = 5
STEADY_POLL_S = 0.5
TOLERANCE = 0.10
DOWN_S = 0.5  # how long the killed server stays away (connection attempts are refused)


def _latest(collector: Any, device: str, tag: str) -> dict[str, Any] | None:
    """The latest value entry of `tag` that arrived on `{base}/data/{device}`."""
    entries = values_by_device(collector, tag).get(device, [])
    return entries[-1][1] if entries else None


@pytest.mark.timeout(60)
async def test_an_opcua_server_killed_five_times_gets_one_session_and_subscription_each_time(
    tmp_path: Path,
    mosquitto: Any,
    mqtt_collect: Any,
    counter_server_process: Any,
    opcua_server_process: Any,
    start_daemon: Any,
) -> None:
    plc = await opcua_server_process()
    steady = await counter_server_process()
    statuses = await mqtt_collect(mosquitto, f"{BASE}/devices/plc/status")
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    devices = [
        opcua_device("plc", plc.port, subscribed=SUBSCRIBED, polled=POLLED),
        modbus_device("steady", steady.port, poll=f"{STEADY_POLL_S * 1000:.0f}ms"),
    ]
    daemon = start_daemon(gateway_config("ua-restarts", tmp_path / "state", mosquitto, devices))

    def state() -> tuple[str, int]:
        payloads = statuses.payloads()
        return (payloads[-1]["state"], payloads[-1]["reconnects"]) if payloads else ("", -1)

    def serving(started: float) -> bool:
        """Good data from the server run that started at `started`: its start time (polled)
        and a tick (subscribed) that arrived after it."""
        polled, ticks = _latest(data, "plc", "started"), _latest(data, "plc", "ticks")
        return (
            polled is not None and polled["q"] == "good" and polled["v"] == started
            and ticks is not None and ticks["q"] == "good" and ticks["ts"] > started
        )

    await statuses.wait_for(lambda _: state() == ("connected", 0), 20)
    await data.wait_for(lambda _: serving(plc.run.started), 10)
    measured_from = len(data.messages)
    for restart in range(1, RESTARTS + 1):
        await plc.kill()
        await statuses.wait_for(lambda _: state()[0] == "reconnecting", 10)
        await data.wait_for(lambda _: _latest(data, "plc", "ticks")["q"] == "bad", 5)  # type: ignore[index]
        await asyncio.sleep(DOWN_S)
        await plc.start()
        await statuses.wait_for(lambda _, n=restart: state() == ("connected", n), 20)
        await data.wait_for(lambda _: serving(plc.run.started), 10)
    measured_to = len(data.messages)
    await asyncio.sleep(1.0)  # a second session or subscription would show by now
    assert daemon.running, daemon.log_tail()
    assert await daemon.stop() == 0, daemon.log_tail()

    seen = [
        (run.sessions, run.subscriptions_created, run.most_live_subscriptions) for run in plc.runs
    ]
    print(f"\nper server run (sessions, subscriptions, most live at once): {seen}")
    assert seen == [(1, 1, 1)] * (RESTARTS + 1)
    for run in plc.runs:
        assert [e["live_of_session"] for e in run.of("subscription_created")] == [1]
    complaints = [
        (e.get("device", e["logger"]), e["event"])
        for e in daemon.log_events()
        if e.get("level") in {"warning", "error", "critical"}
    ]
    per_restart = [("plc", "opcua_connection_lost"), ("plc", "opcua_connect_failed")]
    assert complaints == per_restart * RESTARTS

    # Every poll of the steady device during the restarts, by its read time.
    polls = values_by_device(data, "counter")["steady"]
    during = zip(data.messages, data.payloads(), strict=True)
    window = {
        payload["seq"]
        for i, (message, payload) in enumerate(during)
        if measured_from <= i < measured_to and message.topic.value.endswith("/steady")
    }
    times = [entry["ts"] for seq, entry in polls if seq in window]
    assert all(entry["q"] == "good" for seq, entry in polls if seq in window)
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    worst = max(intervals, key=lambda i: abs(i - STEADY_POLL_S))
    print(
        f"{RESTARTS} restarts over {sum(intervals):.1f} s; steady device: {len(intervals)} "
        f"intervals, median {statistics.median(intervals) * 1000:.0f} ms, "
        f"worst {worst * 1000:.0f} ms (poll_interval {STEADY_POLL_S * 1000:.0f} ms)"
    )
    assert len(intervals) >= 2 * RESTARTS
    assert abs(worst - STEADY_POLL_S) <= TOLERANCE * STEADY_POLL_S

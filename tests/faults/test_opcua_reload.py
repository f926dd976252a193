"""Hot reload (SIGHUP) of a config in which the Modbus device changed and the OPC UA device did
not: the Modbus change is applied (its new poll interval takes effect) while the OPC UA device
keeps its session: its server sees no new session and no new or deleted subscription, and its
subscribed data goes on with good quality and no gap in seq."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from pathlib import Path
from typing import Any

from tests.faults.daemon import gateway_config, modbus_device, opcua_device
from tests.faults.delivery import complete, seqs_by_device, values_by_device
from tests.faults.opcua_server import POLLED, SUBSCRIBED

BASE = "edgecell/ua-reload"


def last_seq(collector: Any, device: str, tag: str) -> int:
    return max((seq for seq, _ in values_by_device(collector, tag).get(device, [])), default=0)


async def test_a_reload_that_changes_the_modbus_device_keeps_the_opcua_session(
    tmp_path: Path,
    mosquitto: Any,
    mqtt_collect: Any,
    counter_server: Any,
    opcua_server_process: Any,
    start_daemon: Any,
) -> None:
    plc = await opcua_server_process()
    press = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    events = await mqtt_collect(mosquitto, f"{BASE}/events/config")
    state = tmp_path / "state"
    ua = opcua_device("plc", plc.port, subscribed=SUBSCRIBED, polled=POLLED)
    daemon = start_daemon(
        gateway_config("ua-reload", state, mosquitto, [ua, modbus_device("press", press.port)])
    )
    await data.wait_for(
        lambda _: last_seq(data, "plc", "ticks") >= 5 and last_seq(data, "press", "counter") >= 5,
        20,
    )
    seen_by_plc = list(plc.run.events)
    assert (plc.run.sessions, plc.run.subscriptions_created) == (1, 1), seen_by_plc

    retimed = modbus_device("press", press.port, poll="300ms")
    daemon.write_config(gateway_config("ua-reload", state, mosquitto, [ua, retimed]))
    daemon.reload()
    await events.wait_count(1, 10)
    assert events.payloads()[0]["ok"] is True, events.payloads()
    plc_from = last_seq(data, "plc", "ticks")
    press_from = last_seq(data, "press", "counter") + 1  # polls after the reload, give or take one
    await data.wait_for(lambda _: last_seq(data, "press", "counter") >= press_from + 6, 10)
    await asyncio.sleep(1.0)  # a new session or subscription would show by now
    seen_after_reload = plc.run.events[len(seen_by_plc) :]
    assert daemon.running, daemon.log_tail()
    assert await daemon.stop() == 0, daemon.log_tail()

    # The Modbus change is applied.
    polls = values_by_device(data, "counter")["press"]
    times = [entry["ts"] for seq, entry in polls if seq > press_from]
    interval = statistics.median((b - a) / 1000 for a, b in itertools.pairwise(times))
    print(f"\npress polled every {interval * 1000:.0f} ms after the reload (was 100 ms)")
    assert abs(interval - 0.3) < 0.03
    assert press.connections == 2  # the changed device was restarted
    # The OPC UA device was left alone: its server saw no session, subscription or deletion.
    assert seen_after_reload == [], seen_after_reload
    # ... and its subscribed data went on through the reload, good and without a gap.
    ticks = values_by_device(data, "ticks")["plc"]
    after = [(seq, entry) for seq, entry in ticks if seq > plc_from]
    assert len(after) >= 10
    assert all(entry["q"] == "good" for _seq, entry in after)
    assert complete(seqs_by_device(data)["plc"])

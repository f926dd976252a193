"""OPC UA devices whose peer accepts TCP and then misbehaves, served by plain asyncio servers
(tests/faults/bad_peers.py): one never answers (the OPC UA Hello is never acknowledged), one
answers random bytes. Each gives bad-quality samples with a reason and a device status saying
so, one log line per state change (not one per connect attempt), the daemon keeps running, a
Modbus device beside them keeps publishing good data, and the daemon's memory does not grow."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from tests.faults.bad_peers import BadPeer, never_answers, random_bytes
from tests.faults.daemon import gateway_config, modbus_device, opcua_device
from tests.faults.delivery import latest
from tests.faults.opcua_server import POLLED, SUBSCRIBED

BASE = "edgecell/ua-misbehaving"
BAD = {"silent": never_answers, "garbage": random_bytes}
# Random bytes almost never make a whole OPC UA message header: asyncua waits for the rest of
# a message that never comes, as it does for the silent peer's answer.
REASON = "timeout while connecting"
# The same memory check as test_misbehaving_devices.py: RSS read every second for WATCH_S after
# WARM_UP_S of failing connects; its growth stays under RSS_GROWTH_BOUND.
WARM_UP_S = 6.0
WATCH_S = 15.0
RSS_GROWTH_BOUND = 1024 * 1024


def _config(tmp_path: Path, broker: Any, bad: dict[str, int], modbus_port: int) -> dict[str, Any]:
    """The bad peers as OPC UA devices (each connect given up after 500 ms, retried within
    100-500 ms), and a healthy Modbus device."""
    devices = [
        opcua_device(
            name, port, subscribed=SUBSCRIBED, polled=POLLED,
            timeout="500ms", connect_timeout="1s", reconnect_max="500ms",
        )
        for name, port in bad.items()
    ]
    devices.append(modbus_device("healthy", modbus_port))
    return gateway_config("ua-misbehaving", tmp_path / "state", broker, devices)


async def test_misbehaving_opcua_peers_give_bad_quality_a_reason_a_status_and_one_log_line(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    healthy = await counter_server()
    async with contextlib.AsyncExitStack() as stack:
        peers = {name: await stack.enter_async_context(BadPeer(h)) for name, h in BAD.items()}
        data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
        statuses = await mqtt_collect(mosquitto, f"{BASE}/devices/+/status")
        daemon = start_daemon(
            _config(tmp_path, mosquitto, {n: p.port for n, p in peers.items()}, healthy.port)
        )

        def settled(_: object) -> bool:
            return all(
                (s := latest(statuses, f"/{name}/status")) is not None
                and s["consecutive_failures"] >= 4
                for name in BAD
            )

        await statuses.wait_for(settled, 20)
        for name, peer in peers.items():
            status = latest(statuses, f"/{name}/status")
            assert status is not None
            print(f"\n{name}: state {status['state']}, last_error {status['last_error']!r}, "
                  f"{peer.connections} connections")
            assert (status["state"], status["last_error"]) == ("connecting", REASON), status
            assert peer.connections >= 4
            sample = latest(data, f"/data/{name}")
            assert sample is not None, name
            for tag in (*SUBSCRIBED, *POLLED):
                value = sample["values"][tag]
                assert (value["v"], value["q"]) == (None, "bad"), (name, tag, value)
                assert value["r"] == f"not connected: {REASON}", (name, tag, value)
        # The Modbus device on the same daemon publishes good, changing data all along.
        before = latest(data, "/data/healthy")
        assert before is not None
        assert before["values"]["counter"]["q"] == "good"
        await data.wait_for(lambda _: latest(data, "/data/healthy")["seq"] > before["seq"] + 5)  # type: ignore[index]
        assert daemon.running, daemon.log_tail()
        assert await daemon.stop() == 0, daemon.log_tail()
    events = daemon.log_events()
    # Each fault is logged once, by the driver, however many connects failed.
    complaints = [e for e in events if e.get("level") in {"warning", "error", "critical"}]
    assert sorted((e.get("device", e["logger"]), e["event"]) for e in complaints) == sorted(
        (name, "opcua_connect_failed") for name in BAD
    ), complaints
    for name in BAD:
        changes = [(e["state"], e["error"]) for e in events
                   if e.get("event") == "device_state" and e.get("device") == name]
        assert changes == [("connecting", REASON), ("stopped", REASON)], (name, changes)


async def test_misbehaving_opcua_peers_do_not_grow_the_daemons_memory(
    tmp_path: Path, mosquitto: Any, counter_server: Any, start_daemon: Any
) -> None:
    healthy = await counter_server()
    async with contextlib.AsyncExitStack() as stack:
        peers = {name: await stack.enter_async_context(BadPeer(h)) for name, h in BAD.items()}
        daemon = start_daemon(
            _config(tmp_path, mosquitto, {n: p.port for n, p in peers.items()}, healthy.port)
        )
        await asyncio.sleep(WARM_UP_S)
        readings = [daemon.rss_bytes()]
        connections_before = {name: peer.connections for name, peer in peers.items()}
        for _ in range(int(WATCH_S)):
            await asyncio.sleep(1.0)
            assert daemon.running, daemon.log_tail()
            readings.append(daemon.rss_bytes())
        attempts = {name: p.connections - connections_before[name] for name, p in peers.items()}
    growth = max(readings) - readings[0]
    print(
        f"\nRSS after {WARM_UP_S:.0f} s warm-up {readings[0] / 2**20:.2f} MiB, "
        f"largest in the next {WATCH_S:.0f} s {max(readings) / 2**20:.2f} MiB "
        f"(+{growth / 1024:.0f} KiB); connect attempts meanwhile: {attempts}"
    )
    assert all(count >= WATCH_S / 2 for count in attempts.values()), attempts
    assert growth < RSS_GROWTH_BOUND
    assert await daemon.stop() == 0, daemon.log_tail()

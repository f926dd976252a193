"""Devices that accept TCP and then misbehave (silence, random bytes, answers carrying another
request's transaction id), served by plain asyncio servers: each gives bad-quality samples with
a reason a person can act on and a device status saying so, logged once, the daemon keeps
running, a healthy device beside them keeps publishing good data, and the daemon's memory does
not grow."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from drivers.modbus.link import STRAY_BYTES
from tests.faults.bad_peers import BadPeer, never_answers, random_bytes, wrong_transaction
from tests.faults.daemon import gateway_config, modbus_device
from tests.faults.delivery import latest

BASE = "edgecell/misbehaving"
BAD = {"silent": never_answers, "garbage": random_bytes, "mixed_up": wrong_transaction}
REASONS = {
    "silent": "timeout after 200ms",
    "garbage": f"timeout after 200ms: {STRAY_BYTES}",
    "mixed_up": f"timeout after 200ms: {STRAY_BYTES}",
}
# Memory check: polls of every device run for WARM_UP_S before the first RSS reading, then RSS
# is read every second for WATCH_S; the growth from the first reading to the largest allowed is
# RSS_GROWTH_BOUND (a leak of one 100-byte object per failed request, at the ~40 failed
# requests per second of these devices, would pass it within the window).
WARM_UP_S = 6.0
WATCH_S = 15.0
RSS_GROWTH_BOUND = 1024 * 1024


def _config(tmp_path: Path, broker: Any, ports: dict[str, int]) -> dict[str, Any]:
    devices = [modbus_device(name, port, timeout="200ms") for name, port in ports.items()]
    return gateway_config("misbehaving", tmp_path / "state", broker, devices)


async def test_misbehaving_devices_give_bad_quality_a_reason_a_status_and_one_log_line(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    good = await counter_server()
    async with contextlib.AsyncExitStack() as stack:
        peers = {name: await stack.enter_async_context(BadPeer(h)) for name, h in BAD.items()}
        ports = {name: peer.port for name, peer in peers.items()} | {"healthy": good.port}
        data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
        statuses = await mqtt_collect(mosquitto, f"{BASE}/devices/+/status")
        daemon = start_daemon(_config(tmp_path, mosquitto, ports))

        def settled(_: object) -> bool:
            return all(
                (s := latest(statuses, f"/{name}/status")) is not None
                and s["consecutive_failures"] >= 3
                for name in BAD
            )

        await statuses.wait_for(settled, 20)
        for name in BAD:
            sample = latest(data, f"/data/{name}")
            assert sample is not None, name
            value = sample["values"]["counter"]
            assert value["q"] == "bad", (name, value)
            assert value["v"] is None
            status = latest(statuses, f"/{name}/status")
            assert status is not None
            assert status["state"] in {"failed", "reconnecting"}, (name, status)
            print(f"\n{name}: state {status['state']}, reason {value['r']!r}")
            # Each reason says what happened, not only that something did.
            assert value["r"] == REASONS[name], (name, value)
            assert status["last_error"] == REASONS[name], (name, status)
        # The healthy device on the same daemon publishes good, changing data all along.
        before = latest(data, "/data/healthy")
        assert before is not None
        assert before["values"]["counter"]["q"] == "good"
        await data.wait_for(lambda _: latest(data, "/data/healthy")["seq"] > before["seq"] + 5)  # type: ignore[index]
        assert daemon.running, daemon.log_tail()
        assert await daemon.stop() == 0, daemon.log_tail()
    # Each fault is logged once, as a state change, not at every poll or reconnect.
    complaints = [e for e in daemon.log_events() if e.get("level") in {"warning", "error"}]
    assert sorted(e.get("device", e["event"]) for e in complaints) == sorted(BAD), complaints


async def test_misbehaving_devices_do_not_grow_the_daemons_memory(
    tmp_path: Path, mosquitto: Any, start_daemon: Any
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        peers = {name: await stack.enter_async_context(BadPeer(h)) for name, h in BAD.items()}
        daemon = start_daemon(_config(tmp_path, mosquitto, {n: p.port for n, p in peers.items()}))
        await asyncio.sleep(WARM_UP_S)
        readings = [daemon.rss_bytes()]
        for _ in range(int(WATCH_S)):
            await asyncio.sleep(1.0)
            assert daemon.running, daemon.log_tail()
            readings.append(daemon.rss_bytes())
        connections = {name: peer.connections for name, peer in peers.items()}
    growth = max(readings) - readings[0]
    print(
        f"\nRSS after {WARM_UP_S:.0f} s warm-up {readings[0] / 2**20:.2f} MiB, "
        f"largest in the next {WATCH_S:.0f} s {max(readings) / 2**20:.2f} MiB "
        f"(+{growth / 1024:.0f} KiB); connections opened: {connections}"
    )
    assert growth < RSS_GROWTH_BOUND
    assert await daemon.stop() == 0, daemon.log_tail()

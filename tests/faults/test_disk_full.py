"""The buffer's disk fills up while the broker is away: the daemon keeps running and polling,
says so once in its log, keeps what it can in memory and drops the oldest past
`memory_high_water`, counting them; when the broker is back, health reports the drops, live
data flows again, and once the backlog has drained the disk is usable again (`buffer_disk_ok`
back to true, the write-ahead log no longer holding the space). A restart then sends nothing
that was already delivered, and no (epoch, seq) is ever used for two different messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.faults.daemon import gateway_config, modbus_device
from tests.faults.delivery import arrivals_by_device, assert_no_seq_reused

BASE = "edgecell/diskfull"


async def wait_for_log(daemon: Any, event: str, within: float) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            found = [e for e in daemon.log_events() if e.get("event") == event]
            if found:
                return dict(found[0])
            assert daemon.running, daemon.log_tail()
            await asyncio.sleep(0.2)


async def test_disk_full_drops_are_counted_and_the_daemon_keeps_delivering_live_data(
    tmp_path: Path,
    tiny_disk: Any,  # before start_daemon: unmounted after the daemon is gone
    mosquitto: Any,
    mqtt_collect: Any,
    counter_server: Any,
    start_daemon: Any,
) -> None:
    servers = [await counter_server() for _ in range(2)]
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    health = await mqtt_collect(mosquitto, f"{BASE}/health")
    # Twenty registers that all change at every poll: ~1 KB per message, 20 messages a second.
    devices = [modbus_device(f"meter{i}", s.port, tags=20) for i, s in enumerate(servers)]
    buffer = {"durability": "always", "memory_high_water": "64KiB"}
    config = gateway_config("diskfull", tiny_disk.path, mosquitto, devices, buffer=buffer)
    daemon = start_daemon(config, preexec_fn=tiny_disk.limit_process)
    await data.wait_count(10, 20)
    mosquitto.stop()
    failed = await wait_for_log(daemon, "buffer_write_failed", 30)
    dropped = await wait_for_log(daemon, "buffer_dropped", 30)
    mosquitto.start()
    back_ms = int(time.time() * 1000)

    def reported(_: object) -> bool:
        payloads = health.payloads()
        return bool(payloads) and payloads[-1]["mqtt"]["buffer_dropped"] > 0

    await health.wait_for(reported, 20)
    await data.wait_for(lambda _: any(p["ts"] >= back_ms for p in data.payloads()), 20)
    assert daemon.running, daemon.log_tail()
    report = health.payloads()[-1]["mqtt"]
    print(
        f"\n{tiny_disk.how}: {failed['error']!r}; dropped {report['buffer_dropped']} messages, "
        f"health: disk_ok {report['buffer_disk_ok']}, depth {report['buffer_depth']}"
    )
    assert dropped["reason"] == "memory_high_water_without_disk"

    # The backlog drains and the disk is usable again: buffer_disk_ok comes back, and stays.
    def recovered(_: object) -> bool:
        mqtt = health.payloads()[-1]["mqtt"]
        return mqtt["buffer_depth"] == 0 and mqtt["buffer_disk_ok"] is True

    deadline = time.monotonic() + 30
    while not recovered(None):
        assert time.monotonic() < deadline, (
            f"buffer_disk_ok not back 30 s after the drain: {health.payloads()[-1]['mqtt']}; "
            f"state dir {sorted((f.name, f.stat().st_size) for f in tiny_disk.path.iterdir())}"
        )
        await asyncio.sleep(0.2)
    seen = len(health.messages)
    await health.wait_count(seen + 3, 10)
    later = [p["mqtt"] for p in health.payloads()[seen:]]
    assert all(m["buffer_disk_ok"] for m in later), later
    assert await daemon.stop() == 0, daemon.log_tail()

    # What was delivered before the stop is not sent again by the next start.
    before = arrivals_by_device(data)
    delivered = {(d, a.epoch, a.seq) for d, arrivals in before.items() for a in arrivals}
    again = start_daemon(config, preexec_fn=tiny_disk.limit_process)
    await data.wait_count(len(data.messages) + 40, 20)
    resent = [
        (d, a.epoch, a.seq)
        for d, arrivals in arrivals_by_device(data).items()
        for a in arrivals[len(before.get(d, [])):]
        if (d, a.epoch, a.seq) in delivered
    ]
    assert not resent, f"{len(resent)} delivered messages sent again: {resent[:12]}"
    for device, arrivals in arrivals_by_device(data).items():
        # Gaps are the counted drops; but no number stands for two different messages.
        assert_no_seq_reused(device, arrivals)
    assert await again.stop() == 0, again.log_tail()

"""`{base}/health` of a running daemon carries what an operator watches (loop lag, polls and
samples per second, device reconnects and cycle overruns, buffer depth, bytes, oldest age and
drops, RSS, the rule engine's cycles), has exactly the fields docs/mqtt-topics.md documents,
and counts a device's reconnect after its server came back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from tests.faults.daemon import ROOT, gateway_config, modbus_device

BASE = "edgecell/health"
DOC = ROOT / "docs" / "mqtt-topics.md"


def documented_health() -> dict[str, Any]:
    example = re.search(r"<!-- example: health -->\n```json\n(.*?)\n```", DOC.read_text(), re.S)
    assert example is not None
    return dict(orjson.loads(example.group(1)))


async def test_health_has_every_documented_field_and_counts_a_device_reconnect(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    server = await counter_server()
    health = await mqtt_collect(mosquitto, f"{BASE}/health")
    statuses = await mqtt_collect(mosquitto, f"{BASE}/devices/press/status")
    devices = [modbus_device("press", server.port, poll="100ms", tags=5)]
    daemon = start_daemon(gateway_config("health", tmp_path / "state", mosquitto, devices))
    await health.wait_count(2, 15)

    # The server goes away and comes back on the same port: one reconnect.
    port = server.port
    await server.stop()
    await statuses.wait_for(lambda _: statuses.payloads()[-1]["state"] == "reconnecting", 10)
    await counter_server(port)
    await statuses.wait_for(lambda _: statuses.payloads()[-1]["state"] == "connected", 15)
    seen = len(health.messages)
    await health.wait_count(seen + 2, 10)
    report = health.payloads()[-1]
    # The device status published with this health period carries the same counters.
    await statuses.wait_for(
        lambda _: any(p["ts"] >= report["ts"] for p in statuses.payloads()), 5
    )
    status = next(p for p in statuses.payloads() if p["ts"] >= report["ts"])
    assert await daemon.stop() == 0, daemon.log_tail()

    documented = documented_health()
    assert set(report) == set(documented)
    for part in ("devices", "mqtt", "rules"):
        assert set(report[part]) == set(documented[part]), part
    assert set(report["rules"]["writes"]) == set(documented["rules"]["writes"])
    print(f"\n{report}")
    devices_part = report["devices"]
    assert (devices_part["total"], devices_part["connected"], devices_part["failed"]) == (1, 1, 0)
    assert devices_part["reconnects"] == 1
    assert devices_part["skipped_cycles"] == status["skipped_cycles"]
    # One device, polled every 100 ms, five tags: about 10 polls a second, 5 samples each.
    assert 5 <= report["polls_per_s"] <= 15
    assert abs(report["samples_per_s"] - 5 * report["polls_per_s"]) < 0.5
    # Probed once a second: a few ms on a healthy daemon; past 2 s the watchdog starves.
    assert 0 <= report["loop_lag_ms"] < 2000
    assert report["rss_bytes"] > 10 * 2**20
    assert report["max_rss_bytes"] >= report["rss_bytes"] * 0.9
    mqtt = report["mqtt"]
    assert mqtt["connected"] is True
    assert mqtt["buffer_dropped"] == 0
    assert mqtt["buffer_disk_ok"] is True
    assert mqtt["buffer_storage"] == "disk"
    assert mqtt["reconnects"] == 0
    # Connected, `durability: outage`: only the few messages not yet acknowledged wait, all in
    # memory; bytes, age and depth agree (nothing is left counted after its acknowledgement).
    assert mqtt["buffer_depth"] <= 20
    assert (mqtt["buffer_depth"] == 0) == (mqtt["buffer_bytes"] == 0)
    assert (mqtt["buffer_depth"] == 0) == (mqtt["buffer_oldest_age_s"] is None)
    assert mqtt["buffer_bytes"] <= 300 * mqtt["buffer_depth"]
    assert mqtt["buffer_memory_bytes"] == mqtt["buffer_bytes"]
    if mqtt["buffer_oldest_age_s"] is not None:
        assert mqtt["buffer_oldest_age_s"] < 3.0

"""The topic contract and the payloads built from the shared model."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest

from controller.model import DeviceStatus, LinkState, Quality, Sample
from controller.mqtt import topics

BASE = "edgecell/cell-7"


def sample(tag: str, value: object, quality: Quality = Quality.GOOD, reason: str = "") -> Sample:
    return Sample("press", tag, value, quality, 1_700_000_000_100, 1_700_000_000_120, reason)  # type: ignore[arg-type]


def test_topics_follow_the_design_contract():
    assert topics.status(BASE) == "edgecell/cell-7/status"
    assert topics.data(BASE, "press") == "edgecell/cell-7/data/press"
    assert topics.tag(BASE, "press", "power_kw") == "edgecell/cell-7/tags/press/power_kw"
    assert topics.device_status(BASE, "press") == "edgecell/cell-7/devices/press/status"
    assert topics.health(BASE) == "edgecell/cell-7/health"
    assert topics.rule_state(BASE, "chiller") == "edgecell/cell-7/rules/chiller/state"
    assert topics.write_events(BASE) == "edgecell/cell-7/events/writes"
    assert topics.alarm(BASE, "leak") == "edgecell/cell-7/alarms/leak"
    assert topics.commands(BASE) == "edgecell/cell-7/cmd/#"
    assert topics.command_response(BASE) == "edgecell/cell-7/cmd/response"


@pytest.mark.parametrize("name", ["", "a/b", "a+", "#", "nul\x00"])
def test_a_name_that_is_not_one_topic_level_is_refused(name):
    with pytest.raises(topics.TopicLevelError):
        topics.data(BASE, name)


def test_data_batch_carries_ts_epoch_seq_and_values_by_tag():
    payload = topics.data_batch(
        [sample("power_kw", 12.5), sample("running", True)],
        epoch="5e1f0a9c27b3", seq=42, ts=1_700_000_000_200,
    )
    assert topics.decode(payload) == {
        "ts": 1_700_000_000_200,
        "epoch": "5e1f0a9c27b3",
        "seq": 42,
        "values": {
            "power_kw": {"v": 12.5, "q": "good", "ts": 1_700_000_000_100},
            "running": {"v": True, "q": "good", "ts": 1_700_000_000_100},
        },
    }


def test_data_batch_gives_the_reason_of_a_sample_that_is_not_good():
    payload = topics.data_batch(
        [sample("power_kw", None, Quality.BAD, "timeout after 500 ms")], epoch="e", seq=1, ts=0
    )
    assert topics.decode(payload)["values"]["power_kw"] == {
        "v": None,
        "q": "bad",
        "ts": 1_700_000_000_100,
        "r": "timeout after 500 ms",
    }


def test_nan_and_infinity_become_null():
    samples = [sample("flow", float("nan")), sample("head", float("inf"))]
    payload = topics.data_batch(samples, epoch="e", seq=1, ts=0)
    assert b"NaN" not in payload
    values = topics.decode(payload)["values"]
    assert values["flow"]["v"] is None
    assert values["head"]["v"] is None


def test_payloads_are_utf8_json():
    payload = topics.data_batch([sample("zustand", "Störung °C")], epoch="e", seq=1, ts=0)
    assert "Störung °C".encode() in payload


def test_device_status_payload_names_state_error_and_latency():
    status = DeviceStatus(
        "press", LinkState.RECONNECTING, last_error="connection refused", consecutive_failures=3,
        reconnects=2, polls=100, latency_ms=12.5, since_ms=1_700_000_000_000,
    )
    assert topics.decode(topics.device_status_payload(status, ts=1_700_000_000_500)) == {
        "ts": 1_700_000_000_500,
        "device": "press",
        "state": "reconnecting",
        "since": 1_700_000_000_000,
        "last_error": "connection refused",
        "consecutive_failures": 3,
        "reconnects": 2,
        "polls": 100,
        "skipped_cycles": 0,
        "latency_ms": 12.5,
        "extra": {},
    }


def test_birth_and_death_payloads():
    assert topics.birth(version="0.1.0", config_hash="ab12", started=5) == {
        "state": "online", "version": "0.1.0", "config_hash": "ab12", "started": 5,
    }
    online = topics.online(topics.birth(version="0.1.0", config_hash="ab12", started=5),
                           epoch="5e1f0a9c27b3", broker="node-2.plant:8883")
    assert online["epoch"] == "5e1f0a9c27b3"
    assert online["broker"] == "node-2.plant:8883"
    death = topics.decode(topics.death(ts=9, clean=True))
    assert death == {"state": "offline", "ts": 9, "clean": True}


def test_health_payload_adds_ts_to_the_measurements():
    payload = topics.health_payload({"loop_lag_ms": 1.5, "buffer_depth": 0}, ts=7)
    assert topics.decode(payload) == {"ts": 7, "loop_lag_ms": 1.5, "buffer_depth": 0}


def _held_bytes(make: Callable[[], bytes]) -> tuple[bytes, int]:
    """What `make()` returns and the bytes of memory still allocated once it has returned: the
    payload's own allocation, the temporaries having been freed. A first call fills CPython's
    free lists (dicts, floats), which tracemalloc would otherwise count against the payload."""
    make()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        payload = make()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return payload, held


# A bytes object is its length plus a 33-byte header; the rest allows for free-list noise.
_BYTES_OVERHEAD = 256


def test_a_data_batch_holds_no_more_memory_than_its_length():
    # Payloads wait in the buffer, counted by their length against its memory bounds: a payload
    # that holds ten times its length (orjson's working buffer, never shrunk) makes those
    # bounds ten times too loose and was 40 MB of the daemon at 100,000 tags/s.
    samples = [sample(f"r{i:04d}", i * 0.1) for i in range(1000)]
    payload, held = _held_bytes(
        lambda: topics.data_batch(samples, epoch="0123456789ab", seq=1, ts=1_700_000_000_200)
    )
    assert len(payload) > 40_000
    assert held <= len(payload) + _BYTES_OVERHEAD


@pytest.mark.parametrize(
    "make",
    [
        lambda: topics.encode({"tag": "press.sp", "outcome": "written", "value": 42}),
        lambda: topics.tag_value(sample("power_kw", 12.5)),
        lambda: topics.death(ts=1_700_000_000_000, clean=True),
        lambda: topics.health_payload({"uptime_s": 12}, ts=1_700_000_000_000),
        lambda: topics.device_status_payload(DeviceStatus("press"), ts=1_700_000_000_000),
    ],
    ids=["encode", "tag_value", "death", "health", "device_status"],
)
def test_small_payloads_hold_no_more_memory_than_their_length(make):
    # Retained ones (one per tag with `retain_tags`) are kept for the daemon's life.
    payload, held = _held_bytes(make)
    assert held <= len(payload) + _BYTES_OVERHEAD

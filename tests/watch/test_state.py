"""CellState, the console's picture of a gateway: what each topic sets, coalescing to the latest
sample per tag, and what hostile payloads do (ignored and counted, never an exception)."""

from __future__ import annotations

import json

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from controller.mqtt import topics
from controller.watch.state import MAX_OTHER_BYTES, MAX_TAGS, CellState

BASE = "edgecell/gw"


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_a_data_batch_sets_each_tag_and_an_older_sample_does_not_overwrite_a_newer_one() -> None:
    state = CellState(BASE)
    state.ingest(
        f"{BASE}/data/meter",
        dumps(
            {
                "ts": 2,
                "epoch": "e",
                "seq": 2,
                "values": {
                    "kw": {"v": 41.7, "q": "good", "ts": 2000},
                    "oil": {"v": None, "q": "bad", "ts": 2000, "r": "timeout after 500 ms"},
                },
            }
        ),
    )
    # The backlog of an outage arrives after: older samples of the same tags.
    state.ingest(
        f"{BASE}/data/meter",
        dumps(
            {
                "ts": 1,
                "epoch": "e",
                "seq": 1,
                "values": {
                    "kw": {"v": 12.0, "q": "good", "ts": 1000},
                },
            }
        ),
    )
    assert state.tags["meter.kw"].value == 41.7
    assert state.tags["meter.oil"].quality == "bad"
    assert state.tags["meter.oil"].reason == "timeout after 500 ms"
    assert state.ignored.count == 0


def test_every_topic_of_the_contract_is_read_with_the_builders_payloads() -> None:
    state = CellState(BASE)
    state.ingest(
        topics.status(BASE),
        topics.encode(
            topics.online(
                topics.birth(version="0.1.0", config_hash="x", started=1),
                epoch="e",
                broker="127.0.0.1:1883",
            )
        ),
    )
    state.ingest(
        topics.rule_state(BASE, "air"),
        dumps(
            {
                "ts": 1,
                "rule": "air",
                "kind": "pid",
                "mode": "shadow",
                "active": True,
                "inputs_ok": True,
                "reason": "header 6.31 to 6.5",
                "outputs": {"comp.sp": 7.4},
                "results": {"comp.sp": {"outcome": "shadow"}},
            }
        ),
    )
    state.ingest(
        topics.alarm(BASE, "air.leak"),
        dumps(
            {
                "alarm": "air.leak",
                "rule": "air",
                "state": "active",
                "acknowledged": False,
                "acked_by": None,
                "first": 5,
                "message": "leak",
            }
        ),
    )
    state.ingest(
        topics.write_events(BASE),
        dumps(
            {
                "ts": 1,
                "source": "rule:air",
                "tag": "comp.sp",
                "old": 7.3,
                "new": 7.4,
                "outcome": "failed",
                "error": "connection refused",
            }
        ),
    )
    state.ingest(f"{BASE}/plan", dumps({"cost": 12.5, "steps": [{"battery_kw": 3}]}))
    assert state.gateway["state"] == "online"
    assert state.rules["air"].mode == "shadow"
    assert state.rules["air"].outputs == (("comp.sp", "7.4", "shadow"),)
    assert state.alarms["air.leak"].state == "active"
    assert state.writes[0].why == "connection refused"
    assert state.plan == {"cost": 12.5, "steps": [{"battery_kw": 3}]}
    # A removed rule's topic is cleared with an empty retained message.
    state.ingest(topics.rule_state(BASE, "air"), b"")
    assert "air" not in state.rules


def test_hostile_payloads_are_counted_and_the_state_keeps_what_it_had() -> None:
    state = CellState(BASE)
    good = dumps({"state": "connected", "since": 1, "last_error": "", "latency_ms": 3.0})
    state.ingest(f"{BASE}/devices/press/status", good)
    hostile = [
        (f"{BASE}/devices/press/status", b"\xff\xfe not utf-8"),
        (f"{BASE}/devices/press/status", b"[1, 2, 3]"),
        (f"{BASE}/devices/press/status", b"{" * 100_000),
        (f"{BASE}/health", b"x" * (MAX_OTHER_BYTES + 1)),
        (f"{BASE}/data/press", dumps({"values": [1, 2]})),
        (f"{BASE}/data/press", dumps({"values": {"a": 5, "b": "x"}})),
        (f"{BASE}/data/{'d' * 300}", dumps({"values": {}})),
        (f"{BASE}/rules/r/state", dumps({"mode": 5, "outputs": "lots", "results": [1]})),
        (f"{BASE}/alarms/a", dumps({"state": {"nested": True}, "first": "yesterday"})),
        (f"{BASE}/events/writes", dumps({"ts": 1e300, "outcome": None})),
    ]
    for topic, payload in hostile:
        state.ingest(topic, payload)
    assert state.devices["press"].state == "connected"  # the bad ones changed nothing
    assert state.ignored.count == 7  # the last three are read with their bad fields unknown
    assert state.rules["r"].mode == "?"
    assert state.alarms["a"].first is None
    assert state.writes[0].ts is None


def test_names_are_made_safe_for_a_terminal_once_when_they_arrive() -> None:
    state = CellState(BASE)
    state.ingest(
        f"{BASE}/alarms/a",
        dumps(
            {
                "state": "active",
                "message": "\x1b]0;owned\x07\x1b[2J[bold]\u202egnp.exe" + "x" * 1000,
            }
        ),
    )
    message = state.alarms["a"].message
    assert not {"\x1b", "\x07", "\u202e"} & set(message)
    assert message.startswith("\ufffd]0;owned\ufffd\ufffd[2J[bold]\ufffdgnp.exe")
    assert len(message) == 300


def test_tags_past_the_bound_are_ignored_not_kept() -> None:
    state = CellState(BASE)
    per_device = 50_000  # 2.4 MB batches, under the console's bound on a data payload
    for device in range(MAX_TAGS // per_device + 1):
        values = {f"t{i}": {"v": i, "q": "good", "ts": 1} for i in range(per_device)}
        values |= {f"x{i}": {"v": i, "q": "good", "ts": 1} for i in range(5 * (device == 0))}
        state.ingest(f"{BASE}/data/d{device}", orjson.dumps({"values": values}))
    assert len(state.tags) == MAX_TAGS
    # The two batches that went past the bound (5 tags of d4, all of d5) are each counted.
    assert state.ignored.count == 2
    assert "past the bound of 250000 tags" in state.ignored.last


@settings(max_examples=300, deadline=None)
@given(
    level=st.sampled_from(
        [
            "status",
            "health",
            "data/d",
            "tags/d/t",
            "devices/d/status",
            "rules/r/state",
            "alarms/a",
            "events/writes",
            "plan",
            "x/y/z",
        ]
    ),
    payload=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "v",
                            "q",
                            "ts",
                            "r",
                            "values",
                            "state",
                            "mode",
                            "outputs",
                            "results",
                            "mqtt",
                            "steps",
                            "message",
                            "first",
                            "x",
                        ]
                    ),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=20,
        ).map(lambda obj: json.dumps(obj).encode()),  # big integers and NaN too
    ),
)
@example(level="tags/d/t", payload=b'{"q": []}')  # a list is not hashable: found by this test
@example(level="data/d", payload=b'{"values": {"t": {"q": {}}}}')
def test_no_payload_on_any_topic_raises(level: str, payload: bytes) -> None:
    state = CellState(BASE)
    state.ingest(f"{BASE}/{level}", payload)

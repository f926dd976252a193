"""The tag table: what "changed" means, snapshots, and what it holds per tag."""

from __future__ import annotations

import tracemalloc

from controller.model import Quality, Sample, samples_of
from controller.tagtable import TagTable


def poll(device: str, values: list[float | None], ts: int = 1, quality: Quality = Quality.GOOD,
         ) -> list[Sample]:
    names = [f"t{i}" for i in range(len(values))]
    return samples_of(device, names, values, quality=quality, source_ts=ts, read_ts=ts)


def test_a_new_value_a_new_quality_or_a_new_type_is_a_change() -> None:
    table = TagTable()
    assert len(table.update(poll("a", [1.0, 2.0, 3.0]))) == 3
    assert table.update(poll("a", [1.0, 2.0, 3.0], ts=2)) == []
    changed = table.update(poll("a", [1.0, 2.5, 3.0], ts=3))
    assert [s.key for s in changed] == ["a.t1"]
    assert [s.key for s in table.update(poll("a", [1, 2.5, 3.0], ts=4))] == ["a.t0"]  # int now
    bad = table.update(poll("a", [None, None, None], ts=5, quality=Quality.BAD))
    assert len(bad) == 3
    assert table.get("a.t2") == bad[2]
    assert table.get("a.t9") is None
    assert table.get("b.t0") is None


def test_a_snapshot_is_a_consistent_copy_keyed_by_device_and_tag() -> None:
    table = TagTable()
    table.update(poll("a", [1.0, 2.0]))
    table.update(poll("b", [3.0]))
    snapshot = table.snapshot()
    table.update(poll("a", [9.0, 9.0], ts=2))
    table.forget_device("b")
    assert sorted(snapshot) == ["a.t0", "a.t1", "b.t0"]
    assert len(snapshot) == 3
    assert snapshot["a.t0"].value == 1.0
    assert snapshot.get("b.t0") is not None
    assert snapshot.get("b.t1") is None
    assert "a.t1" in snapshot
    assert "c.t0" not in snapshot
    assert dict(snapshot.items())["b.t0"].value == 3.0
    assert table.get("a.t0").value == 9.0  # type: ignore[union-attr]
    assert table.get("b.t0") is None
    assert len(table) == 2
    assert [s.tag for s in table.device_samples("a")] == ["t0", "t1"]


def test_the_table_holds_no_string_per_tag() -> None:
    # It lives for the daemon's life with every tag in it: a `device.tag` key string per tag
    # was 6 MB at 100,000 tags, built and hashed anew for every tag of every poll.
    polls = [poll(f"d{d:03d}", [float(i) for i in range(1000)]) for d in range(10)]
    table = TagTable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for samples in polls:
            table.update(samples)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / 10_000 <= 50  # a dict entry; the samples were made before

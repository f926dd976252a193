"""What a subscriber received of the gateway's data topics, per device, and the "nothing lost"
check: every seq at least once, in order per device.

After an outage the backlog drains *beside* live data, so what arrives is two ascending runs
merged: the backlog (everything accepted before the session came back) and the live data (all
newer). A seq that arrives before a smaller one is live data overtaking the backlog; everything
from the smallest such seq up is the live run.
"""

from __future__ import annotations

from typing import Any


def seqs_by_device(collector: Any) -> dict[str, list[int]]:
    """Every seq received on `{base}/data/{device}`, in arrival order, per device."""
    out: dict[str, list[int]] = {}
    for message, payload in zip(collector.messages, collector.payloads(), strict=True):
        device = message.topic.value.rsplit("/", 1)[-1]
        out.setdefault(device, []).append(payload["seq"])
    return out


def values_by_device(collector: Any, tag: str) -> dict[str, list[tuple[int, Any]]]:
    """(seq, value entry of `tag`) per device, in arrival order, first arrival of a seq only."""
    out: dict[str, dict[int, Any]] = {}
    for message, payload in zip(collector.messages, collector.payloads(), strict=True):
        device = message.topic.value.rsplit("/", 1)[-1]
        if tag in payload["values"]:
            out.setdefault(device, {}).setdefault(payload["seq"], payload["values"][tag])
    return {device: list(entries.items()) for device, entries in out.items()}


def complete(received: list[int]) -> bool:
    """Every seq from 1 to the largest received has arrived."""
    return bool(received) and set(received) == set(range(1, max(received) + 1))


def assert_every_seq_in_order(device: str, received: list[int]) -> None:
    """1..max all arrived (duplicates allowed: delivery is at least once), the backlog run and
    the live run each in ascending order."""
    first = list(dict.fromkeys(received))
    missing = sorted(set(range(1, max(first) + 1)) - set(first))
    assert not missing, f"{device}: seqs never delivered: {missing[:20]} ({len(missing)} in all)"
    live_from = max(first) + 1
    smallest_after = live_from  # the smallest seq that arrived after the current one
    for seq in reversed(first):
        if seq > smallest_after:
            live_from = min(live_from, seq)
        smallest_after = min(smallest_after, seq)
    backlog = [seq for seq in first if seq < live_from]
    live = [seq for seq in first if seq >= live_from]
    assert backlog == sorted(backlog), f"{device}: backlog out of order"
    assert live == sorted(live), f"{device}: live data out of order"


def latest(collector: Any, suffix: str) -> dict[str, Any] | None:
    """The payload of the last message whose topic ends with `suffix`, or None."""
    found = [
        p
        for m, p in zip(collector.messages, collector.payloads(), strict=True)
        if m.topic.value.endswith(suffix)
    ]
    return found[-1] if found else None

"""What a subscriber received of the gateway's data topics, per device, and the "nothing lost"
check: every seq at least once, in order per device, over the whole delivery.

After an outage the backlog drains *beside* live data, so what arrives is two ascending runs
merged: the backlog (everything accepted before the session came back) and the live data (all
newer). So every seq that arrives before a smaller one is live data overtaking the backlog, and
every seq that arrives after a larger one is backlog overtaken: all of the former must be above
all of the latter, or the delivery was out of order.

Numbers are unique per (epoch, seq) (docs/mqtt-topics.md): a seq that arrives twice in one
epoch must carry the same data (a re-send after a lost acknowledgement), and each epoch is
checked on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Messages in flight at once (controller/mqtt/publisher.py WINDOW): at most these are sent
# again after a connection is lost.
IN_FLIGHT = 32


@dataclass(frozen=True, slots=True)
class Arrival:
    """One data message as received."""

    epoch: str
    seq: int
    payload: bytes


def arrivals_by_device(collector: Any) -> dict[str, list[Arrival]]:
    """Every data message received on `{base}/data/{device}`, in arrival order, per device."""
    out: dict[str, list[Arrival]] = {}
    for message, payload in zip(collector.messages, collector.payloads(), strict=True):
        device = message.topic.value.rsplit("/", 1)[-1]
        out.setdefault(device, []).append(
            Arrival(payload.get("epoch", ""), payload["seq"], bytes(message.payload))
        )
    return out


def assert_no_seq_reused(device: str, arrivals: list[Arrival]) -> int:
    """No (epoch, seq) stands for two different payloads; returns how many arrivals were
    re-sends of one already received."""
    first: dict[tuple[str, int], bytes] = {}
    repeats = 0
    for arrival in arrivals:
        key = (arrival.epoch, arrival.seq)
        if key in first:
            assert first[key] == arrival.payload, (
                f"{device}: seq {arrival.seq} of epoch {arrival.epoch} arrived twice with "
                f"different data:\n{first[key]!r}\n{arrival.payload!r}"
            )
            repeats += 1
        else:
            first[key] = arrival.payload
    return repeats


def assert_delivered_in_order(
    device: str, arrivals: list[Arrival], *, repeats_allowed: int = IN_FLIGHT
) -> dict[str, list[int]]:
    """No (epoch, seq) with two different payloads, at most `repeats_allowed` re-sends, and in
    each epoch every seq from 1 up, in order (`assert_every_seq_in_order`). Returns the seqs of
    each epoch in arrival order."""
    repeats = assert_no_seq_reused(device, arrivals)
    assert repeats <= repeats_allowed, f"{device}: {repeats} messages sent again"
    by_epoch: dict[str, list[int]] = {}
    for arrival in arrivals:
        by_epoch.setdefault(arrival.epoch, []).append(arrival.seq)
    for epoch, seqs in by_epoch.items():
        assert_every_seq_in_order(f"{device} (epoch {epoch})", seqs)
    return by_epoch


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
    """1..max all arrived (duplicates allowed: delivery is at least once), and the first
    arrivals are one ascending backlog run merged with one ascending live run above it."""
    first = list(dict.fromkeys(received))
    missing = sorted(set(range(1, max(first) + 1)) - set(first))
    assert not missing, f"{device}: seqs never delivered: {missing[:20]} ({len(missing)} in all)"
    # The largest seq that arrived after a larger one (overtaken: backlog) ...
    overtaken, highest = 0, 0
    for seq in first:
        if seq < highest:
            overtaken = max(overtaken, seq)
        highest = max(highest, seq)
    # ... and the smallest that arrived before a smaller one (overtaking: live).
    overtaking, lowest = max(first) + 1, max(first) + 1
    for seq in reversed(first):
        if seq > lowest:
            overtaking = min(overtaking, seq)
        lowest = min(lowest, seq)
    assert overtaken < overtaking, (
        f"{device}: not a backlog and a live run each in order: seq {overtaken} arrived after a "
        f"larger one and seq {overtaking} before a smaller one (arrivals {first[:60]})"
    )


def latest(collector: Any, suffix: str) -> dict[str, Any] | None:
    """The payload of the last message whose topic ends with `suffix`, or None."""
    found = [
        p
        for m, p in zip(collector.messages, collector.payloads(), strict=True)
        if m.topic.value.endswith(suffix)
    ]
    return found[-1] if found else None

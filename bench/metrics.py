"""Turns one gateway's run into figures: what the subscriber counted, what the simulator saw
(change times, requests) and what /proc said, all over the same measurement window."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from bench.procstat import TreeSample
from bench.simulator import CHANGE_MODULUS
from bench.subscriber import Tally
from bench.workload import CHANGE_FRACTION, Workload


@dataclass
class RunFigures:
    gateway: str
    label: str
    mode: str
    ok: bool
    note: str
    window_s: float
    values_delivered: int
    values_per_s: float
    values_expected_per_s: float
    values_completeness: float
    changes_expected: int
    changes_seen: int
    changes_completeness: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    cpu_s: float
    cpu_percent_of_core: float
    cpu_ms_per_1000_values: float | None
    peak_rss_mb: float
    rss_mb: float  # VmRSS at the end of the window: what the gateway holds in steady state
    processes: int
    requests_per_cycle: float
    optimal_requests_per_cycle: int
    poll_jitter_p50_ms: float | None
    poll_jitter_p99_ms: float | None
    poll_jitter_max_ms: float | None
    bad_messages: int
    # The load beside the gateway, over the same window (percent of one core; the machine's
    # figure is over all its cores: 200 = both cores busy on a 2-core box).
    simulator_cpu_percent: float = 0.0
    broker_cpu_percent: float = 0.0
    harness_cpu_percent: float = 0.0
    machine_busy_percent: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _changed_tags(generation: int, device: int, tags: int) -> int:
    """How many of a device's tags generation `generation` writes (bench.simulator)."""
    first = (generation - device) % CHANGE_MODULUS
    return len(range(first, tags, CHANGE_MODULUS))


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def compute(
    *,
    key: str,
    label: str,
    mode: str,
    workload: Workload,
    window: tuple[float, float],
    tally: Tally,
    simulation: dict[str, Any],
    before: TreeSample,
    after: TreeSample,
    values_per_poll: int,
    note: str = "",
) -> RunFigures:
    """`values_per_poll`: what one complete poll of every device delivers, counted as the
    gateway's messages count (tags, or registers for raw register arrays)."""
    w0, w1 = window
    span = max(w1 - w0, 1e-9)
    period = workload.period

    delivered = sum(count for arrived, count in tally.messages if w0 <= arrived < w1)
    expected_per_s = values_per_poll / period
    if mode == "changes":
        expected_per_s *= CHANGE_FRACTION

    # Changes applied inside the window, and when each first arrived.
    changes_expected = changes_seen = 0
    latencies: list[float] = []
    for entry in simulation["changes"]:
        generation, applied = int(entry[0]), entry[1:]
        if not applied or min(applied) < w0 or max(applied) >= w1:
            continue
        for device, changed_at in enumerate(applied):
            expected = _changed_tags(generation, device, workload.tags_per_device)
            arrivals = tally.sightings.get((device, generation), [])
            changes_expected += expected
            changes_seen += min(expected, len(arrivals))
            latencies.extend((arrived - changed_at) * 1000 for arrived in arrivals)

    # Requests at the devices: per cycle, and the regularity of each read (device, address).
    requests = 0
    deviations: list[float] = []
    for device_requests in simulation["requests"]:
        streams: dict[tuple[int, int], list[float]] = defaultdict(list)
        for arrived, function_code, address, _count in device_requests:
            if w0 <= arrived < w1:
                requests += 1
                streams[(function_code, address)].append(arrived)
        for times in streams.values():
            deviations.extend(
                abs(later - earlier - period) * 1000
                for earlier, later in itertools.pairwise(times)
            )

    cpu_s = max(0.0, after.cpu_s - before.cpu_s)
    return RunFigures(
        gateway=key,
        label=label,
        mode=mode,
        ok=not note,
        note=note,
        window_s=round(span, 2),
        values_delivered=delivered,
        values_per_s=round(delivered / span, 1),
        values_expected_per_s=round(expected_per_s, 1),
        values_completeness=round(delivered / span / expected_per_s, 4) if expected_per_s else 0,
        changes_expected=changes_expected,
        changes_seen=changes_seen,
        changes_completeness=round(changes_seen / changes_expected, 4) if changes_expected else 0,
        latency_p50_ms=_round(percentile(latencies, 50)),
        latency_p99_ms=_round(percentile(latencies, 99)),
        latency_max_ms=_round(max(latencies) if latencies else None),
        cpu_s=round(cpu_s, 3),
        cpu_percent_of_core=round(cpu_s / span * 100, 2),
        cpu_ms_per_1000_values=round(cpu_s * 1000 / (delivered / 1000), 2) if delivered else None,
        peak_rss_mb=round(after.peak_rss_bytes / 1e6, 1),
        rss_mb=round(after.rss_bytes / 1e6, 1),
        processes=len(after.pids),
        requests_per_cycle=round(requests / (span / period), 2),
        optimal_requests_per_cycle=workload.devices * workload.reads_per_device,
        poll_jitter_p50_ms=_round(percentile(deviations, 50)),
        poll_jitter_p99_ms=_round(percentile(deviations, 99)),
        poll_jitter_max_ms=_round(max(deviations) if deviations else None),
        bad_messages=tally.bad_messages,
    )

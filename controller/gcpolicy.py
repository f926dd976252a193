"""Garbage-collector settings for the running daemon.

The daemon keeps one sample per tag alive and replaces every one of them each poll: with
CPython's default thresholds (700, 10, 10) that means full collections over all live samples
several times a second, which took half of edgecell's CPU at 100,000 tags/s (bench/README.md).
Nothing in the hot path makes reference cycles (samples, payloads and batches are freed by
reference counting), so collections can be rare without letting garbage pile up.

Faults do make cycles (each failed request or reconnect leaves an exception and its traceback,
a protocol client and its callbacks), and at a few hundred tags a second 100,000 net
allocations take about an hour: that garbage then piled up (a soak with a fault a minute grew
by 200 KiB a minute). `collect_periodically` bounds it with a full collection every minute.
"""

from __future__ import annotations

import asyncio
import gc

# A young collection every 100,000 net allocations (about one per second at 20,000 tags/s), the
# middle generation every 50 of those, the oldest every 100 of these (and then only once a
# quarter of the old objects are new, CPython's own rule). Measured at 100,000 tags/s: default
# thresholds 50% of a core; (50,000, 20, 10) 35%; these 27% (bench/README.md).
THRESHOLDS = (100_000, 50, 100)


def tune_for_daemon() -> None:
    """Call once, after start-up: what exists then (modules, the config) stays for the whole
    run, so it is moved out of the collector's sight (gc.freeze), and the thresholds rise."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


# A full collection over what was made since start-up: ~35 ms per 200,000 objects (100,000
# tags), once a minute.
COLLECT_INTERVAL = 60.0


async def collect_periodically(interval: float = COLLECT_INTERVAL) -> None:
    """Run a full collection every `interval` seconds of real time, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        gc.collect()

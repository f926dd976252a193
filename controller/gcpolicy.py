"""Garbage-collector settings for the running daemon.

The daemon keeps one sample per tag alive and replaces every one of them each poll: with
CPython's default thresholds (700, 10, 10) that means full collections over all live samples
several times a second, which took half of edgecell's CPU at 100,000 tags/s (bench/README.md).
Nothing in the hot path makes reference cycles (samples, payloads and batches are freed by
reference counting), so collections can be rare without letting garbage pile up.
"""

from __future__ import annotations

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

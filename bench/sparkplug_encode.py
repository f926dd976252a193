"""What a Sparkplug DDATA costs beside the JSON contract's data message: encode time and size of
one batch of changed values, built by the daemon's own functions (controller/sparkplug/metrics.py
and controller/mqtt/topics.py).

usage: .venv/bin/python -m bench.sparkplug_encode [--values 10] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from controller.model import Quality, Sample
from controller.mqtt import topics
from controller.sparkplug import metrics as m

NOW = 1_796_538_856_667


def best_of(build: Callable[[], bytes], repeat: int, rounds: int = 5) -> float:
    """Seconds per call, the best of `rounds` runs of `repeat` calls (the machine is shared)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            build()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    tags = [m.TagMetric(f"tag_{i}", 10 + i, "kW", m.FLOAT) for i in range(args.values)]
    samples = [
        Sample("press", f"tag_{i}", 12.5 + i, Quality.GOOD, NOW, NOW) for i in range(args.values)
    ]

    def ddata() -> bytes:
        payload = m.Payload(timestamp=NOW, seq=17)
        for tag, sample in zip(tags, samples, strict=True):
            m.data_metric(payload, tag, m.FLOAT, sample, with_quality=False)
        return payload.SerializeToString()

    def json_data() -> bytes:
        return topics.data_batch(samples, epoch="3c5f85df106f", seq=17, ts=NOW)

    birth = m.Payload(timestamp=NOW, seq=1)
    for tag, sample in zip(tags, samples, strict=True):
        m.birth_metric(birth, tag, m.FLOAT, sample, now=NOW)
    print(f"{args.values} changed float values per message")
    for name, build in (("Sparkplug DDATA", ddata), ("JSON data", json_data)):
        seconds = best_of(build, args.repeat)
        print(f"  {name:16} {len(build()):5d} B  {seconds * 1e6:7.1f} us to build")
    print(f"  DBIRTH of those tags: {len(birth.SerializeToString())} B")


if __name__ == "__main__":
    main()

"""`python -m bench.hotpath`: what edgecell's own code costs per value on the poll path, in one
process, without devices or broker: the block decoder, `samples_of`, the tag table's update and
the data payload, stage by stage, in ns per value (the least of `--rounds` rounds).

The harness (`python -m bench`) measures the daemon from outside, with pymodbus, asyncio and
paho around this path and a shared machine's noise on top; this isolates the part edgecell
writes itself, with the harness's register maps and configs (bench/README.md, issue 13).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import cast

import yaml

from bench.gateways import edgecell_config
from bench.workload import REGISTER_MAPS, Workload
from controller.config import parse_config
from controller.model import Quality, Sample, Value, samples_of
from controller.mqtt import topics
from controller.tagtable import TagTable
from drivers.modbus.config import ModbusDevice
from drivers.modbus.driver import _compile
from drivers.modbus.planner import plan_device

STAGES = ("decode", "samples", "update", "payload")


def measure(workload: Workload, rounds: int = 10, polls: int = 5) -> dict[str, float]:
    """ns per value of each stage (and `total`), the least over `rounds` of `polls` polls of
    every device."""
    ports = list(range(1000, 1000 + workload.devices))
    text = yaml.safe_dump(edgecell_config(Path("/tmp"), 1883, ports, workload, "every_poll"))
    devices = [d for d in parse_config(text, "hotpath.yaml").devices
               if isinstance(d, ModbusDevice)]
    reads = {d.name: [_compile(d, r) for r in plan_device(d)] for d in devices}
    rng = random.Random(1)
    words = {
        (name, read.request.address): [rng.randrange(0, 65536) for _ in range(read.request.count)]
        for name, device_reads in reads.items()
        for read in device_reads
    }
    table = TagTable()
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter

    def poll_all(now: int) -> int:
        values_seen = 0
        for name, device_reads in reads.items():
            samples: list[Sample] = []
            for read in device_reads:
                t0 = clock()
                values = read.decoder.decode(words[(name, read.request.address)])
                t1 = clock()
                good = cast("list[Value]", values)  # every field decodes in these maps
                samples.extend(samples_of(name, read.names, good, quality=Quality.GOOD,
                                          source_ts=now, read_ts=now))
                t2 = clock()
                spent["decode"] += t1 - t0
                spent["samples"] += t2 - t1
            t0 = clock()
            table.update(samples)
            t1 = clock()
            topics.data_batch(samples, epoch="0123456789ab", seq=1, ts=now)
            t2 = clock()
            spent["update"] += t1 - t0
            spent["payload"] += t2 - t1
            values_seen += len(samples)
        return values_seen

    poll_all(0)
    gc.freeze()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for stage in STAGES:
            spent[stage] = 0.0
        count = sum(poll_all(1_764_000_000_000 + i) for i in range(polls))
        for stage in STAGES:
            ns = spent[stage] * 1e9 / count
            best[stage] = min(best.get(stage, ns), ns)
    gc.unfreeze()
    best["total"] = sum(best[stage] for stage in STAGES)
    return {stage: round(ns, 1) for stage, ns in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--registers", type=int, default=500)
    parser.add_argument("--map", choices=REGISTER_MAPS, default="mixed")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    workload = Workload(args.devices, args.registers, 1.0, args.map)
    figures = measure(workload, rounds=args.rounds)
    json.dump({"workload": {"devices": args.devices, "registers": args.registers,
                            "map": args.map}, "ns_per_value": figures}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

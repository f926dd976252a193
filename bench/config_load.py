"""`python -m bench.config_load --tags 130000`: how long loading a config of N tags takes and how
much memory it needs, as JSON.

A gateway must be able to load the config of everything it can poll (issue 13: 130,000 tags,
11 MB, took 67 s and 1.3 GB). The config is generated (Modbus devices of `--per-device` tags in
block style, about 85 bytes a tag, like a tag table exported from a spreadsheet) and loaded by
`load_config` in a fresh process, so that its peak RSS (`ru_maxrss`) is the load's alone; the
same process's RSS after importing the config models is reported as `baseline_rss_mb`.
`--profile cprofile|tracemalloc` prints where the time or the memory goes instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_DEVICE = """\
  - name: meter{d:04d}
    driver: modbus
    link: {{transport: tcp, host: 10.0.{hi}.{lo}, port: 502}}
    poll_interval: 1s
    tags:
"""
_TAG = """\
      - name: r{a:05d}
        address: {a}
        type: {kind}
        scale: 0.1
        unit: kW
"""


def generate(tags: int, per_device: int = 1000) -> str:
    """A valid config of `tags` tags over devices of `per_device` tags each."""
    parts = ["gateway:\n  id: bench\n  state_dir: /tmp/edgecell-bench\ndevices:\n"]
    device = 0
    left = tags
    while left > 0:
        count = min(per_device, left)
        parts.append(_DEVICE.format(d=device, hi=device // 250, lo=device % 250 + 1))
        parts.extend(
            _TAG.format(a=2 * i, kind="float32" if i % 3 == 0 else "int16") for i in range(count)
        )
        left -= count
        device += 1
    return "".join(parts)


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from controller.config import load_config
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
mode = sys.argv[2]
if mode == "cprofile":
    import cProfile, pstats
    profile = cProfile.Profile()
    profile.runcall(load_config, Path(sys.argv[1]))
    pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    sys.exit(0)
if mode == "tracemalloc":
    import tracemalloc
    tracemalloc.start(3)
    loaded = load_config(Path(sys.argv[1]))
    current, peak = tracemalloc.get_traced_memory()
    print(f"held after load: {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
    for stat in tracemalloc.take_snapshot().statistics("lineno")[:15]:
        print(stat)
    sys.exit(0)
start = time.perf_counter()
loaded = load_config(Path(sys.argv[1]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tags = sum(len(device.tags) for device in loaded.config.devices)
print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 1024, 1),
                  "baseline_rss_mb": round(baseline / 1024, 1), "tags_loaded": tags}))
"""


def measure(path: Path, mode: str = "measure") -> str:
    """Load `path` in a fresh interpreter; its stdout (JSON for `measure`)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), mode],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"loading failed:\n{done.stderr[-4000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.config_load", description=__doc__)
    parser.add_argument("--tags", type=int, default=130_000)
    parser.add_argument("--per-device", type=int, default=1000)
    parser.add_argument("--profile", choices=("cprofile", "tracemalloc"), default=None)
    parser.add_argument("--keep", type=Path, default=None, help="write the config here too")
    args = parser.parse_args(argv)
    text = generate(args.tags, args.per_device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        if args.keep is not None:
            args.keep.write_text(text, encoding="utf-8")
        out = measure(path, args.profile or "measure")
    if args.profile:
        print(out)
        return 0
    result = {"tags": args.tags, "bytes": len(text.encode()), **json.loads(out)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU time and peak memory of a gateway's whole process tree, read from /proc (Linux).

Measured from outside, the same way for every gateway: Node-RED is one node process, the
ThingsBoard gateway and edgecell are Python processes (and whatever they start).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its own threads; not waited-for children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass(frozen=True)
class TreeSample:
    pids: tuple[int, ...]
    cpu_s: float
    peak_rss_bytes: int  # sum of VmHWM over the tree
    rss_bytes: int  # sum of VmRSS over the tree


def sample_tree(root: int) -> TreeSample:
    pids = tuple(process_tree(root))
    return TreeSample(
        pids=pids,
        cpu_s=sum(cpu_seconds(pid) for pid in pids),
        peak_rss_bytes=sum(_status_kib(pid, "VmHWM") for pid in pids) * 1024,
        rss_bytes=sum(_status_kib(pid, "VmRSS") for pid in pids) * 1024,
    )

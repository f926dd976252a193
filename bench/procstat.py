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


# --- wake-ups (the idle benchmark, bench/idle.py) -------------------------------------------


def _status_fields(path: Path, keys: tuple[str, ...]) -> tuple[int, ...] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    found = dict.fromkeys(keys, 0)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return tuple(found[key] for key in keys)


def thread_counters(pid: int) -> dict[int, tuple[int, int, int]]:
    """(voluntary, involuntary context switches, CPU ns) of each thread of `pid`.
    /proc/PID/status counts the main thread only, so each /proc/PID/task/TID/status is read: a
    voluntary switch is the thread going to sleep, about one per wake-up. The CPU time is the
    scheduler's (/proc/PID/task/TID/schedstat), in ns where /proc/PID/stat has 10 ms ticks."""
    counters: dict[int, tuple[int, int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return counters
    for tid in tids:
        task = f"/proc/{pid}/task/{tid}"
        counts = _status_fields(Path(f"{task}/status"),
                                ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
        try:
            runtime_ns = int(Path(f"{task}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            runtime_ns = 0
        if counts is not None:
            counters[int(tid)] = (counts[0], counts[1], runtime_ns)
    return counters


def rss_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process, bytes."""
    return _status_kib(pid, "VmRSS") * 1024, _status_kib(pid, "VmHWM") * 1024


def connected_to(pids: list[int], port: int) -> bool:
    """Whether one of `pids` holds an established TCP connection to 127.0.0.1:`port` (its
    socket inodes against /proc/net/tcp): a gateway is up once it is connected to the broker."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local, remote, state ("01": established), ..., inode (field 9)
            if fields[2].endswith(wanted) and fields[3] == "01" and fields[9] in inodes:
                return True
    return False

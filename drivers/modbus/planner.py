"""The read planner: coalesces a device's tags into the fewest read requests per table.

Fewer requests means fewer round trips on slow RS-485 buses; the limits keep every request
within what the protocol (125 registers / 2000 bits) and the device accept.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.modbus.config import ModbusDevice, ModbusTag, Table

# Modbus application protocol v1.1b3, 6.1-6.4: a read carries at most 2000 bits (FC1/FC2)
# or 125 registers (FC3/FC4).
MAX_BITS = 2000
MAX_REGISTERS = 125
# A gap of one register costs as many response bytes as sixteen coils: gaps in the bit tables
# are counted in registers of bits.
BITS_PER_GAP_UNIT = 16

TABLE_ORDER = (Table.COIL, Table.DISCRETE, Table.HOLDING, Table.INPUT)


class PlanError(ValueError):
    """A tag cannot be read within the device's limits (e.g. a string longer than a request)."""


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: `count` registers (or bits) of `table` from `address`; `tags` are decoded from
    its response (each tag of the device belongs to exactly one request)."""

    table: Table
    address: int
    count: int
    tags: tuple[ModbusTag, ...]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may span: `max_count` registers or bits, and at most `max_gap`
    consecutive addresses that no tag uses."""

    max_count: int
    max_gap: int


def table_limits(
    table: Table, *, max_gap: int, max_registers_per_request: int, max_bits_per_request: int
) -> Limits:
    if table.is_bits:
        return Limits(min(MAX_BITS, max_bits_per_request), max_gap * BITS_PER_GAP_UNIT)
    return Limits(min(MAX_REGISTERS, max_registers_per_request), max_gap)


def plan_device(device: ModbusDevice) -> list[ReadRequest]:
    """The read requests of one poll of `device`, in a fixed order (table, then address)."""
    return plan_reads(
        device.tags,
        max_gap=device.max_gap,
        max_registers_per_request=device.max_registers_per_request,
        max_bits_per_request=device.max_bits_per_request,
    )


def plan_reads(
    tags: Sequence[ModbusTag],
    *,
    max_gap: int,
    max_registers_per_request: int = MAX_REGISTERS,
    max_bits_per_request: int = MAX_BITS,
) -> list[ReadRequest]:
    """The fewest read requests covering every tag, per table; deterministic for a given map.
    A tag with a `scale_factor` is read in the same request as that scale factor."""
    requests: list[ReadRequest] = []
    for table in TABLE_ORDER:
        in_table = [tag for tag in tags if tag.table is table]
        if not in_table:
            continue
        limits = table_limits(
            table,
            max_gap=max_gap,
            max_registers_per_request=max_registers_per_request,
            max_bits_per_request=max_bits_per_request,
        )
        groups = _read_together(in_table)
        spans = [
            (
                min(in_table[i].address for i in group),
                max(in_table[i].address + in_table[i].register_count for i in group),
            )
            for group in groups
        ]
        for start, end, members in plan_spans(spans, limits):
            order = sorted(
                (i for member in members for i in groups[member]),
                key=lambda i: (in_table[i].address, in_table[i].register_count, i),
            )
            read_tags = tuple(in_table[i] for i in order)
            requests.append(ReadRequest(table, start, end - start, read_tags))
    return requests


def _read_together(tags: Sequence[ModbusTag]) -> list[tuple[int, ...]]:
    """Indexes of `tags` that one request must read: a scale factor with every tag it scales
    (planned as one span, so a value is never decoded with another poll's exponent); every
    other tag alone. In the order of each group's first tag."""
    index = {tag.name: i for i, tag in enumerate(tags)}
    group_of = list(range(len(tags)))
    for i, tag in enumerate(tags):
        sf = index.get(tag.scale_factor) if tag.scale_factor is not None else None
        if sf is not None:
            group_of[i] = sf
    groups: dict[int, list[int]] = {}
    for i in range(len(tags)):
        groups.setdefault(group_of[i], []).append(i)
    return [tuple(members) for members in sorted(groups.values(), key=lambda m: m[0])]


def plan_spans(
    spans: Sequence[tuple[int, int]], limits: Limits
) -> list[tuple[int, int, tuple[int, ...]]]:
    """Cover half-open address spans `[start, end)` with the fewest requests.

    Returns `(start, end, members)` per request, sorted, members being indexes into `spans`,
    each index in exactly one request. A request reads `[start, end)`; it is valid when it spans
    at most `limits.max_count` and no run of addresses inside it that no span covers is longer
    than `limits.max_gap` (spans wholly inside a request count as covering, whichever request
    decodes them).

    Greedy, and optimal: let T be the uncovered span that starts first. Any request covering T
    starts at or before T, so of the uncovered spans it covers exactly those ending by its end;
    the valid request covering T that ends last therefore covers a superset of what any other
    would, and exchanging it into an optimal plan keeps the plan optimal.
    """
    for start, end in spans:
        if end - start > limits.max_count:
            raise PlanError(
                f"a value at {start} spans {end - start}, more than one request may read "
                f"({limits.max_count})"
            )
    window = _Window(spans, limits)
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], spans[i][1], i))
    uncovered = set(range(len(spans)))
    plan: list[tuple[int, int, tuple[int, ...]]] = []
    for target in order:
        if target not in uncovered:
            continue
        start, end = window.best_request(spans[target])
        members = tuple(
            i for i in order if i in uncovered and spans[i][0] >= start and spans[i][1] <= end
        )
        uncovered.difference_update(members)
        plan.append((start, end, members))
    plan.sort()
    return plan


class _Window:
    """Finds, for a target span, the valid request containing it that ends last."""

    def __init__(self, spans: Sequence[tuple[int, int]], limits: Limits) -> None:
        self.spans = spans
        self.limits = limits
        self.by_end = sorted(range(len(spans)), key=lambda i: (spans[i][1], spans[i][0], i))
        self.ends = [spans[i][1] for i in self.by_end]
        self.too_long_gap = b"\x00" * (limits.max_gap + 1)

    def best_request(self, target: tuple[int, int]) -> tuple[int, int]:
        """Candidate starts are the target's and those of spans reaching over it: a request
        starting earlier at a span that does not reach the target can start later, at the
        first span that does, with no new gap and no later end lost. Ties go to the shortest
        request, then the first."""
        t_start, t_end = target
        candidates = {t_start} | {
            a for a, b in self.spans if a < t_start < b and t_end - a <= self.limits.max_count
        }
        best: tuple[int, int] = target
        for s in sorted(candidates):
            found = self._last_valid_end(s, target)
            if found is not None and _better(found, best):
                best = found
        return best

    def _last_valid_end(self, s: int, target: tuple[int, int]) -> tuple[int, int] | None:
        spans, limit, t_end = self.spans, self.limits.max_count, target[1]
        covered = bytearray(limit)
        first, last = target[0], t_end
        best: tuple[int, int] | None = None
        j = bisect_right(self.ends, s)
        while j < len(self.by_end) and self.ends[j] <= s + limit:
            a, b = spans[self.by_end[j]]
            if a >= s:
                covered[a - s : b - s] = b"\x01" * (b - a)
                first, last = min(first, a), max(last, b)
            j += 1
            if b < t_end or (j < len(self.ends) and self.ends[j] == b):
                continue  # judge a request once every span ending here is in
            if covered.find(self.too_long_gap, first - s, last - s) < 0:
                best = (first, last)
        return best


def _better(candidate: tuple[int, int], best: tuple[int, int]) -> bool:
    c_start, c_end = candidate
    b_start, b_end = best
    if c_end != b_end:
        return c_end > b_end
    if c_end - c_start != b_end - b_start:
        return c_end - c_start < b_end - b_start
    return c_start < b_start

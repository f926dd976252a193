"""The read planner: optimal against a brute-force minimum on generated maps, every plan valid,
and the protocol/device limits and gap rule at their edges."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.config import DataType, ModbusDevice, ModbusTag, Table
from drivers.modbus.planner import (
    Limits,
    PlanError,
    ReadRequest,
    plan_device,
    plan_reads,
    plan_spans,
)

Span = tuple[int, int]


def request_is_valid(start: int, end: int, spans: Sequence[Span], limits: Limits) -> bool:
    """Judged from first principles: addresses inside the request that no span wholly inside
    it covers must not run longer than max_gap; the request spans at most max_count."""
    if end - start > limits.max_count:
        return False
    used: set[int] = set()
    for a, b in spans:
        if start <= a and b <= end:
            used.update(range(a, b))
    run = 0
    for address in range(start, end):
        run = 0 if address in used else run + 1
        if run > limits.max_gap:
            return False
    return True


def brute_force_minimum(spans: Sequence[Span], limits: Limits) -> int:
    """Fewest requests covering every span: every candidate request (from a span start to a
    span end), then a breadth-first search over sets of covered spans."""
    everything = (1 << len(spans)) - 1
    requests: list[int] = []
    for start in {a for a, _ in spans}:
        for end in {b for _, b in spans}:
            inside = [i for i, (a, b) in enumerate(spans) if start <= a and b <= end]
            if not inside:
                continue
            first = min(spans[i][0] for i in inside)
            last = max(spans[i][1] for i in inside)
            if request_is_valid(first, last, spans, limits):
                requests.append(sum(1 << i for i in inside))
    frontier = {0}
    for depth in range(len(spans) + 1):
        if everything in frontier:
            return depth
        frontier = {covered | r for covered in frontier for r in requests}
    raise AssertionError("every single span is a valid request; unreachable")


def assert_plan_is_valid(
    plan: Sequence[tuple[int, int, tuple[int, ...]]], spans: Sequence[Span], limits: Limits
) -> None:
    members = sorted(i for _, _, m in plan for i in m)
    assert members == list(range(len(spans)))
    for start, end, m in plan:
        assert request_is_valid(start, end, spans, limits)
        assert min(spans[i][0] for i in m) >= start
        assert max(spans[i][1] for i in m) <= end


@st.composite
def maps(draw: st.DrawFn) -> tuple[list[Span], Limits]:
    max_count = draw(st.integers(1, 16))
    spans = []
    for _ in range(draw(st.integers(1, 7))):
        length = draw(st.sampled_from([1, 1, 2, 4, min(max_count, 6)]))
        length = min(length, max_count)
        start = draw(st.integers(0, 40))
        spans.append((start, start + length))
    return spans, Limits(max_count=max_count, max_gap=draw(st.integers(0, 5)))


@settings(max_examples=400, deadline=None)
@given(case=maps())
def test_plan_uses_the_fewest_requests_possible(case: tuple[list[Span], Limits]) -> None:
    spans, limits = case
    assert len(plan_spans(spans, limits)) == brute_force_minimum(spans, limits)


@settings(max_examples=300, deadline=None)
@given(case=maps())
def test_every_plan_reads_each_value_once_within_the_limits(
    case: tuple[list[Span], Limits],
) -> None:
    spans, limits = case
    assert_plan_is_valid(plan_spans(spans, limits), spans, limits)


@given(case=maps())
def test_plan_does_not_depend_on_the_order_tags_are_listed(
    case: tuple[list[Span], Limits],
) -> None:
    spans, limits = case
    forward = [(s, e) for s, e, _ in plan_spans(spans, limits)]
    backward = [(s, e) for s, e, _ in plan_spans(list(reversed(spans)), limits)]
    assert forward == backward


def holding(name: str, address: int, dtype: DataType = DataType.UINT16, **kw: object) -> ModbusTag:
    return ModbusTag.model_validate({"name": name, "address": address, "type": dtype, **kw})


def coil(name: str, address: int) -> ModbusTag:
    return ModbusTag(name=name, table=Table.COIL, address=address, type=DataType.BOOL)


def extents(plan: Sequence[ReadRequest]) -> list[tuple[Table, int, int]]:
    return [(r.table, r.address, r.count) for r in plan]


def test_one_request_reads_exactly_125_registers() -> None:
    tags = [holding("a", 0), holding("b", 124)]
    assert extents(plan_reads(tags, max_gap=124)) == [(Table.HOLDING, 0, 125)]


def test_126_registers_take_two_requests() -> None:
    tags = [holding("a", 0), holding("b", 125)]
    assert extents(plan_reads(tags, max_gap=124)) == [
        (Table.HOLDING, 0, 1),
        (Table.HOLDING, 125, 1),
    ]


def test_a_gap_of_max_gap_is_spanned() -> None:
    tags = [holding("a", 0), holding("b", 4)]
    assert extents(plan_reads(tags, max_gap=3)) == [(Table.HOLDING, 0, 5)]


def test_a_gap_one_longer_than_max_gap_splits_the_read() -> None:
    tags = [holding("a", 0), holding("b", 5)]
    assert extents(plan_reads(tags, max_gap=3)) == [
        (Table.HOLDING, 0, 1),
        (Table.HOLDING, 5, 1),
    ]


def test_adjacent_registers_join_with_a_max_gap_of_zero() -> None:
    tags = [holding("a", 10, DataType.FLOAT32), holding("b", 12)]
    assert extents(plan_reads(tags, max_gap=0)) == [(Table.HOLDING, 10, 3)]


def test_device_register_limit_is_respected() -> None:
    tags = [holding(f"t{i}", i) for i in range(10)]
    plan = plan_reads(tags, max_gap=0, max_registers_per_request=4)
    assert extents(plan) == [
        (Table.HOLDING, 0, 4),
        (Table.HOLDING, 4, 4),
        (Table.HOLDING, 8, 2),
    ]


def test_a_value_is_never_split_across_requests() -> None:
    tags = [holding("a", 0), holding("b", 1, DataType.FLOAT64)]
    plan = plan_reads(tags, max_gap=0, max_registers_per_request=4)
    assert extents(plan) == [(Table.HOLDING, 0, 1), (Table.HOLDING, 1, 4)]


def test_one_request_reads_2000_coils() -> None:
    tags = [coil("first", 0), coil("middle", 1000), coil("last", 1999), coil("next", 2000)]
    assert extents(plan_reads(tags, max_gap=124)) == [
        (Table.COIL, 0, 2000),
        (Table.COIL, 2000, 1),
    ]


def test_gaps_in_bit_tables_count_sixteen_bits_per_register() -> None:
    tags = [coil("a", 0), coil("b", 33), coil("c", 100)]
    assert extents(plan_reads(tags, max_gap=2)) == [(Table.COIL, 0, 34), (Table.COIL, 100, 1)]


def test_device_bit_limit_is_respected() -> None:
    tags = [coil(f"c{i}", i) for i in range(5)]
    assert extents(plan_reads(tags, max_gap=0, max_bits_per_request=2)) == [
        (Table.COIL, 0, 2),
        (Table.COIL, 2, 2),
        (Table.COIL, 4, 1),
    ]


def test_tables_are_planned_separately_in_a_fixed_order() -> None:
    tags = [
        holding("h", 0),
        ModbusTag(name="i", table=Table.INPUT, address=0),
        coil("c", 0),
        ModbusTag(name="d", table=Table.DISCRETE, address=0, type=DataType.BOOL),
    ]
    assert [r.table for r in plan_reads(tags, max_gap=16)] == [
        Table.COIL,
        Table.DISCRETE,
        Table.HOLDING,
        Table.INPUT,
    ]


def test_overlapping_read_only_tags_are_each_decoded_once() -> None:
    tags = [
        holding("energy", 0, DataType.UINT32),
        holding("energy_high", 0),
        holding("energy_low", 1),
    ]
    (request,) = plan_reads(tags, max_gap=0)
    assert (request.address, request.count) == (0, 2)
    assert sorted(t.name for t in request.tags) == ["energy", "energy_high", "energy_low"]


def test_a_long_value_reaching_over_a_gap_lets_one_request_span_it() -> None:
    # [0,1) and [20,21) alone need two requests with max_gap 0, but the read-only string at
    # [1,30) fills the gap: one read of [0,30) covers all three.
    spans = [(0, 1), (20, 21), (1, 30)]
    assert [(s, e) for s, e, _ in plan_spans(spans, Limits(125, 0))] == [(0, 30)]


def test_a_value_longer_than_a_request_is_a_plan_error() -> None:
    tags = [holding("name", 0, DataType.STRING, length=10)]
    with pytest.raises(PlanError, match="spans 10, more than one request may read \\(8\\)"):
        plan_reads(tags, max_gap=0, max_registers_per_request=8)


def test_plan_device_uses_the_device_settings() -> None:
    device = ModbusDevice.model_validate(
        {
            "driver": "modbus",
            "name": "meter",
            "link": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
            "max_gap": 0,
            "tags": [
                {"name": "a", "address": 0},
                {"name": "b", "address": 2},
            ],
        }
    )
    assert extents(plan_device(device)) == [(Table.HOLDING, 0, 1), (Table.HOLDING, 2, 1)]

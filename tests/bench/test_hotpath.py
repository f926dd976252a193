"""`python -m bench.hotpath` keeps working: every stage measured, at a tiny size (not a timing
test: the figures are checked for being present, never for being fast)."""

from __future__ import annotations

from bench.hotpath import STAGES, measure
from bench.workload import Workload


def test_hotpath_measures_every_stage_of_both_maps() -> None:
    for register_map in ("uint16", "mixed"):
        figures = measure(Workload(2, 250, 1.0, register_map), rounds=1, polls=1)
        assert set(figures) == {*STAGES, "total"}
        assert all(figures[stage] > 0 for stage in STAGES)
        assert figures["total"] >= max(figures[stage] for stage in STAGES)

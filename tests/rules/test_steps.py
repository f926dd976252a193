"""A raised leak alarm's estimate stepping up by a leak's size: another leak found under it
(controller/rules/steps.py), as a step table: (seconds, raised, estimate, basis, steps)."""

from __future__ import annotations

import pytest

from controller.rules.steps import EstimateSteps

# step 0.2, held 600 s, settling 900 s after a raise or a step
ROWS: list[tuple[float, bool, float | None, str, int]] = [
    (0, False, None, "", 0),
    (60, True, 0.25, "", 0),  # raised: level 0.25, settling until 960 s
    (600, True, 0.70, "", 0),  # still settling (its window filling): the level follows up
    (1000, True, 0.72, "", 0),  # settled at 0.70
    (1100, True, 0.95, "", 0),  # 0.25 above: held from 1100 s
    (1600, True, 0.96, "", 0),  # 500 s held: not yet
    (1700, True, 0.96, "", 1),  # 600 s held: a second leak
    (2000, True, 1.30, "", 1),  # settling after the step: followed, not another step
    (3000, True, 1.31, "", 1),
    (3100, True, 1.00, "", 1),  # the estimate falls (one leak repaired): the level follows down
    (3200, True, 1.25, "", 1),  # 0.25 above the lowered level: held from 3200 s
    (3300, True, 1.10, "", 1),  # dips under the step before the hold: starts again
    (3900, True, 1.25, "", 1),
    (4400, True, 1.25, "", 1),  # 500 s
    (4500, True, 1.25, "", 2),  # 600 s: a third
    (5000, False, None, "", 0),  # cleared: the next episode counts from 0
    (5100, True, 0.40, "floor", 0),
    (6200, True, 0.40, "baseline", 0),  # another basis: a new level, settling again
    (6300, True, 0.90, "baseline", 0),  # within its settling: not a step
    (7300, True, 0.90, "baseline", 0),
]


def test_steps_by_the_table() -> None:
    steps = EstimateSteps(step=0.2, hold=600, settle=900)
    for t, raised, estimate, basis, expected in ROWS:
        assert steps.update(t, raised, estimate, basis) == expected, t


def test_noise_under_the_step_is_no_step() -> None:
    steps = EstimateSteps(step=0.2, hold=600, settle=900)
    steps.update(0, True, 0.5)
    for t in range(1000, 10_000, 60):
        assert steps.update(t, True, 0.5 + (0.15 if (t // 60) % 2 else -0.05)) == 0
    assert steps.level == pytest.approx(0.45)


def test_an_estimate_with_its_own_persistence_steps_without_a_second_hold() -> None:
    """`hold=0` for an estimate that already held (a floor over its window): a step at once."""
    steps = EstimateSteps(step=0.2, hold=600, settle=900)
    rows = [(0, 0.5, 0), (1000, 0.5, 0), (1060, 0.85, 1), (2200, 0.85, 1), (2260, 1.2, 2)]
    for t, estimate, expected in rows:
        assert steps.update(t, True, estimate, "floor", hold=0.0) == expected, t

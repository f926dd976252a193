"""A raised leak alarm's estimate stepping up by a leak's size: another leak found under it
(controller/rules/steps.py), as a step table: (seconds, raised, estimate, basis, steps)."""

from __future__ import annotations

import math

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
    (3100, True, 1.00, "", 1),  # the estimate falls (one leak repaired): held from 3100 s
    (3700, True, 1.00, "", 1),  # 600 s held: the level moves down to it
    (3800, True, 1.25, "", 1),  # 0.25 above the lowered level: held from 3800 s
    (3900, True, 1.02, "", 1),  # dips under the step before the hold: starts again
    (4000, True, 1.25, "", 1),
    (4500, True, 1.25, "", 1),  # 500 s
    (4600, True, 1.25, "", 2),  # 600 s: a third
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
    assert steps.level is not None
    assert 0.5 <= steps.level <= 0.6  # the middle of the noise, not its bottom (0.45)


def test_an_estimate_with_its_own_persistence_steps_without_a_second_hold() -> None:
    """`hold=0` for an estimate that already held (a floor over its window): a step at once."""
    steps = EstimateSteps(step=0.2, hold=600, settle=900)
    rows = [(0, 0.5, 0), (1000, 0.5, 0), (1060, 0.85, 1), (2200, 0.85, 1), (2260, 1.2, 2)]
    for t, estimate, expected in rows:
        assert steps.update(t, True, estimate, "floor", hold=0.0) == expected, t


def test_a_slow_wander_is_judged_from_its_middle_not_its_lowest_point() -> None:
    """The estimate of a moving window wanders with what the window holds (the leak scenario's
    air alarm: machines working harder for twenty minutes at 16:10, 5 % of capacity over a
    dip at 15:50 with no second leak). From its lowest point the top of a wander is `step` up
    for longer than `hold`; from the middle of what was measured it is not. A second leak on
    top of the same wander still steps."""
    steps = EstimateSteps(step=0.2, hold=600, settle=900)
    steps.update(0, True, 0.5)
    wander = [0.5 + 0.12 * math.sin(2 * math.pi * t / 3600) for t in range(0, 4 * 3600, 60)]
    for k, estimate in enumerate(wander):
        assert steps.update(1000 + 60 * k, True, estimate) == 0, 1000 + 60 * k
    t0 = 1000 + 60 * len(wander)
    for k, estimate in enumerate(wander[:60]):  # a second leak of 0.3 under the same wander
        steps.update(t0 + 60 * k, True, estimate + 0.3)
    assert steps.count == 1

"""The least squares the air-use rise fits the flow with (controller/rules/energy/linear_fit.py):
slopes recovered from running sums, sums of windows adding up, steady and collinear
regressors given no slope."""

from __future__ import annotations

import random

import pytest

from controller.rules.energy.linear_fit import Moments, combined


def test_the_slopes_of_two_machines_are_recovered_from_their_windows_sums() -> None:
    rng = random.Random(3)
    windows = []
    for _ in range(4):
        window = Moments(2)
        for _ in range(200):
            x = (40.0 * (1 + rng.gauss(0, 0.08)), 20.0 * (1 + rng.gauss(0, 0.08)))
            window.add(x, 0.15 + 0.005 * x[0] + 0.0125 * x[1] + rng.gauss(0, 0.001))
        windows.append(window)
    slopes = combined(windows, 2).slopes()
    assert slopes == pytest.approx((0.005, 0.0125), rel=0.05)


def test_a_steady_or_collinear_regressor_gets_no_slope() -> None:
    """An idle machine's steady power explains nothing; a second meter on the same machine
    (the same signal twice over) is the first one's slope, not twice it."""
    rng = random.Random(4)
    fit = Moments(3)
    for _ in range(300):
        work = 30.0 * (1 + rng.gauss(0, 0.08))
        fit.add((work, 6.0, 2 * work), 0.2 + 0.01 * work)
    a, steady, b = fit.slopes()
    assert steady == 0.0
    assert a + 2 * b == pytest.approx(0.01, rel=1e-6)


def test_too_few_polls_fit_nothing() -> None:
    fit = Moments(2)
    fit.add((1.0, 2.0), 3.0)
    assert fit.slopes() == (0.0, 0.0)

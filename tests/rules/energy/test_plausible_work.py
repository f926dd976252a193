"""The air-use fit's work signals judged by their own learned history (plausible_work.py): a
glitch far above it is left out, a new level held longer than a window is taken."""

from __future__ import annotations

from controller.rules.energy.plausible_work import PLAUSIBLE_FACTOR, PlausibleWork


def test_a_reading_far_above_the_learned_top_is_left_out_and_one_under_it_taken() -> None:
    check = PlausibleWork(["m1", "m2"], window_s=900)
    assert check.check(0, (400.0, 20.0), [42.0, 21.0]) is None
    assert check.check(5, (119.0, 20.0), [42.0, 21.0]) == (119.0, 20.0)
    assert check.rejected == 1


def test_nothing_learned_is_no_bound() -> None:
    check = PlausibleWork(["m1"], window_s=900)
    assert check.check(0, (400.0,), None) == (400.0,)
    assert check.check(0, (400.0,), [0.0]) == (400.0,)  # a signal learned at nil


def test_a_level_out_of_bounds_for_longer_than_a_window_is_the_signal_s_new_level() -> None:
    check = PlausibleWork(["m1"], window_s=900)
    high = (PLAUSIBLE_FACTOR * 40.0 + 1.0,)
    taken = [check.check(t, high, [40.0]) for t in range(0, 1000, 5)]
    assert taken[0] is None
    assert taken[180] is None  # 900 s: still a glitch
    assert taken[181] == high  # 905 s: a new level, learned
    assert check.check(1000, (40.0,), [40.0]) == (40.0,)
    assert check.check(1005, high, [40.0]) is None  # out of bounds again: counted afresh

"""The write checks as plain functions, without a device: a request, the tag's limits and
state, its present value and the time in; a plan to write or why not out."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.actuation.checks import (
    Held,
    Plan,
    Request,
    TagSetup,
    plan,
    snap_to_steps,
)
from controller.actuation.outcomes import Outcome, WriteResult
from controller.actuation.state import REPEAT_SUMMARY, TagState, to_publish
from controller.configtypes import WriteLimits
from controller.rules.common import OutputValue
from drivers.base import UnencodableValueError, WholeSteps


@dataclass(frozen=True)
class Int16:
    """An int16 tag's type, as its driver would answer (scale 1)."""

    def check(self, value: OutputValue) -> None:
        if isinstance(value, bool):
            raise UnencodableValueError(f"dev.x is int16: it takes a number, not {value}")
        if not -32768 <= value <= 32767:
            raise UnencodableValueError(f"dev.x is int16: {value:g} is outside the int16 range")

    def steps(self) -> WholeSteps | None:
        return WholeSteps(1.0)


def limits(**fields: float) -> WriteLimits:
    return WriteLimits(writable=True, **fields)


def rule(value: OutputValue) -> Request:
    return Request("dev.x", value, "rule:r", rule="r")


def test_min_max_win_over_max_step_from_a_present_value_above_max():
    planned = plan(rule(5.0), TagSetup(limits(min=0, max=10, max_step=0.5)), TagState(), 12.0, 0)
    assert isinstance(planned, Plan)
    assert planned.value == 10.0


def test_move_from_inside_the_limits_keeps_max_step():
    planned = plan(rule(9.0), TagSetup(limits(min=0, max=10, max_step=0.5)), TagState(), 5.0, 0)
    assert isinstance(planned, Plan)
    assert (planned.value, planned.clamps) == (5.5, ("max_step 0.5",))


def test_tag_not_read_since_the_start_is_deferred():
    held = plan(rule(5.0), TagSetup(limits(), read=False), TagState(), None, 0)
    assert isinstance(held, Held)
    assert (held.outcome, held.checks) == (
        Outcome.DEFERRED, {"writable": "ok", "read": "no reading yet"}
    )


def test_rule_value_for_an_integer_tag_is_rounded_to_a_whole_step():
    planned = plan(rule(6.6), TagSetup(limits(), value_type=Int16()), TagState(), 3, 0)
    assert isinstance(planned, Plan)
    assert (planned.value, planned.clamps, planned.checks["type"]) == (7.0, ("integer",), "rounded")


def test_rounding_never_leaves_min_max():
    planned = plan(rule(10.4), TagSetup(limits(max=10.4), value_type=Int16()), TagState(), 3, 0)
    assert isinstance(planned, Plan)
    assert planned.value == 10.0


def test_max_step_below_one_whole_step_is_refused_with_the_reason():
    setup = TagSetup(limits(max_step=0.3), value_type=Int16())
    held = plan(rule(9.0), setup, TagState(), 3, 0)
    assert isinstance(held, Held)
    assert held.outcome is Outcome.REFUSED
    assert held.reason == (
        "dev.x takes whole steps of 1: max_step/max_rate allow a move of 0.3 this cycle, "
        "less than one step"
    )


@pytest.mark.parametrize(("value", "why"), [(True, "not True"), (40000.0, "outside")])
def test_value_the_type_cannot_hold_is_refused(value, why):
    held = plan(rule(value), TagSetup(limits(), value_type=Int16()), TagState(), 3, 0)
    assert isinstance(held, Held)
    assert held.outcome is Outcome.REFUSED
    assert why in held.reason
    assert held.checks["type"] == "refused"


def test_scaled_steps_are_exact_decimals():
    assert snap_to_steps(0.31, WholeSteps(0.1), low=None, high=None) == 0.3


def test_a_half_goes_towards_the_start_of_the_move():
    assert snap_to_steps(6.5, WholeSteps(1.0), low=None, high=None, move=(9.0, 5.0)) == 7.0
    assert snap_to_steps(6.5, WholeSteps(1.0), low=None, high=None) == 6.0


def test_a_repeated_failure_is_published_once_then_once_a_minute_with_its_repeats():
    state = TagState()
    failed = WriteResult("dev.x", Outcome.FAILED, "rule:r", 5.0, 5.0, None, reason="down")
    published = [to_publish(state, failed, float(t)) for t in range(int(REPEAT_SUMMARY) + 1)]
    assert published[0] == 0
    assert published[1:-1] == [None] * (int(REPEAT_SUMMARY) - 1)
    assert published[-1] == int(REPEAT_SUMMARY) - 1
    written = WriteResult("dev.x", Outcome.WRITTEN, "rule:r", 5.0, 5.0, None)
    assert to_publish(state, written, REPEAT_SUMMARY + 1) == 0


# A value in place (7.0 reads 7.0), refresh 10 s, cycle 5 s: last write (None: never) and now
# -> written again (the rewrite, `refresh: due`) or held unchanged.
REFRESH = [
    ("rule", None, 0.0, True),  # never written by us: written, so the device's timer starts
    ("rule", 0.0, 5.0, False),  # 5 s old
    ("rule", 0.0, 7.4, False),  # 7.4 s + half a cycle is under 10 s
    ("rule", 0.0, 7.5, True),  # due within half a cycle, as the heartbeat
    ("rule", 0.0, 10.0, True),
    ("fallback", 0.0, 60.0, False),  # a fallback is written once, never refreshed
    ("shadow", 0.0, 60.0, False),  # shadow writes nothing
]


@pytest.mark.parametrize(("source", "last", "now", "rewritten"), REFRESH)
def test_a_value_in_place_is_written_again_when_its_refresh_is_due(
    source: str, last: float | None, now: float, rewritten: bool
) -> None:
    request = Request(
        "dev.x", 7.0, "fallback:r" if source == "fallback" else "rule:r", rule="r",
        shadow=source == "shadow",
    )
    state = TagState(last_value=None if last is None else 7.0, last_time=last)
    planned = plan(request, TagSetup(limits(), cycle=5.0, refresh=10.0), state, 7.0, now)
    if rewritten:
        assert isinstance(planned, Plan)
        assert (planned.value, planned.checks["refresh"]) == (7.0, "due")
    else:
        assert isinstance(planned, Held)
        assert planned.outcome is Outcome.UNCHANGED


def test_a_refresh_is_clamped_like_any_write() -> None:
    """The rewrite passes the checks first: a value in place above a max lowered since is
    brought inside, as a change, not rewritten as it is."""
    state = TagState(last_value=9.0, last_time=0.0)
    planned = plan(rule(9.0), TagSetup(limits(max=8.0), refresh=10.0), state, 9.0, 30.0)
    assert isinstance(planned, Plan)
    assert (planned.value, planned.clamps) == (8.0, ("max 8",))
    assert "refresh" not in planned.checks

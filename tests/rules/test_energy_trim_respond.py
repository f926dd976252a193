"""Trim and respond (ASHRAE G36 5.1.14): the known steps of trim, response, cap and limits."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.trimrespond import TrimRespond, TrimRespondConfig


def block(**changes: Any) -> TrimRespond:
    settings: dict[str, Any] = {
        "min": 6.0,
        "max": 8.0,
        "initial": 7.5,
        "period": "2min",
        "trim": -0.05,
        "respond": 0.1,
        "max_response": 0.25,
    }
    settings.update(changes)
    return TrimRespond(TrimRespondConfig.model_validate(settings))


def run(tr: TrimRespond, start: float, seconds: int, requests: int = 0) -> float:
    value = tr.value
    for second in range(1, seconds + 1):
        value = tr.update(start + second, requests)
    return value


def test_trims_once_per_period_without_requests() -> None:
    tr = block()
    tr.reset(0.0)
    assert run(tr, 0.0, 119) == 7.5
    assert run(tr, 119.0, 1) == pytest.approx(7.45)
    assert run(tr, 120.0, 600) == pytest.approx(7.2)


def test_responds_per_request_beyond_the_ignored_ones() -> None:
    tr = block(ignored_requests=1)
    tr.reset(0.0)
    assert run(tr, 0.0, 120, requests=3) == pytest.approx(7.7)


def test_response_is_capped_at_max_response() -> None:
    tr = block()
    tr.reset(0.0)
    assert run(tr, 0.0, 120, requests=5) == pytest.approx(7.75)


def test_a_request_anywhere_in_the_period_counts() -> None:
    tr = block()
    tr.reset(0.0)
    tr.update(30.0, 1)
    assert run(tr, 30.0, 90) == pytest.approx(7.6)


def test_setpoint_stays_within_min_and_max() -> None:
    tr = block()
    tr.reset(0.0)
    assert run(tr, 0.0, 7200) == 6.0
    assert run(tr, 7200.0, 3600, requests=2) == 8.0


def test_holds_for_the_delay_after_a_restart() -> None:
    tr = block(delay="10min")
    tr.reset(0.0)
    assert run(tr, 0.0, 600) == 7.5
    assert run(tr, 600.0, 120) == pytest.approx(7.45)


def test_restarts_from_the_present_value_clamped() -> None:
    tr = block()
    tr.reset(0.0, 9.0)
    assert tr.value == 8.0


def test_starts_at_the_safe_end_without_initial_or_present_value() -> None:
    downward = block(initial=None)
    downward.reset(0.0)
    assert downward.value == 8.0
    upward = block(initial=None, trim=0.1, respond=-0.2, max_response=-0.5)
    upward.reset(0.0)
    assert upward.value == 6.0


def test_trim_and_respond_of_the_same_sign_are_refused() -> None:
    with pytest.raises(ValidationError, match="opposite signs"):
        block(trim=0.05)


def test_max_response_smaller_than_respond_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_response"):
        block(max_response=0.05)

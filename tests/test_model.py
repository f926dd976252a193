"""The shared vocabulary's helpers: samples_of builds what the Sample constructor builds."""

from __future__ import annotations

import dataclasses

import pytest

from controller.model import Quality, Sample, samples_of


def test_samples_of_builds_the_samples_the_constructor_builds() -> None:
    built = samples_of(
        "press", ["a", "b", "c"], [1, 2.5, None], quality=Quality.BAD, source_ts=10, read_ts=11,
        reason="timeout after 500ms",
    )
    assert built == [
        Sample("press", "a", 1, Quality.BAD, 10, 11, "timeout after 500ms"),
        Sample("press", "b", 2.5, Quality.BAD, 10, 11, "timeout after 500ms"),
        Sample("press", "c", None, Quality.BAD, 10, 11, "timeout after 500ms"),
    ]
    assert [s.key for s in built] == ["press.a", "press.b", "press.c"]


def test_samples_of_makes_frozen_samples_that_compare_and_hash_as_the_constructor_s() -> None:
    (built,) = samples_of("press", ["a"], [1.5], quality=Quality.GOOD, source_ts=10, read_ts=11)
    made = Sample("press", "a", 1.5, Quality.GOOD, 10, 11)
    assert type(built) is Sample
    assert built == made
    assert hash(built) == hash(made)
    assert repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.value = 2.0  # type: ignore[misc]


def test_samples_of_refuses_tags_and_values_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="shorter"):
        samples_of("press", ["a", "b"], [1], quality=Quality.GOOD, source_ts=10, read_ts=11)

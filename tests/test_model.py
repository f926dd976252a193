"""The shared vocabulary's helpers: samples_of builds what the Sample constructor builds."""

from __future__ import annotations

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

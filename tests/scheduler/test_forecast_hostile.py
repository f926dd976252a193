"""Hostile PV forecasts: every payload that is not a usable forecast is refused with what is
wrong and where, and the last good forecast is kept (the planner's inputs from outside, whatever
carries them: the topic, the file, the co-simulation)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from controller.clock import SYSTEM_CLOCK
from controller.cosim import RecordedEvents
from controller.scheduler.board import PlanBoard
from controller.scheduler.forecast import ForecastError, parse_cloud_forecast
from controller.scheduler.planner import Planner
from controller.tagtable import TagTable
from tests.scheduler.cell import scheduler_config
from tests.scheduler.forecasts import HOUR_MS, cloud_forecast, payload

NOW = 1_780_000_000_000
MAX_AGE = 3600.0


def good() -> dict[str, Any]:
    return cloud_forecast(NOW)


def refused(data: Any) -> str:
    raw = data if isinstance(data, bytes) else payload(data)
    with pytest.raises(ForecastError) as raised:
        parse_cloud_forecast(raw, NOW, MAX_AGE)
    return str(raised.value)


def with_point(index: int, **changes: Any) -> dict[str, Any]:
    data = good()
    data["points"][index] = {**data["points"][index], **changes}
    return data


HOSTILE: list[tuple[str, Any, str]] = [
    ("NaN", payload(good()).replace(b'"factor":0.9', b'"factor":NaN', 1), "(payload): not JSON"),
    ("Infinity", payload(good()).replace(b'"factor":0.9', b'"factor":Infinity', 1), "not JSON"),
    ("10 MB", b'{"issued_ms": 1, "points": [' + b" " * 10_000_000 + b"]}", "10000030 bytes"),
    ("not JSON", b"\xff\xfe garbage", "(payload): not JSON"),
    ("a list", [1, 2, 3], "(payload): Input should be a valid dictionary"),
    ("factor as text", with_point(2, factor="0.5"), "points[2].factor: Input should be a valid"),
    ("time as text", with_point(1, at_ms="soon"), "points[1].at_ms: Input should be a valid"),
    ("bool time", with_point(1, at_ms=True), "points[1].at_ms"),
    ("factor 1.5", with_point(3, factor=1.5), "points[3].factor: Input should be less than"),
    ("factor -0.1", with_point(3, factor=-0.1), "points[3].factor: Input should be greater"),
    ("extra key", with_point(0, rain_mm=3), "points[0].rain_mm: Extra inputs are not permitted"),
    ("no points", {"issued_ms": NOW, "points": []}, "points: List should have at least 1"),
    ("descending", with_point(2, at_ms=NOW), "points[2].at_ms: times must ascend"),
    ("repeated time", with_point(1, at_ms=NOW), "points[1].at_ms: times must ascend"),
    (
        "all in the past",
        {"issued_ms": NOW, "points": [{"at_ms": NOW - HOUR_MS, "factor": 0.5}]},
        "points[0].at_ms: every point is in the past",
    ),
    ("issued long ago", cloud_forecast(NOW - 2 * HOUR_MS, hours=48), "older than 3600 s"),
    ("issued tomorrow", cloud_forecast(NOW + 24 * HOUR_MS), "in the future: a clock is wrong"),
    (
        "a year ahead",
        {"issued_ms": NOW, "points": [{"at_ms": NOW + 365 * 24 * HOUR_MS, "factor": 0.5}]},
        "more than 10 days ahead",
    ),
    ("too many points", cloud_forecast(NOW, hours=6000), "points: List should have at most"),
    (
        "64-bit overflow",
        b'{"issued_ms": 1' + b"0" * 30 + b', "points": []}',
        "issued_ms: Input should be a valid integer",
    ),
]


@pytest.mark.parametrize(("what", "data", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_forecast_is_refused_naming_what_and_where(
    what: str, data: Any, message: str
) -> None:
    assert message in refused(data)


def test_a_good_forecast_is_read_between_its_points() -> None:
    data = {
        "issued_ms": NOW,
        "points": [{"at_ms": NOW, "factor": 1.0}, {"at_ms": NOW + HOUR_MS, "factor": 0.5}],
    }
    forecast = parse_cloud_forecast(payload(data), NOW, MAX_AGE)
    half = NOW + HOUR_MS // 2
    assert forecast.factors([NOW - HOUR_MS, NOW, half, NOW + HOUR_MS, NOW + 9 * HOUR_MS]) == [
        1.0,
        1.0,
        0.75,
        0.5,
        0.5,
    ]


def planner(tmp_path: Path, events: RecordedEvents) -> Planner:
    config = scheduler_config()
    assert config.scheduler is not None
    assert config.tariff is not None
    return Planner(
        config.scheduler,
        config.tariff,
        board=PlanBoard(),
        table=TagTable(),
        clock=SYSTEM_CLOCK,
        events=events,
        base_topic="edgecell/t",
        state_dir=tmp_path,
    )


def test_a_refused_forecast_leaves_the_last_good_one_and_says_why(tmp_path: Path) -> None:
    events = RecordedEvents()
    subject = planner(tmp_path, events)
    now = int(time.time() * 1000)
    assert subject.offer_pv_forecast(payload(cloud_forecast(now)), "mqtt:edgecell/t/forecast/pv")
    kept = subject.cloud
    bad = payload(cloud_forecast(now)).replace(b'"factor":0.9', b'"factor":1.9', 1)
    assert not subject.offer_pv_forecast(bad, "mqtt:edgecell/t/forecast/pv")
    assert subject.cloud is kept
    [ok, no] = [body for topic, body in events.events if topic == "edgecell/t/events/forecast"]
    assert ok["ok"] is True
    assert no["ok"] is False
    assert no["source"] == "mqtt:edgecell/t/forecast/pv"
    assert no["problem"].startswith("points[0].factor: Input should be less than or equal to 1")


def test_a_forecast_file_is_read_through_the_same_checks(tmp_path: Path) -> None:
    events = RecordedEvents()
    path = tmp_path / "forecast.json"
    path.write_bytes(b'{"issued_ms": "yesterday"}')
    subject = planner(tmp_path, events)
    assert subject.config.pv is not None
    subject.config = subject.config.model_copy(
        update={"pv": subject.config.pv.model_copy(update={"file": path})}
    )
    subject._read_forecast_file()
    [no] = [body for _, body in events.events]
    assert no["source"] == f"file:{path}"
    assert "issued_ms: Input should be a valid integer" in no["problem"]
    path.write_bytes(orjson.dumps(cloud_forecast(int(time.time() * 1000))))
    subject._read_forecast_file()
    assert subject.cloud is not None

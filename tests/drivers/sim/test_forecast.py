"""The forecasts a scenario sends the site (scenario `forecast:`): issued at their times, the
written forecast or the truth with a seeded error, the same for the same seed; hostile values
refused with the field's path."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from drivers.sim.forecast import PV_CLOUDS, clouds_at, pv_cloud_forecasts
from drivers.sim.scenario import ScenarioError, load_scenario

START_MS = 1_717_372_800_000  # 2024-06-03 00:00 on the co-simulation's clock


def _scenario(tmp_path: Path, forecast: str, *, base: str = "solar-day") -> Path:
    path = tmp_path / "forecast.yaml"
    path.write_text(f"base: {base}\nname: forecast-test\nforecast:\n{forecast}", "utf-8")
    return path


def test_solar_day_sends_a_day_ahead_forecast_and_two_updates() -> None:
    forecasts = pv_cloud_forecasts(load_scenario("solar-day"))
    assert [f.issued_s for f in forecasts] == [0.0, 6 * 3600.0, 12 * 3600.0]
    day_ahead = forecasts[0]
    assert day_ahead.kind == PV_CLOUDS
    # hourly points on the hour from the issue to 24 h later, both ends included
    assert [t for t, _ in day_ahead.points] == [h * 3600.0 for h in range(25)]
    assert all(0.0 <= factor <= 1.0 for _, factor in day_ahead.points)


def test_the_error_is_seeded_by_the_run_and_differs_from_the_truth() -> None:
    scenario = load_scenario("solar-day")
    assert scenario.pv is not None
    first, again = pv_cloud_forecasts(scenario, seed=1), pv_cloud_forecasts(scenario, seed=1)
    other = pv_cloud_forecasts(scenario, seed=2)
    assert first == again
    assert first != other
    errors = [
        factor - clouds_at(scenario.pv.clouds, t % 86400)
        for forecast in first
        for t, factor in forecast.points
    ]
    assert statistics.pstdev(errors) > 0.05  # not the truth
    assert max(abs(e) for e in errors) <= 1.2


def test_the_bad_forecast_promises_a_clear_sky_under_a_real_overcast() -> None:
    scenario = load_scenario("solar-day-bad-forecast")
    assert scenario.pv is not None
    assert clouds_at(scenario.pv.clouds, 14 * 3600.0) == pytest.approx(0.2)
    forecasts = pv_cloud_forecasts(scenario)
    assert len(forecasts) == 3
    assert all(factor == 1.0 for f in forecasts for _, factor in f.points)


def test_a_written_forecast_is_interpolated_on_its_grid(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "  pv_clouds:\n"
        "    - issued: {at: '09:20'}\n"
        "      horizon: 2h\n"
        "      resolution: 30min\n"
        "      clouds: [{at: '09:00', factor: 1.0}, {at: '11:00', factor: 0.5}]\n",
    )
    (forecast,) = pv_cloud_forecasts(load_scenario(path))
    assert forecast.issued_s == 9 * 3600 + 20 * 60
    hours = [(t / 3600, f) for t, f in forecast.points]
    assert hours == [(9.0, 1.0), (9.5, 0.875), (10.0, 0.75), (10.5, 0.625), (11.0, 0.5),
                     (11.5, 0.5)]  # fmt: skip


def test_the_payload_is_a_weather_service_message_on_the_site_clock() -> None:
    forecast = pv_cloud_forecasts(load_scenario("solar-day-bad-forecast"))[1]
    payload = forecast.payload(START_MS)
    assert payload["source"] == "scenario solar-day-bad-forecast, issue 1"
    assert payload["issued_ms"] == START_MS + 6 * 3_600_000
    assert payload["points"][0] == {"at_ms": START_MS + 6 * 3_600_000, "factor": 1.0}
    assert len(payload["points"]) == 19


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        (
            "  pv_clouds: [{issued: {at: '06:00'}, error: {sigma: .nan}}]\n",
            r"forecast\.pv_clouds\.0\.error\.sigma: Input should be a finite number",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, error: {sigma: -0.1}}]\n",
            r"forecast\.pv_clouds\.0\.error\.sigma: Input should be greater than or equal",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, error: {sigma: 0.1, correlation: 0s}}]\n",
            r"forecast\.pv_clouds\.0\.error\.correlation: Input should be greater than 0",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, clouds: [{at: '07:00', factor: 1.1}]}]\n",
            r"forecast\.pv_clouds\.0\.clouds\.0\.factor: Input should be less than or equal",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}}]\n",
            r"forecast\.pv_clouds\.0: Value error, give exactly one of clouds",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, clouds: [], error: {sigma: 0.1}}]\n",
            r"forecast\.pv_clouds\.0: Value error, give exactly one of clouds",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, horizon: 1d, resolution: 1s, clouds: []}]\n",
            r"forecast\.pv_clouds\.0: Value error, resolution is at least 1 min",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, horizon: 7d, resolution: 1min, clouds: []}]\n",
            r"forecast\.pv_clouds\.0: Value error, horizon / resolution gives more than 2016",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, horizon: 30d, clouds: []}]\n",
            r"forecast\.pv_clouds\.0: Value error, horizon is longer than 7 days",
        ),
        (
            "  pv_clouds:\n"
            "    - {issued: {at: '12:00'}, clouds: []}\n"
            "    - {issued: {at: '06:00'}, clouds: []}\n",
            r"forecast: Value error, pv_clouds: give the issues in time order",
        ),
        (
            "  pv_clouds: [{issued: {at: 10:30}, clouds: []}]\n",
            r"forecast\.pv_clouds\.0\.issued\.at: .*in quotes",
        ),
        (
            "  pv_clouds: [{issued: {at: '06:00'}, clouds: [], source: mqtt}]\n",
            r"forecast\.pv_clouds\.0\.source: Extra inputs are not permitted",
        ),
    ],
)
def test_a_hostile_forecast_is_refused_with_its_path(
    tmp_path: Path, forecast: str, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario(_scenario(tmp_path, forecast))


def test_a_cloud_forecast_without_a_pv_array_is_refused(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path, "  pv_clouds: [{issued: {at: '06:00'}, clouds: []}]\n", base="normal-day"
    )
    with pytest.raises(ScenarioError, match="there is no pv: section"):
        load_scenario(path)


def test_too_many_issues_are_refused(tmp_path: Path) -> None:
    issues = "".join(
        f"    - {{issued: {{day: {d}, at: '{h:02d}:00'}}, clouds: []}}\n"
        for d in range(5)
        for h in range(24)
    )
    with pytest.raises(ScenarioError, match=r"forecast\.pv_clouds: List should have at most 96"):
        load_scenario(_scenario(tmp_path, "  pv_clouds:\n" + issues))

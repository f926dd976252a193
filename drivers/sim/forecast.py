"""The forecasts a site would receive, made from the scenario: a weather service's cloud-factor
forecast, issued at the scenario's times, written out or made from the plant's true cloud
profile with a seeded error. The co-simulation hands each payload to the controller at its
issue time, as a weather service's message over MQTT would arrive (docs/simulator.md,
"Forecasts"); the controller never sees the plant's truth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from controller.tariff import seconds_of_day
from drivers.sim.scenario import CloudForecastIssue, CloudPoint, ForecastCloudPoint, Scenario

# What a forecast forecasts: the share of clear-sky irradiance on the array (a clear-sky index).
PV_CLOUDS = "pv_clouds"


@dataclass(frozen=True)
class IssuedForecast:
    """One forecast as sent: when (simulated seconds after the scenario's start) and its points
    (seconds after the start, cloud factor), linear between points."""

    issued_s: float
    kind: str
    source: str
    points: tuple[tuple[float, float], ...]

    def payload(self, start_ms: int) -> dict[str, Any]:
        """The message a weather service's bridge would publish on the site's forecast topic
        (docs/scheduler: `{base}/forecast/pv`): times as UTC ms on the site's clock."""
        return {
            "issued_ms": start_ms + round(self.issued_s * 1000),
            "source": self.source,
            "points": [
                {"at_ms": start_ms + round(t * 1000), "factor": round(factor, 4)}
                for t, factor in self.points
            ],
        }


def clouds_at(points: Sequence[CloudPoint | ForecastCloudPoint], second_of_day: float) -> float:
    """A cloud profile (times of day -> factor) at a second of the day: linear between its
    points, flat outside, clear (1) without points; the plant's rule (plant/pv.py)."""
    if not points:
        return 1.0
    times = [seconds_of_day(p.at) for p in points]
    return float(np.interp(second_of_day, times, [p.factor for p in points]))


def _grid(issue: CloudForecastIssue, issued_s: float, start: datetime) -> list[float]:
    """Point times (s after the start) on the site's clock: every `resolution` from the last
    grid time at or before the issue, to the issue plus its horizon (a weather service's hourly
    points on the hour)."""
    offset = seconds_of_day(start.time())
    first = math.floor((issued_s + offset) / issue.resolution) * issue.resolution - offset
    count = math.ceil((issued_s + issue.horizon - first) / issue.resolution) + 1
    return [first + k * issue.resolution for k in range(count)]


def _ar1(rng: random.Random, n: int, sigma: float, phi: float) -> list[float]:
    """n points of a stationary AR(1) series with standard deviation sigma."""
    values: list[float] = []
    innovation = sigma * math.sqrt(max(0.0, 1.0 - phi * phi))
    e = rng.gauss(0.0, sigma) if sigma > 0 else 0.0
    for _ in range(n):
        values.append(e)
        e = phi * e + (rng.gauss(0.0, innovation) if innovation > 0 else 0.0)
    return values


def pv_cloud_forecasts(scenario: Scenario, seed: int | None = None) -> list[IssuedForecast]:
    """Every cloud-factor forecast of the scenario, in issue order. With `error:` the forecast
    is the true profile (`pv.clouds`) plus bias plus an AR(1) error seeded from the run's seed
    and the issue's index, clipped to 0..1: the same seed gives the same forecasts, so runs
    compare."""
    if scenario.forecast is None or scenario.pv is None:
        return []
    truth = scenario.pv.clouds
    offset = seconds_of_day(scenario.start.time())
    run_seed = scenario.seed if seed is None else seed
    issued: list[IssuedForecast] = []
    for index, issue in enumerate(scenario.forecast.pv_clouds):
        at = issue.issued.seconds_after(scenario.start)
        times = _grid(issue, at, scenario.start)
        if issue.clouds is not None:
            factors = [clouds_at(issue.clouds, (t + offset) % 86400.0) for t in times]
        else:
            error = issue.error
            assert error is not None  # the model's validator: exactly one of the two
            rng = random.Random(f"{run_seed}/forecast/{PV_CLOUDS}/{index}")
            phi = math.exp(-issue.resolution / error.correlation)
            noise = _ar1(rng, len(times), error.sigma, phi)
            factors = [
                min(1.0, max(0.0, clouds_at(truth, (t + offset) % 86400.0) + error.bias + e))
                for t, e in zip(times, noise, strict=True)
            ]
        source = f"scenario {scenario.name}, issue {index}"
        issued.append(
            IssuedForecast(at, PV_CLOUDS, source, tuple(zip(times, factors, strict=True)))
        )
    return issued

"""The PV forecast, in the solver's process only: pvlib (with pandas and scipy, ~100 MB) never
loads in the daemon. Ineichen-Perez clear sky at the site, Hay-Davies onto the array's plane,
PVWatts DC less the system losses, clipped by the inverter; times a cloud factor per step. Cell
temperature is taken at 25 degC: a forecast's clouds err by far more than the few % the
temperature derating would add.

The cloud factor is what the site's own PV meter says first and the weather service's forecast
after (docs/rules.md, "Scheduler: forecasts"): the measured clear-sky index (the metered PV over
the clear-sky PV of the same minutes) is held for the next steps and blended back, linearly over
`persistence_h`, to the forecast's factor. The worker computes it a second time with the
forecast's factor times `forecast_share`: the sun the plan's peak must also hold with."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pvlib

from controller.scheduler.wire import PvWire

# Irradiance samples per step: the step's average power, not its middle's.
SAMPLES_PER_STEP = 5
# Below this share of the inverter's kW of clear sky (dawn, dusk, night) the measured index is
# noise (a few kW of diffuse light over almost none): the forecast's factor is kept.
MIN_CLEAR_SHARE = 0.1
# A clear-sky index above this is cloud-edge enhancement of the minutes measured, not a forecast.
MAX_INDEX = 1.0


def clear_sky_kw(pv: PvWire, start_ms: int, step_ms: float, steps: int) -> np.ndarray:
    """The array's AC kW under a clear sky, on average over each of `steps` steps."""
    offsets = (np.arange(SAMPLES_PER_STEP) + 0.5) / SAMPLES_PER_STEP * step_ms
    instants = (start_ms + np.arange(steps)[:, None] * step_ms + offsets[None, :]).ravel()
    # The wall clock reads `wall_clock_zone`'s local time (UTC on a real gateway).
    times = pd.DatetimeIndex(pd.to_datetime(instants, unit="ms")).tz_localize(
        pv.wall_clock_zone, ambiguous="NaT", nonexistent="shift_forward"
    )
    location = pvlib.location.Location(pv.latitude, pv.longitude, altitude=pv.altitude_m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pvlib on a newer pandas: deprecations, not answers
        solar = location.get_solarposition(times)
        sky = location.get_clearsky(times, model="ineichen", solar_position=solar)
        poa = pvlib.irradiance.get_total_irradiance(
            surface_tilt=pv.tilt_deg,
            surface_azimuth=pv.azimuth_deg,
            solar_zenith=solar["apparent_zenith"],
            solar_azimuth=solar["azimuth"],
            dni=sky["dni"],
            ghi=sky["ghi"],
            dhi=sky["dhi"],
            dni_extra=pvlib.irradiance.get_extra_radiation(times),
            model="haydavies",
        )
    irradiance = np.clip(np.nan_to_num(poa["poa_global"].to_numpy(dtype=float)), 0.0, None)
    dc_kw = pv.kwp * irradiance / 1000.0 * (1.0 - pv.system_losses)
    ac_kw = np.minimum(dc_kw * pv.inverter_efficiency, pv.inverter_kw)
    return np.asarray(ac_kw.reshape(steps, SAMPLES_PER_STEP).mean(axis=1), dtype=float)


def measured_index(pv: PvWire) -> float | None:
    """The clear-sky index the PV meter measured, or None (not measured, or too little sun to
    tell)."""
    if pv.measured_kw is None or pv.measured_from_ms is None or pv.measured_to_ms is None:
        return None
    span = pv.measured_to_ms - pv.measured_from_ms
    clear = float(clear_sky_kw(pv, pv.measured_from_ms, span, 1)[0])
    if clear < MIN_CLEAR_SHARE * pv.inverter_kw:
        return None
    return min(max(pv.measured_kw / clear, 0.0), MAX_INDEX)


def cloud_factors(
    pv: PvWire, start_ms: int, step_ms: float, index: float | None, share: float = 1.0
) -> list[float]:
    """Each step's factor: the measured index blended back linearly, over `persistence_h` from
    the end of the measurement to the step's middle, to the forecast's factor times `share`."""
    forecast = [f * share for f in _cloud(pv.cloud)]
    if index is None or pv.measured_to_ms is None or pv.persistence_h <= 0:
        return forecast
    out = []
    for i, factor in enumerate(forecast):
        middle = start_ms + (i + 0.5) * step_ms
        lead_h = max(middle - pv.measured_to_ms, 0.0) / 3_600_000
        held = max(1.0 - lead_h / pv.persistence_h, 0.0)
        out.append(held * index + (1.0 - held) * factor)
    return out


def pv_forecast_kw(
    pv: PvWire, start_ms: int, step_minutes: float, steps: int, share: float = 1.0
) -> list[float]:
    """The array's expected AC kW per step: clear sky times the step's cloud factor (the
    forecast's factor times `share` where the measured index no longer leads)."""
    return pv_forecasts_kw(pv, start_ms, step_minutes, steps, (share,))[0]


def pv_forecasts_kw(
    pv: PvWire, start_ms: int, step_minutes: float, steps: int, shares: Sequence[float]
) -> list[list[float]]:
    """`pv_forecast_kw` for each of `shares`, the clear sky computed once."""
    step_ms = step_minutes * 60_000
    clear = clear_sky_kw(pv, start_ms, step_ms, steps)
    index = measured_index(pv)
    out = []
    for share in shares:
        factors = cloud_factors(pv, start_ms, step_ms, index, share)
        out.append([round(float(kw * cloud), 4) for kw, cloud in zip(clear, factors, strict=True)])
    return out


def _cloud(factors: Sequence[float]) -> list[float]:
    return [min(max(float(f), 0.0), 1.0) for f in factors]

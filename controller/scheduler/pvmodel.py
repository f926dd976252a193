"""The PV forecast's clear-sky part, in the solver's process only: pvlib (with pandas and scipy,
~100 MB) never loads in the daemon. Ineichen-Perez clear sky at the site, Hay-Davies onto the
array's plane, PVWatts DC less the system losses, clipped by the inverter; times the cloud
factor fed to the daemon. Cell temperature is taken at 25 degC: a forecast's clouds err by far
more than the few % the temperature derating would add."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pvlib

from controller.scheduler.wire import PvWire

# Irradiance samples per step: the step's average power, not its middle's.
SAMPLES_PER_STEP = 5


def pv_forecast_kw(pv: PvWire, start_ms: int, step_minutes: float, steps: int) -> list[float]:
    """The array's expected AC kW per step: clear sky times the step's cloud factor."""
    step_ms = step_minutes * 60_000
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
    clear = ac_kw.reshape(steps, SAMPLES_PER_STEP).mean(axis=1)
    return [round(float(kw * cloud), 4) for kw, cloud in zip(clear, _cloud(pv.cloud), strict=True)]


def _cloud(factors: Sequence[float]) -> list[float]:
    return [min(max(float(f), 0.0), 1.0) for f in factors]

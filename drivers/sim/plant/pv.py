"""A PV array behind the site meter, computed with pvlib (the field's library) so the sun, the
plane of array, the module temperature and the inverter follow published models, not ours.

pvlib brings pandas and scipy: this module is imported only when a scenario has `pv:`, and
pvlib is in the `sim` extra, never in the daemon's dependencies (docs/simulator.md, "PV array").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pvlib

from drivers.sim.scenario import PvSpec, seconds_of_day

# Clear-sky irradiance is computed per local day on this grid and interpolated between.
GRID_S = 60.0


@dataclass(frozen=True)
class PvStep:
    ac_kw: float
    dc_kw: float
    clipped_kw: float  # DC power the inverter could not take (above its DC rating)
    poa_w_m2: float  # plane-of-array irradiance after clouds
    cell_c: float


def cloud_factor(spec: PvSpec, now: datetime) -> float:
    """The cloud profile at `now`: linear between its points, flat before the first and after
    the last; clear (1) without points."""
    if not spec.clouds:
        return 1.0
    times = [seconds_of_day(c.at) for c in spec.clouds]
    factors = [c.factor for c in spec.clouds]
    return float(np.interp(seconds_of_day(now.time()), times, factors))


class PvArray:
    """`step(now, dt, ambient_c)` gives the mean AC power over the step; `now` is site time."""

    def __init__(self, spec: PvSpec) -> None:
        self.spec = spec
        self.location = pvlib.location.Location(
            spec.latitude, spec.longitude, tz=spec.timezone, altitude=spec.altitude_m
        )
        self._temperature = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][spec.mounting]
        self._days: dict[date, np.ndarray] = {}
        self.power_kw = 0.0
        self.dc_kw = 0.0
        self.cell_c = 0.0
        self.poa_w_m2 = 0.0
        self.energy_kwh = 0.0

    def clear_sky_poa(self, day: date) -> np.ndarray:
        """Plane-of-array irradiance (W/m2) under a clear sky on `GRID_S` steps of a local day:
        Ineichen-Perez clear sky with the Linke turbidity climatology, Hay-Davies transposition."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        start = pd.Timestamp(datetime.combine(day, datetime.min.time()), tz=self.spec.timezone)
        times = pd.date_range(start, start + timedelta(days=1), freq=f"{int(GRID_S)}s")
        with warnings.catch_warnings():
            # pvlib 0.16 still calls DatetimeIndex.dayofyear, which pandas 3 deprecates.
            warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
            return self._poa_on(day, times)

    def _poa_on(self, day: date, times: pd.DatetimeIndex) -> np.ndarray:
        solar = self.location.get_solarposition(times)
        sky = self.location.get_clearsky(times, model="ineichen", solar_position=solar)
        poa = pvlib.irradiance.get_total_irradiance(
            surface_tilt=self.spec.tilt_deg,
            surface_azimuth=self.spec.azimuth_deg,
            solar_zenith=solar["apparent_zenith"],
            solar_azimuth=solar["azimuth"],
            dni=sky["dni"],
            ghi=sky["ghi"],
            dhi=sky["dhi"],
            dni_extra=pvlib.irradiance.get_extra_radiation(times),
            model="haydavies",
        )
        values: np.ndarray = np.clip(
            np.nan_to_num(poa["poa_global"].to_numpy(dtype=float), nan=0.0), 0.0, None
        )
        self._days[day] = values
        return values

    def step(self, now: datetime, dt: float, ambient_c: float) -> PvStep:
        """Mean power over `[now, now + dt)`, from the irradiance at its middle."""
        spec = self.spec
        mid = now + timedelta(seconds=dt / 2)
        grid = self.clear_sky_poa(mid.date())
        position = seconds_of_day(mid.time()) / GRID_S
        i = min(int(position), len(grid) - 2)
        clear = float(grid[i] + (grid[i + 1] - grid[i]) * (position - i))
        poa = clear * cloud_factor(spec, mid)
        cell = float(
            pvlib.temperature.sapm_cell(
                poa,
                ambient_c,
                spec.wind_m_s,
                self._temperature["a"],
                self._temperature["b"],
                self._temperature["deltaT"],
            )
        )
        if poa <= 0.0:
            result = PvStep(0.0, 0.0, 0.0, 0.0, cell)
        else:
            dc_w = float(
                pvlib.pvsystem.pvwatts_dc(
                    poa, cell, spec.kwp * 1000.0, spec.temperature_coefficient
                )
            ) * (1.0 - spec.system_losses)
            dc_rating_w = spec.inverter_ac_kw * 1000.0 / spec.inverter_efficiency
            taken_w = min(dc_w, dc_rating_w)
            ac_w = float(
                pvlib.inverter.pvwatts(taken_w, dc_rating_w, eta_inv_nom=spec.inverter_efficiency)
            )
            result = PvStep(
                ac_kw=max(0.0, ac_w) / 1000.0,
                dc_kw=taken_w / 1000.0,
                clipped_kw=(dc_w - taken_w) / 1000.0,
                poa_w_m2=poa,
                cell_c=cell,
            )
        self.power_kw = result.ac_kw
        self.dc_kw = result.dc_kw
        self.cell_c = result.cell_c
        self.poa_w_m2 = result.poa_w_m2
        self.energy_kwh += result.ac_kw * dt / 3600.0
        return result

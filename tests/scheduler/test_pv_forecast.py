"""The PV forecast from what the site's PV meter says (docs/rules.md, "Scheduler: forecasts"):
the measured clear-sky index held for the next steps and blended back to the forecast's cloud
factor over `persistence`; the share of the forecast the plan counts on; a re-plan when the
metered PV leaves the plan's. Hand-calculated on the solar cell's array (pvlib's clear sky)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.scheduler import lp
from controller.scheduler.board import AcceptedPlan, PlanTarget
from controller.scheduler.problem import Problem
from controller.scheduler.pvmodel import clear_sky_kw, cloud_factors, pv_forecast_kw
from controller.scheduler.wire import PvWire
from tests.scheduler.cell import PV_ARRAY
from tests.scheduler.forecasts import cloud_forecast, payload
from tests.scheduler.problems import battery
from tests.scheduler.test_planner_inputs import MINUTE_MS, MONDAY_MS, Site

STEP_MS = 15 * MINUTE_MS
HOUR_MS = 60 * MINUTE_MS


def array(**measured: object) -> PvWire:
    return PvWire.model_validate(
        {
            **PV_ARRAY,
            "inverter_kw": 125,
            "inverter_efficiency": 0.96,
            "system_losses": 0.14,
            "wall_clock_zone": "Europe/Berlin",
            "cloud": [1.0] * 16,  # the forecast: clear
            **measured,
        }
    )


def test_the_measured_clear_sky_index_leads_the_forecast_for_hours() -> None:
    noon = MONDAY_MS + 12 * HOUR_MS  # 12:00 on the wall clock (Stuttgart's local time)
    clear_then = float(clear_sky_kw(array(), noon - STEP_MS, STEP_MS, 1)[0])
    assert clear_then > 80  # a June noon on 150 kWp
    # The meter saw a fifth of clear sky over 11:45-12:00 (an overcast sky).
    pv = array(
        measured_kw=0.2 * clear_then,
        measured_from_ms=noon - STEP_MS,
        measured_to_ms=noon,
        persistence_h=3.0,
    )
    factors = cloud_factors(pv, noon, STEP_MS, 0.2)
    # Step i's middle is (i + 0.5) / 4 h after the measurement: the index held by
    # 1 - lead / 3 h, the forecast's 1.0 for the rest; from 15:00 on the forecast alone.
    expected = [
        max(1 - (i + 0.5) / 4 / 3, 0) * 0.2 + (1 - max(1 - (i + 0.5) / 4 / 3, 0)) * 1.0
        for i in range(16)
    ]
    assert factors == pytest.approx(expected)
    assert factors[0] == pytest.approx(0.2 + 0.8 * 0.125 / 3)
    assert factors[12:] == pytest.approx([1.0] * 4)
    # The kW per step: clear sky times those factors (the index measured from the meter).
    clear = clear_sky_kw(pv, noon, STEP_MS, 16)
    got = pv_forecast_kw(pv, noon, 15, 16)
    assert got == pytest.approx([c * f for c, f in zip(clear, expected, strict=True)], abs=1e-3)
    assert got[0] < 0.25 * clear[0]  # the clear forecast no longer believed for the next step


def test_no_measurement_or_too_little_sun_keeps_the_forecast_s_factor_times_the_share() -> None:
    midnight = MONDAY_MS
    # At night the clear sky is nothing: an index of 0 kW over 0 kW tells nothing.
    pv = array(
        measured_kw=0.0,
        measured_from_ms=midnight - STEP_MS,
        measured_to_ms=midnight,
        persistence_h=3.0,
        forecast_share=0.6,
    )
    assert pv_forecast_kw(pv, midnight, 15, 16, 0.6) == pytest.approx(
        [round(float(c) * 0.6, 4) for c in clear_sky_kw(pv, midnight, STEP_MS, 16)], abs=1e-3
    )
    assert cloud_factors(array(), midnight, STEP_MS, None, 0.6) == [0.6] * 16
    with pytest.raises(ValueError, match="all or none"):
        array(measured_kw=10.0)
    with pytest.raises(ValueError, match="after"):
        array(measured_kw=10.0, measured_from_ms=midnight, measured_to_ms=midnight)


def test_the_planner_sends_the_pv_metered_over_the_last_step(tmp_path: Path) -> None:
    site = Site(MONDAY_MS + 11 * HOUR_MS, tmp_path)  # 11:00
    site.run(20, meter=150.0, battery=0.0, soc=50.0, pv=24.0)  # 11:00:10 .. 11:20:00
    assert site.planner.offer_pv_forecast(payload(cloud_forecast(site.clock.wall_ms())), "t")
    request = site.planner.request(site.clock.wall_ms())
    # The plan's demand charge is the month's: the sunless case bounds the same peak.
    assert (request.problem.pv_low_demand_charge_per_kw is None) == (
        request.problem.demand_charge_per_kw == 9.0
    )
    pv = request.pv
    assert pv is not None
    assert pv.cloud == [0.9] * 96  # the forecast's factors, as fed
    assert pv.measured_kw == 24.0
    now = site.clock.wall_ms()
    assert pv.measured_to_ms == now
    assert pv.measured_from_ms == now - STEP_MS + 10_000  # the readings of the last 15 min
    assert pv.persistence_h == 3.0
    assert pv.forecast_share == 0.0  # the peak holds without sun the meter has not seen


def test_pv_off_the_plan_is_a_disturbance_once_it_holds(tmp_path: Path) -> None:
    site = Site(MONDAY_MS + 12 * HOUR_MS, tmp_path)
    planner = site.planner
    now = site.clock.wall_ms()
    planner._last_slot = now
    step = PlanTarget(
        start_ms=now,
        end_ms=now + STEP_MS,
        battery_kw=0.0,
        import_kw=70.0,
        export_kw=0.0,
        soc_pct=50.0,
        peak_kw=170.0,
        load_kw=170.0,
        pv_kw=100.0,
        soc_start_pct=50.0,
    )
    planner.board.accept(AcceptedPlan((step,), created_ms=now, valid_until_ms=now + HOUR_MS))
    # The load as forecast, the PV 25 kW short of the plan's: within the 30 kW band.
    site.run(3, meter=95.0, battery=0.0, soc=50.0, pv=75.0)
    assert planner.due(site.clock.wall_ms()) == ""
    # Overcast: 20 kW where the plan has 100 (the net load 80 kW off: the load's own check
    # would wait for the step's average to pass 50 kW).
    site.run(1, meter=150.0, battery=0.0, soc=50.0, pv=20.0)
    assert planner.due(site.clock.wall_ms()) == ""  # not yet a minute of it
    site.run(1.5, meter=150.0, battery=0.0, soc=50.0, pv=20.0)
    assert planner.due(site.clock.wall_ms()) == "PV 20.0 kW off the plan's 100.0 kW"


def test_the_plan_keeps_what_the_peak_needs_if_the_sun_does_not_come() -> None:
    """Two 1-h steps, 100 kW of load each, 50 kWh in a lossless battery, the demand charge on
    the highest hour. Forecast: no sun, then 50 kW. Trusting it, the plan spends all 50 kWh in
    the first hour (import 50, 50: peak 50 kW). Holding the peak without the second hour's sun
    too (`pv_low_kw`), the first hour's discharge d leaves 50 - d for a sunless second hour:
    peak = max(100 - d, 100 - (50 - d)), least at d = 25: 75 kW, and 25 kWh kept."""

    def problem(
        pv_low: tuple[float, ...] | None, charge: float = 10.0, low_charge: float | None = None
    ) -> Problem:
        return Problem(
            start_ms=0,
            step_minutes=60,
            base_load_kw=(100.0, 100.0),
            pv_kw=(0.0, 50.0),
            pv_low_kw=pv_low,
            import_price=(0.1, 0.1),
            export_price=(0.0, 0.0),
            demand_charge_per_kw=charge,
            pv_low_demand_charge_per_kw=low_charge,
            battery=battery(
                soc_kwh=50.0, soc_min_kwh=0.0, charge_efficiency=1.0, discharge_efficiency=1.0
            ),
        )

    trusting = lp.solve(problem(None))
    assert trusting.steps[0].battery_kw == pytest.approx(50.0, abs=1e-4)
    assert trusting.peak_kw == pytest.approx(50.0, abs=1e-4)
    holding = lp.solve(problem((0.0, 0.0)))
    assert holding.steps[0].battery_kw == pytest.approx(25.0, abs=1e-4)
    assert holding.steps[0].soc_kwh == pytest.approx(25.0, abs=1e-4)
    assert holding.peak_kw == pytest.approx(75.0, abs=1e-4)
    assert holding.steps[1].import_kw <= 75.0 + 1e-4  # the sun that comes is used, not exported
    # The expected case's peak priced at a day's share of the month (1 per kW), the sunless
    # case's own at the month's 10: the same 25 kWh kept (the expected case alone would be
    # indifferent to when the battery gives its 50 kWh above the peak of 50).
    own = lp.solve(problem((0.0, 0.0), charge=1.0, low_charge=10.0))
    assert own.steps[0].battery_kw == pytest.approx(25.0, abs=1e-4)
    assert own.steps[0].soc_kwh == pytest.approx(25.0, abs=1e-4)

"""The planner on a recorded day, without the plant: every 15 min the real `Planner` is asked
for its problem (its load and PV forecasts learned from the readings it was fed), the solver's
code solves it in this process, and the plan's first step is followed as `battery_schedule`
follows it (the plan's kW, more discharge when the import would pass the plan's peak, no
discharge into an unplanned export, the battery's limits) against the day's true load and PV
(tests/scheduler/data/solar-days-recorded.json, per 15-min step). What comes out is the import
of each step: its peak and its cost. A battery of one efficiency point and step averages: a
judge of the plan's beliefs, not of the plant (the co-simulation report is that)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from controller.scheduler.worker import solve_request
from tests.scheduler.test_planner_inputs import MONDAY_MS, Site

RECORDED = Path(__file__).parent / "data" / "solar-days-recorded.json"
STEP_MS = 15 * 60_000
STEP_H = 0.25
READINGS_PER_STEP = 15  # a reading a minute

# configs/cosim-scheduler.yaml's load schedule and priors (the site's first-day guesses).
_BREAKS = [
    ("09:00", "09:15"),
    ("11:45", "12:15"),
    ("15:00", "15:20"),
    ("17:00", "17:15"),
    ("19:30", "20:00"),
]
_WORK = [
    ("06:00", "09:00"),
    ("09:15", "11:45"),
    ("12:15", "15:00"),
    ("15:20", "17:00"),
    ("17:15", "19:30"),
    ("20:00", "22:00"),
]
_DAYS = ["mon", "tue", "wed", "thu", "fri"]
LOAD: dict[str, Any] = {
    "schedule": {
        "timezone": "UTC",
        "default": "night",
        "periods": [{"name": "warmup", "days": _DAYS, "start": "05:30", "end": "06:00"}]
        + [{"name": "production", "days": _DAYS, "start": a, "end": b} for a, b in _WORK]
        + [{"name": "pause", "days": _DAYS, "start": a, "end": b} for a, b in _BREAKS],
    },
    "prior_kw": {"night": 70, "warmup": 120, "production": 190, "pause": 90},
    "pv_power": "pv-inverter.inverter_w",
}
BATTERY: dict[str, Any] = {
    "power": "bess-1.inverter_w",
    "soc": "bess-1.storage_chastate",
    "capacity_kwh": 200,
    "max_charge_kw": 100,
    "max_discharge_kw": 100,
    "charge_efficiency": 0.91,
    "discharge_efficiency": 0.91,
    "standby_loss_kw": 0.2,
    "degradation_per_kwh": 0.0125,
    "reserve_pct": 12,
    "soc_max_pct": 94,
}
PEAK_MARGIN_KW = 2.0  # battery_schedule's default
OFF_PEAK, PEAK, EXPORT = 0.16, 0.24, 0.07
DEMAND_PER_KW_DAY = 9.0 / 30


def recorded(scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED.read_text())[scenario]
    return data


@dataclass
class Day:
    import_kw: list[float]
    battery_kw: list[float]
    soc_pct: list[float]
    plan_peak_kw: list[float]
    stored_kwh: float  # at the end, less at the start

    @property
    def peak_kw(self) -> float:
        return max(self.import_kw)

    @property
    def net_cost_credited(self) -> float:
        """Energy at the tariff's prices, the demand charge prorated to the day, the energy
        left in the battery credited at the off-peak price (as the report judges)."""
        energy = 0.0
        for i, kw in enumerate(self.import_kw):
            price = PEAK if 32 <= i < 80 else OFF_PEAK
            energy += (max(kw, 0.0) * price + min(kw, 0.0) * EXPORT) * STEP_H
        return energy + DEMAND_PER_KW_DAY * self.peak_kw - OFF_PEAK * self.stored_kwh


def replay(
    tmp_path: Path,
    scenario: str,
    cloud: list[float] | float,
    soc_pct: float = 50.0,
    **scheduler: Any,
) -> Day:
    """The day `scenario` with the plan re-made every 15 min; the cloud forecast (one factor
    per hour from midnight, or one for the whole day) fed at 00:00, 06:00 and 12:00, as the
    scenarios' day-ahead forecast and its two updates."""
    truth = recorded(scenario)
    load, pv = truth["base_load_kw"], truth["pv_kw"]
    site = Site(MONDAY_MS, tmp_path, load=LOAD, battery=BATTERY, **scheduler)
    planner = site.planner
    factors = [cloud] * 49 if isinstance(cloud, float) else list(cloud)
    points = [{"at_ms": MONDAY_MS + h * 3_600_000, "factor": f} for h, f in enumerate(factors)]
    soc_kwh = 200 * soc_pct / 100
    start_kwh = soc_kwh
    site.read(meter=load[0], battery=0.0, soc=soc_pct, pv=0.0)
    day = Day([], [], [], [], 0.0)
    for i in range(96):
        now = MONDAY_MS + i * STEP_MS
        if i % 24 == 0:
            forecast = {"issued_ms": now, "source": "replay", "points": points}
            assert planner.offer_pv_forecast(orjson.dumps(forecast), "replay")
        wire = solve_request(planner.request(now))
        step = wire.steps[0]
        net = load[i] - pv[i]
        kw = step.battery_kw
        ceiling = wire.peak_kw - PEAK_MARGIN_KW
        if net - kw > ceiling:
            kw = net - ceiling
        elif kw > 0 and net - kw < -step.export_kw:
            kw = max(net + step.export_kw, 0.0)
        kw = min(max(kw, -100.0), 100.0)
        # The SoC window of the rule (12 .. 95 %) at the plan's efficiencies.
        if kw > 0:
            kw = min(kw, max(soc_kwh - 24.0, 0.0) * 0.91 / STEP_H)
            soc_kwh -= kw * STEP_H / 0.91
        else:
            kw = max(kw, -max(190.0 - soc_kwh, 0.0) / 0.91 / STEP_H)
            soc_kwh -= kw * STEP_H * 0.91
        soc_kwh = max(soc_kwh - 0.2 * STEP_H, 0.0)
        day.import_kw.append(net - kw)
        day.battery_kw.append(kw)
        day.soc_pct.append(soc_kwh / 2)
        day.plan_peak_kw.append(wire.peak_kw)
        for _ in range(READINGS_PER_STEP):
            site.clock.advance(60)
            site.read(meter=net - kw, battery=kw, soc=soc_kwh / 2, pv=pv[i])
            planner.observe(site.clock.wall_ms())
    day.stored_kwh = soc_kwh - start_kwh
    return day

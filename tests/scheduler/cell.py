"""The simulated solar-day cell's controller with the scheduler: configs/cosim-storage.yaml plus
a `tariff:` (the scenario's), a `scheduler:` section and the `battery_schedule` rule above the
reactive battery rules. Built here so the tests do not depend on a config file another part of
the work may change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller.config import Config, parse_config

STORAGE = Path(__file__).parents[2] / "configs" / "cosim-storage.yaml"

TARIFF: dict[str, Any] = {
    # The co-simulation's clock reads the scenario's local time as UTC.
    "timezone": "UTC",
    "currency": "EUR",
    "default_price_per_kwh": 0.16,
    "periods": [{"name": "peak", "start": "08:00", "end": "20:00", "price_per_kwh": 0.24}],
    "demand_charge_per_kw_month": 9.0,
    "water_price_per_m3": 3.5,
    "export_price_per_kwh": 0.07,
}

# The solar-day cell's rooftop array (Stuttgart), as the scheduler's `pv:` names it.
PV_ARRAY: dict[str, Any] = {
    "latitude": 48.78,
    "longitude": 9.18,
    "altitude_m": 245,
    "tilt_deg": 15,
    "azimuth_deg": 180,
    "kwp": 150,
}


def scheduler_section(schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "solve_time_limit": "2s",
        "worker_timeout": "30s",
        "site": {"power": "site-meter.power_kw"},
        "battery": {
            "power": "bess-1.inverter_w",
            "soc": "bess-1.storage_chastate",
            "capacity_kwh": 200,
            "max_charge_kw": 100,
            "max_discharge_kw": 100,
            "reserve_pct": 12,
            "soc_max_pct": 94,
            "degradation_per_kwh": 0.01,
        },
        "load": {
            "schedule": schedule,
            "prior_kw": {"production": 170, "pause": 45},
            "pv_power": "pv-inverter.inverter_w",
        },
        "pv": {**PV_ARRAY, "wall_clock_zone": "Europe/Berlin", "max_age": "12h"},
    }


def scheduler_data(**scheduler: Any) -> dict[str, Any]:
    """configs/cosim-storage.yaml's data with the scheduler; `scheduler` overrides its keys."""
    data = yaml.safe_load(STORAGE.read_text(encoding="utf-8"))
    schedule = next(r for r in data["rules"] if r["kind"] == "idle_standby")["schedule"]
    section = scheduler_section(schedule)
    section.update(scheduler)
    data["tariff"] = dict(TARIFF)
    data["scheduler"] = section
    data["rules"].append(
        {
            "name": "battery_schedule",
            "kind": "battery_schedule",
            "priority": 30,
            "power": "site-meter.power_kw",
            "battery_power": "bess-1.inverter_w",
            "soc": "bess-1.storage_chastate",
            "setpoint": "bess-1.storage_outwrte",
            "max_discharge_kw": 100,
            "max_charge_kw": 100,
            "reserve_pct": 12,
            "soc_max_pct": 95,
        }
    )
    return data


def scheduler_config(**scheduler: Any) -> Config:
    return parse_config(yaml.safe_dump(scheduler_data(**scheduler)), "cosim-scheduler.yaml")

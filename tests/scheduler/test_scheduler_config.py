"""The `tariff:` and `scheduler:` sections: a good one loads; every bad value is refused with the
line and the path of what is wrong, NaN and inf included (as tests/test_config_limits.py does for
the rest of the config)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from controller.config import ConfigError, parse_config
from controller.scheduler.config import SchedulerConfig
from tests.scheduler.cell import scheduler_config, scheduler_data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml.safe_dump(data), "cell.yaml")
    return raised.value.problems


def test_the_test_cell_with_a_scheduler_loads() -> None:
    config = scheduler_config()
    assert isinstance(config.scheduler, SchedulerConfig)
    assert config.scheduler.step == 900
    assert config.scheduler.horizon == 86400
    assert config.tariff is not None
    assert config.tariff.timezone == "UTC"
    assert config.rules[-1].kind == "battery_schedule"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("scheduler", "battery", "capacity_kwh"), math.nan, "scheduler.battery.capacity_kwh"),
        (("scheduler", "battery", "max_charge_kw"), math.inf, "scheduler.battery.max_charge_kw"),
        (("scheduler", "battery", "charge_efficiency"), 1.5, "scheduler.battery.charge_efficiency"),
        (("tariff", "export_price_per_kwh"), math.nan, "tariff.export_price_per_kwh"),
        (("tariff", "demand_charge_per_kw_month"), -1, "tariff.demand_charge_per_kw_month"),
        (("scheduler", "load", "prior_kw", "production"), math.inf, "scheduler.load.prior_kw"),
        (("scheduler", "pv", "latitude"), 91, "scheduler.pv.latitude"),
        (("scheduler", "step"), "7min", "scheduler.step: 7min does not divide the hour"),
        (("scheduler", "horizon"), "24h30s", "scheduler.horizon"),
        (("scheduler", "worker_timeout"), "1s", "worker_timeout must be longer"),
        (("tariff", "timezone"), "Mars/Olympus", "unknown time zone"),
        (("scheduler", "site", "power"), "site-meter.nope", "scheduler.site.power: unknown tag"),
        (("scheduler", "battery", "soc"), "nowhere.soc", "scheduler.battery.soc: unknown tag"),
        (("scheduler", "battery", "end_value_per_kwh"), -0.1, "end_value_per_kwh"),
        (("scheduler", "battery", "end_value_per_kwh"), "soon", "end_value_per_kwh"),
        (("scheduler", "battery", "end_value_per_kwh"), math.nan, "end_value_per_kwh"),
    ],
)
def test_a_bad_value_is_refused_naming_where(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    data = scheduler_data()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = problems(data)
    assert any(message in line for line in found), found
    assert all(line.startswith("cell.yaml:") for line in found)


def test_a_scheduler_needs_a_tariff() -> None:
    data = scheduler_data()
    del data["tariff"]
    assert any("scheduler: plans against the tariff" in p for p in problems(data))


def test_battery_schedule_needs_a_scheduler() -> None:
    data = scheduler_data()
    del data["scheduler"]
    found = problems(data)
    assert any("battery_schedule follows the scheduler's plan" in p for p in found), found


def test_every_period_of_the_load_schedule_has_a_prior() -> None:
    data = scheduler_data()
    del data["scheduler"]["load"]["prior_kw"]["pause"]
    found = problems(data)
    assert any("scheduler.load.prior_kw" in p and "'pause'" in p for p in found), found


def test_pv_needs_the_pv_power_to_learn_the_load() -> None:
    data = scheduler_data()
    del data["scheduler"]["load"]["pv_power"]
    found = problems(data)
    assert any("scheduler.load: give pv_power with pv" in p for p in found), found


def test_an_ev_that_cannot_be_charged_by_departure_is_refused() -> None:
    data = scheduler_data()
    data["scheduler"]["evs"] = [
        {
            "name": "car",
            "connected": "process-plc.ev_charger_connected",
            "max_kw": 11,
            "arrive": "08:00",
            "depart": "10:00",
            "energy_kwh": 40,
        }
    ]
    found = problems(data)
    assert any("cannot be delivered at 11 kW in 2 h" in p for p in found), found

"""battery_peak_shaving and pv_self_consumption on step tables: what each writes for the site's
load with the battery idle, the SoC and the limits; the refresh that renews the device's revert
timer; the config checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from controller.rules.catalog import build_domain_rule
from controller.rules.config import RuleConfig
from controller.rules.energy.battery import rate_pct
from tests.rules.plantloop import Driven

BATTERY: dict[str, Any] = {
    "power": "meter.power_kw",
    "battery_power": "bess.power_kw",
    "soc": "bess.soc",
    "setpoint": "bess.rate",
    "max_discharge_kw": 100,
    "max_charge_kw": 50,
    "reserve_pct": 20,
    "soc_max_pct": 95,
    "refresh": "10s",
}


def rule(kind: str, **settings: Any) -> Driven:
    config = TypeAdapter(RuleConfig).validate_python(
        {"name": kind, "kind": kind, **BATTERY, **settings}
    )
    return Driven(build_domain_rule(config))  # type: ignore[arg-type]


def cycle(driven: Driven, meter: float, battery: float, soc: float) -> float | None:
    """One cycle 1 s after the last (the refresh nudge lands on odd 10 s periods only)."""
    out = driven.step({"meter.power_kw": meter, "bess.power_kw": battery, "bess.soc": soc})
    value = out.get("bess.rate")
    return None if value is None else float(value)


# meter kW (+ import, battery in it), battery kW (+ discharge), SoC % -> rate % (+ discharge of
# 100 kW, - charge of 50 kW), or None: nothing proposed.
PEAK_SHAVING = [
    (230.0, 0.0, 60.0, 30.0),  # 30 kW above the limit: 30 % of 100 kW
    (200.0, 30.0, 60.0, 30.0),  # the battery's own discharge does not hide the peak
    (200.0, 0.0, 60.0, 0.0),  # between recharge and limit: rests
    (330.0, 0.0, 60.0, 100.0),  # beyond max_discharge_kw: the limit
    (230.0, 0.0, 20.0, 0.0),  # at the reserve: no discharge
    (80.0, 0.0, 60.0, -40.0),  # 20 kW below recharge: charge 20 kW = 40 % of 50 kW
    (20.0, 0.0, 60.0, -100.0),  # 80 kW below: max_charge_kw
    (80.0, 0.0, 95.0, 0.0),  # full: no charge
    (110.0, -20.0, 60.0, -20.0),  # its own charge counts: load 90 kW, charge 10 kW (20 % of 50)
]


@pytest.mark.parametrize(("meter", "battery", "soc", "rate"), PEAK_SHAVING)
def test_battery_peak_shaving_step_table(
    meter: float, battery: float, soc: float, rate: float
) -> None:
    driven = rule("battery_peak_shaving", limit_kw=200, recharge_kw=100)
    assert cycle(driven, meter, battery, soc) == rate


def test_between_the_thresholds_yield_leaves_the_setpoint_to_a_lower_rule() -> None:
    driven = rule("battery_peak_shaving", limit_kw=200, recharge_kw=100, between="yield")
    assert cycle(driven, 150.0, 0.0, 60.0) is None
    assert cycle(driven, 230.0, 0.0, 60.0) == 30.0


# meter, battery, SoC -> rate; target 0 kW
SELF_CONSUMPTION = [
    (30.0, 0.0, 60.0, 30.0),  # import covered
    (-20.0, 0.0, 60.0, -40.0),  # surplus stored: 20 kW = 40 % of 50 kW
    (0.0, 30.0, 60.0, 30.0),  # already covering: keeps covering (no oscillation)
    (30.0, 0.0, 20.0, 0.0),  # at the reserve: no discharge
    (-20.0, 0.0, 20.0, -40.0),  # at the reserve it still stores surplus
    (-20.0, 0.0, 95.0, 0.0),  # full: the surplus is exported
    (-80.0, 0.0, 60.0, -100.0),  # more surplus than max_charge_kw
]


@pytest.mark.parametrize(("meter", "battery", "soc", "rate"), SELF_CONSUMPTION)
def test_pv_self_consumption_step_table(
    meter: float, battery: float, soc: float, rate: float
) -> None:
    assert cycle(rule("pv_self_consumption"), meter, battery, soc) == rate


def test_self_consumption_holds_the_grid_at_its_target() -> None:
    driven = rule("pv_self_consumption", target_kw=10)
    assert cycle(driven, 30.0, 0.0, 60.0) == 20.0


def test_a_held_setpoint_moves_by_the_refresh_step_every_other_refresh_period() -> None:
    """The device drops a rate that is not written again within its revert timer; the actuator
    writes only changes. So a held rate is nudged every other `refresh` period and the device
    sees a write at least every `refresh` seconds."""
    driven = rule("battery_peak_shaving", limit_kw=200, recharge_kw=100)
    rates = [cycle(driven, 230.0, 0.0, 60.0) for _ in range(30)]  # t = 1..30 s
    assert rates[:9] == [30.0] * 9  # t 1-9: first period
    assert rates[9:19] == [29.9] * 10  # t 10-19: nudged
    assert rates[19:29] == [30.0] * 10
    resting = [cycle(driven, 150.0, 0.0, 60.0) for _ in range(10)]  # t 31-40
    assert set(resting) == {0.1, 0.0}  # 0.1 % = 0.1 kW: below what the inverter runs at


def test_the_rate_is_a_share_of_the_limit_in_its_direction() -> None:
    config = TypeAdapter(RuleConfig).validate_python(
        {"name": "b", "kind": "pv_self_consumption", **BATTERY}
    )
    assert rate_pct(config, 25.0) == 25.0  # type: ignore[arg-type]
    assert rate_pct(config, -25.0) == -50.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("battery_peak_shaving", {"limit_kw": 100, "recharge_kw": 100}, "recharge_kw"),
        ("battery_peak_shaving", {"limit_kw": 100, "recharge_kw": 50, "reserve_pct": 95},
         "reserve_pct"),
        ("pv_self_consumption", {"max_charge_kw": 0}, "max_charge_kw"),
        ("pv_self_consumption", {"soc": "no-device-dot"}, "soc"),
        ("battery_peak_shaving", {"recharge_kw": 50}, "limit_kw"),
    ],
)
def test_bad_battery_settings_are_refused_naming_the_key(
    kind: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(RuleConfig).validate_python(
            {"name": "b", "kind": kind, **BATTERY, **settings}
        )

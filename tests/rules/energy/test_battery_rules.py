"""battery_peak_shaving and pv_self_consumption on step tables: what each writes for the site's
load with the battery idle, the SoC and the limits; a held rate proposed unchanged (the actuator
renews it on the device); the config checks."""

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
}


def rule(kind: str, **settings: Any) -> Driven:
    config = TypeAdapter(RuleConfig).validate_python(
        {"name": kind, "kind": kind, **BATTERY, **settings}
    )
    return Driven(build_domain_rule(config))  # type: ignore[arg-type]


def cycle(driven: Driven, meter: float, battery: float, soc: float) -> float | None:
    """One cycle 1 s after the last."""
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


def test_a_held_rate_is_proposed_unchanged_every_cycle() -> None:
    """No nudge: the rule proposes the rate it wants, the same one cycle after cycle; writing
    it again before the device's revert timer runs out is the actuator's refresh
    (tests/test_actuation.py, tests/controller/test_battery_cosim.py)."""
    driven = rule("battery_peak_shaving", limit_kw=200, recharge_kw=100)
    assert {cycle(driven, 230.0, 0.0, 60.0) for _ in range(30)} == {30.0}
    assert {cycle(driven, 150.0, 0.0, 60.0) for _ in range(30)} == {0.0}


@pytest.mark.parametrize("key", ["refresh", "refresh_step_pct"])
def test_the_rules_own_refresh_keys_are_refused_pointing_to_the_actuator(key: str) -> None:
    with pytest.raises(ValidationError, match=f"{key}: .*actuation.outputs"):
        TypeAdapter(RuleConfig).validate_python(
            {"name": "b", "kind": "pv_self_consumption", **BATTERY, key: "10s"}
        )


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

"""battery_peak_shaving and pv_self_consumption on step tables: what each writes for the site's
load with the battery idle, the SoC and the limits; a held rate proposed unchanged (the actuator
renews it on the device); the config checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from controller.config import Config
from controller.rules.catalog import build_domain_rule
from controller.rules.config import RuleConfig
from controller.rules.energy.battery import rate_pct
from controller.scheduler.config import TariffConfig
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


def rule(kind: str, tariff: TariffConfig | None = None, **settings: Any) -> Driven:
    """The rule of `kind` on BATTERY with `settings`; `tariff`: the config's top-level one."""
    config = TypeAdapter(RuleConfig).validate_python(
        {"name": kind, "kind": kind, **BATTERY, **settings}
    )
    return Driven(build_domain_rule(config, tariff=tariff))  # type: ignore[arg-type]


def cycle(
    driven: Driven, meter: float, battery: float, soc: float, dt: float = 1.0
) -> float | None:
    """One cycle `dt` s after the last."""
    out = driven.step({"meter.power_kw": meter, "bess.power_kw": battery, "bess.soc": soc}, dt)
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


# Efficient blocks (shave_min_kw 20, recharge_min_kw 30; limit 200, recharge 100): meter,
# battery, SoC -> rate. The MPS-100 inverter loses 28 % at 10 % load and 14 % at 20 %.
EFFICIENT_BLOCKS = [
    (205.0, 0.0, 60.0, 20.0),  # 5 kW above the limit: a 20 kW discharge, not 5
    (230.0, 0.0, 60.0, 30.0),  # 30 kW above: 30 kW, the need is above the least discharge
    (205.0, 0.0, 20.0, 0.0),  # at the reserve: nothing, whatever the block
    (90.0, 0.0, 60.0, -60.0),  # 10 kW below recharge: a 30 kW block (60 % of 50 kW)
    (60.0, 0.0, 60.0, -80.0),  # 40 kW below: 40 kW, the gap is above the block
    (90.0, 0.0, 95.0, 0.0),  # full: no block either
    (150.0, 0.0, 60.0, 0.0),  # between: rests
]


@pytest.mark.parametrize(("meter", "battery", "soc", "rate"), EFFICIENT_BLOCKS)
def test_shaves_and_recharges_are_never_smaller_than_their_least_power(
    meter: float, battery: float, soc: float, rate: float
) -> None:
    driven = rule(
        "battery_peak_shaving", limit_kw=200, recharge_kw=100, shave_min_kw=20,
        recharge_min_kw=30,
    )
    assert cycle(driven, meter, battery, soc) == rate


def test_a_recharge_block_never_takes_the_import_above_the_limit() -> None:
    driven = rule("battery_peak_shaving", limit_kw=120, recharge_kw=100, recharge_min_kw=40)
    assert cycle(driven, 90.0, 0.0, 60.0) == -60.0  # 30 kW: 90 + 30 = the 120 kW limit


def window_day(loads: list[float], **settings: Any) -> tuple[list[float], list[float]]:
    """battery_peak_shaving with a 15-min window (limit 200, recharge 100) every 10 s from
    midnight on `loads` (kW with the battery idle, one a minute), the battery giving what it
    is asked: the rates proposed (0 for none) and the meter each 10 s."""
    driven = rule(
        "battery_peak_shaving", limit_kw=200, recharge_kw=100, window="15min", **settings
    )
    rates: list[float] = []
    meters: list[float] = []
    battery = 0.0
    for load in loads:
        for _ in range(6):
            meter = load - battery
            meters.append(meter)
            rate = cycle(driven, meter, battery, 60.0, dt=10.0)
            rates.append(rate or 0.0)
            battery = (rate or 0.0) / 100 * (100.0 if (rate or 0.0) >= 0 else 50.0)
    return rates, meters


def test_with_a_window_only_what_takes_its_average_over_the_limit_is_shaved() -> None:
    """Window 1 (00:00-00:15): 150 kW for 10 min, then 230 kW: the window averages 176.7 kW,
    under the 200 kW limit, so the battery gives nothing (OpenEMS' instantaneous shaving would
    give 30 kW for 5 min). Window 2: 210 kW throughout: 10 kW too much on average, given."""
    rates, meters = window_day([150.0] * 10 + [230.0] * 5 + [210.0] * 15)
    assert set(rates[:89]) == {0.0}  # 00:00:10 to 00:14:50
    assert rates[89] == 30.0  # 00:15:00, window 2's start, at 230 kW: the excess at once
    assert all(r == pytest.approx(10.0, abs=0.2) for r in rates[90:])  # then 210 kW: 10 kW
    assert sum(meters[89:179]) / 90 == pytest.approx(200.0, abs=0.5)


def test_a_need_under_shave_min_kw_is_given_in_pulses_of_it() -> None:
    """Window 2 of the same day with shave_min_kw 50: the 10 kW the window needs on average is
    given as 50 kW for about 3 of its 15 min, then the battery rests; no small discharge."""
    rates, meters = window_day([150.0] * 15 + [210.0] * 15, shave_min_kw=50)
    assert set(rates[:89]) == {0.0}
    given = [r for r in rates[89:] if r > 0]
    assert set(given) == {50.0}
    assert 17 <= len(given) <= 20  # 3 min of 10 s cycles: 50 kW x 3 min = 10 kW x 15 min
    assert sum(meters[89:179]) / 90 == pytest.approx(200.0, abs=1.0)


# The config's top-level tariff (controller/tariff.py): dear 08:00-20:00 on workdays only.
TARIFF: dict[str, Any] = {
    "timezone": "UTC",
    "default_price_per_kwh": 0.16,
    "periods": [{"name": "peak", "start": "08:00", "end": "20:00", "price_per_kwh": 0.24}],
}

# hour, meter, SoC -> rate; limit 200, recharge 100, grid recharge by day up to 60 % SoC.
DEAR_RECHARGE = [
    (9, 60.0, 70.0, 0.0),  # dear, above 60 %: no grid recharge
    (9, -20.0, 70.0, -40.0),  # dear, above 60 %: the PV surplus (20 kW) still charges
    (9, 60.0, 50.0, -80.0),  # dear, under 60 %: recharged for the next peak
    (22, 60.0, 70.0, -80.0),  # cheap: recharged to soc_max
    (9, 230.0, 70.0, 30.0),  # shaving is not priced
    (5 * 24 + 9, 60.0, 70.0, -80.0),  # Saturday 09:00: the tariff's peak is workdays only
]


@pytest.mark.parametrize(("hour", "meter", "soc", "rate"), DEAR_RECHARGE)
def test_grid_recharge_in_a_dear_window_stops_at_dear_recharge_soc_pct(
    hour: int, meter: float, soc: float, rate: float
) -> None:
    """The prices are the config's top-level tariff (the scheduler's and the bill's)."""
    driven = rule(
        "battery_peak_shaving", limit_kw=200, recharge_kw=100, dear_recharge_soc_pct=60,
        tariff=TariffConfig.model_validate(TARIFF),
    )
    driven.t = hour * 3600.0
    assert cycle(driven, meter, 0.0, soc) == rate


def battery_cell(**rule_settings: Any) -> dict[str, Any]:
    """A config with a meter, a battery and battery_peak_shaving with `rule_settings`."""
    return {
        "gateway": {"id": "cell"},
        "devices": [
            {"name": "meter", "driver": "modbus", "link": {"transport": "tcp", "host": "h"},
             "tags": [{"name": "power_kw", "address": 0, "type": "float32"}]},
            {"name": "bess", "driver": "modbus", "link": {"transport": "tcp", "host": "b"},
             "tags": [{"name": "power_kw", "address": 0, "type": "float32"},
                      {"name": "soc", "address": 2, "type": "float32"},
                      {"name": "rate", "address": 4, "type": "int16", "writable": True,
                       "min": -100, "max": 100}]},
        ],
        "actuation": {"outputs": {"bess.rate": {"refresh": "10s"}}},
        "rules": [{"name": "shave", "kind": "battery_peak_shaving", **BATTERY,
                   "limit_kw": 200, "recharge_kw": 100, **rule_settings}],
    }


@pytest.mark.parametrize("kind", ["battery_peak_shaving", "pv_self_consumption"])
def test_a_battery_setpoint_without_refresh_is_refused(kind: str) -> None:
    """A SunSpec 124 rate held unchanged is handed back to the battery's local program when its
    revert timer runs out (InOutWRte_RvrtTms, 30 s on the simulated battery): the setpoint must
    be written again, by the actuator's refresh."""
    cell = battery_cell()
    cell["rules"][0]["kind"] = kind
    for key in ("limit_kw", "recharge_kw"):
        if kind != "battery_peak_shaving":
            del cell["rules"][0][key]
    Config.model_validate(cell)  # with refresh: loads
    cell["actuation"]["outputs"]["bess.rate"] = {"tolerance": 0.05}
    with pytest.raises(
        ValidationError, match=r"rules\[0\]\.setpoint: .*actuation\.outputs\.bess\.rate\.refresh"
    ):
        Config.model_validate(cell)
    del cell["actuation"]["outputs"]
    with pytest.raises(ValidationError, match=r"revert timer"):
        Config.model_validate(cell)


def test_a_rules_own_tariff_is_refused_pointing_to_the_top_level_tariff() -> None:
    """One tariff per config: the rule's own (a schedule plus prices) moved to `tariff:`."""
    own = {"timezone": "UTC", "default": "off-peak", "prices": {"off-peak": 0.16}}
    with pytest.raises(ValidationError, match=r"tariff: .*moved to the config's top-level"):
        Config.model_validate({**battery_cell(tariff=own), "tariff": TARIFF})


def test_dear_recharge_soc_pct_without_the_top_level_tariff_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"rules\[0\]\.dear_recharge_soc_pct: .*tariff:"):
        Config.model_validate(battery_cell(dear_recharge_soc_pct=60))
    config = Config.model_validate({**battery_cell(dear_recharge_soc_pct=60), "tariff": TARIFF})
    assert config.tariff is not None


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
        ("battery_peak_shaving", {"limit_kw": 100, "recharge_kw": 50, "window": "7min"},
         "does not divide the hour"),
        ("battery_schedule", {"window": "7min"}, "does not divide the hour"),
        ("battery_peak_shaving", {"limit_kw": 100, "recharge_kw": 50, "shave_min_kw": 150},
         "shave_min_kw"),
        ("battery_peak_shaving", {"limit_kw": 100, "recharge_kw": 50, "recharge_min_kw": 60},
         "recharge_min_kw"),
    ],
)
def test_bad_battery_settings_are_refused_naming_the_key(
    kind: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(RuleConfig).validate_python(
            {"name": "b", "kind": kind, **BATTERY, **settings}
        )

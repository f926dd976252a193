"""Chilled-water reset: trim and respond on the supply setpoint keeps the process limit with
its margin, on the plant and on known steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.energy.chiller_reset import ChillerReset, ChillerResetConfig
from drivers.sim.plant.chiller import chiller_cop
from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import Scenario
from tests.rules.plantloop import Driven, PlantLoop, scenario

POINTS = {
    "plc.chw_setpoint_c": "chiller.supply_setpoint_c",
    "plc.chw_return_c": "chiller.return_temp_c",
}


def config(**changes: Any) -> ChillerResetConfig:
    settings: dict[str, Any] = {
        "name": "chw",
        "kind": "chiller_reset",
        "setpoint": "plc.chw_setpoint_c",
        "process": [{"tag": "plc.chw_return_c", "max": 16.0, "margin": 1.0}],
        "reset": {
            "min": 5.0,
            "max": 14.0,
            "initial": 7.0,
            "period": "2min",
            "delay": "5min",
            "trim": 0.1,
            "respond": -0.2,
            "max_response": -0.6,
        },
    }
    settings.update(changes)
    return ChillerResetConfig.model_validate(settings)


def test_setpoint_rises_while_the_process_stays_under_its_limit_on_the_plant() -> None:
    loop = PlantLoop(ChillerReset(config()), POINTS, plant=Plant(scenario("heatwave")))
    loop.advance(6 * 3600)
    highest: list[float] = []
    loop.run(4 * 3600, lambda loop: highest.append(loop.plant.chiller.return_c))
    assert loop.rule.detail()["setpoint_c"] > 9.0
    assert max(highest) <= 16.0
    assert loop.plant.truth.seconds_process_above_limit == 0


def test_a_warmer_setpoint_raises_the_chiller_cop() -> None:
    spec = scenario().chilled_water
    assert chiller_cop(spec, 12.0, 24.0, 0.5) > chiller_cop(spec, 7.0, 24.0, 0.5)


def test_trims_up_every_period_without_requests() -> None:
    driven = Driven(ChillerReset(config(reset=dict(reset(), delay="0s"))))
    for _ in range(601):  # the first cycle starts the periods: five end by then
        values = driven.step({"plc.chw_return_c": 12.0})
    assert values["plc.chw_setpoint_c"] == pytest.approx(7.5)


def test_process_within_its_margin_makes_the_setpoint_respond_down() -> None:
    driven = Driven(ChillerReset(config(reset=dict(reset(), delay="0s"))))
    for _ in range(121):
        values = driven.step({"plc.chw_return_c": 15.5})
    assert values["plc.chw_setpoint_c"] == pytest.approx(6.8)


def test_process_over_its_limit_makes_two_requests() -> None:
    driven = Driven(ChillerReset(config(reset=dict(reset(), delay="0s"))))
    for _ in range(121):
        values = driven.step({"plc.chw_return_c": 16.5})
    assert values["plc.chw_setpoint_c"] == pytest.approx(6.6)


def test_outside_production_the_idle_setpoint_is_proposed() -> None:
    production = {"tags": ["plc.state"], "at_least": 3}
    driven = Driven(ChillerReset(config(production=production, outside_production_c=14.0)))
    assert driven.step({"plc.chw_return_c": 12.0, "plc.state": 1})["plc.chw_setpoint_c"] == 14.0


def test_starts_from_the_setpoint_the_chiller_holds() -> None:
    rule = ChillerReset(config())
    Driven(rule).step({"plc.chw_return_c": 12.0, "plc.chw_setpoint_c": 9.0})
    assert rule.reset.value == 9.0


# Step tables: (seconds since the start, inputs, the setpoint proposed), one row per cycle
# evaluated; cycles between rows repeat the row's inputs.
Row = tuple[float, Mapping[str, float], float]


def run_table(rule: ChillerReset, rows: Sequence[Row]) -> list[tuple[float, float, float]]:
    """Each row's (seconds, expected, proposed): the rule evaluated every second."""
    driven = Driven(rule)
    seen: list[tuple[float, float, float]] = []
    for seconds, inputs, expected in rows:
        while driven.t < seconds:
            values = driven.step(inputs)
        seen.append((seconds, expected, float(values["plc.chw_setpoint_c"])))
    return seen


def assert_table(rule: ChillerReset, rows: Sequence[Row]) -> None:
    for seconds, expected, proposed in run_table(rule, rows):
        assert proposed == pytest.approx(expected), f"at {seconds:g} s: {proposed} != {expected}"


GUARDED = [{"tag": "plc.chw_return_c", "max": 16.0, "margin": 1.0, "guard": 0.5, "lead": "2min"}]


def test_fast_path_within_the_guard_goes_to_the_safe_setpoint_at_once() -> None:
    rule = ChillerReset(config(process=GUARDED))
    at_13 = {"plc.chw_setpoint_c": 13.0}
    assert_table(
        rule,
        [
            (1, {**at_13, "plc.chw_return_c": 14.8}, 13.0),  # starts where the chiller is
            (60, {**at_13, "plc.chw_return_c": 14.8}, 13.0),  # within the margin: T&R's job
            (61, {**at_13, "plc.chw_return_c": 15.6}, 7.0),  # within the guard: initial, now
            (180, {"plc.chw_setpoint_c": 7.0, "plc.chw_return_c": 15.6}, 7.0),  # held a lead
            (182, {"plc.chw_setpoint_c": 7.0, "plc.chw_return_c": 15.6}, 6.4),  # then one more
        ],
    )
    assert rule.detail()["last_fast"] == "plc.chw_return_c 15.6 within 0.5 of its max 16"


def test_fast_path_sees_a_steep_rise_before_the_guard() -> None:
    rule = ChillerReset(config(process=GUARDED))
    driven = Driven(rule)
    proposed: list[tuple[float, float]] = []
    for second in range(1, 200):
        # 0.6 K/min from 13 degC: 16 is 300 s away, within the 2 min lead from 14.8 on (120 s)
        ret = 13.0 + 0.01 * second
        values = driven.step({"plc.chw_setpoint_c": 13.0, "plc.chw_return_c": ret})
        proposed.append((ret, float(values["plc.chw_setpoint_c"])))
    first = next(ret for ret, sp in proposed if sp == 7.0)
    assert 14.75 <= first <= 14.85  # the lead, not the guard (15.5)
    assert "reaches its max 16 in about" in str(rule.detail()["last_fast"])


def test_without_a_guard_there_is_no_fast_path() -> None:
    assert_table(
        ChillerReset(config()),
        [
            (1, {"plc.chw_setpoint_c": 13.0, "plc.chw_return_c": 15.9}, 13.0),
            (60, {"plc.chw_setpoint_c": 13.0, "plc.chw_return_c": 15.9}, 13.0),
        ],
    )


def test_production_start_goes_at_once_to_the_setpoint_of_the_last_production() -> None:
    production = {"tags": ["plc.state"], "at_least": 3}
    rule = ChillerReset(config(production=production, reset=dict(reset(), delay="0s")))
    idle, producing = 2, 3
    assert_table(
        rule,
        [
            (1, {"plc.chw_setpoint_c": 13.0, "plc.chw_return_c": 12.0, "plc.state": idle}, 13.0),
            # first production of the day: no production learned yet, so reset.initial
            (2, {"plc.chw_return_c": 12.0, "plc.state": producing}, 7.0),
            (602, {"plc.chw_return_c": 12.0, "plc.state": producing}, 7.5),  # trimmed 5 periods
            (603, {"plc.chw_return_c": 12.0, "plc.state": idle}, 7.5),  # learned: 7.5
            (1803, {"plc.chw_return_c": 12.0, "plc.state": idle}, 8.5),  # a break trims up
            (1804, {"plc.chw_return_c": 12.0, "plc.state": producing}, 7.5),  # back at once
        ],
    )
    assert rule.detail()["safe_setpoint_c"] == 7.5


def small_chiller(limit: float = 16.0, supply_max: float = 14.0) -> Scenario:
    """normal-day with a chiller sized closer to its machines' heat (60 kW, 10 m3/h, 3 m3):
    the step of heat at the shift start is 2.5 K of return, as in a generated cell."""
    base = scenario()
    water = base.chilled_water
    small = water.model_copy(
        update={
            "capacity_kw": 60.0,
            "loop_flow_m3_h": 10.0,
            "loop_volume_m3": 3.0,
            "process_limit_c": limit,
            "supply_setpoint_c": water.supply_setpoint_c.model_copy(update={"max": supply_max}),
        }
    )
    return base.model_copy(update={"chilled_water": small})


def warm_night_to_the_shift(process: list[dict[str, Any]], **changes: Any) -> PlantLoop:
    """From 00:00 through the 06:00 shift start to 09:00 on the small chiller: through the
    night the reset trims up to its max, the return resting near its margin."""
    points = dict(POINTS) | {"plc.press_state": "press-1.state", "plc.cnc_state": "cnc-1.state"}
    loop = PlantLoop(ChillerReset(config(process=process, **changes)), points, dt=5.0)
    loop.plant = Plant(small_chiller())
    loop.run(9 * 3600)
    return loop


def test_plant_shift_start_after_a_night_at_max_breaks_the_limit_without_a_guard() -> None:
    loop = warm_night_to_the_shift([{"tag": "plc.chw_return_c", "max": 16.0, "margin": 1.0}])
    assert loop.plant.truth.seconds_process_above_limit > 60  # 340 s: what the guard is for


def test_plant_shift_start_after_a_night_at_max_holds_the_limit_with_the_guard() -> None:
    loop = warm_night_to_the_shift(GUARDED)
    assert loop.plant.truth.seconds_process_above_limit == 0
    assert loop.rule.detail()["last_fast"] is not None


def test_plant_shift_start_holds_the_limit_by_feed_forward_alone() -> None:
    production = {"tags": ["plc.press_state", "plc.cnc_state"], "at_least": 3}
    loop = warm_night_to_the_shift(
        [{"tag": "plc.chw_return_c", "max": 16.0, "margin": 1.0}], production=production
    )
    assert loop.plant.truth.seconds_process_above_limit == 0
    assert loop.rule.detail()["last_fast"] == "production start"


@pytest.mark.parametrize("guard", [0.0, -0.5, float("nan")])
def test_a_guard_of_zero_less_or_nan_is_refused(guard: float) -> None:
    process = [{"tag": "plc.chw_return_c", "max": 16.0, "guard": guard}]
    with pytest.raises(ValidationError, match=r"process\.0\.guard"):
        config(process=process)


def test_a_glitch_on_the_return_sends_the_setpoint_the_safe_way_only() -> None:
    # A reading of 99 degC for one cycle (a broken sensor, a hostile register): the setpoint
    # goes down to the safe setpoint, never up; trim and respond then trims up from there.
    assert_table(
        ChillerReset(config(process=GUARDED)),
        [
            (1, {"plc.chw_setpoint_c": 12.0, "plc.chw_return_c": 14.0}, 12.0),
            (2, {"plc.chw_setpoint_c": 12.0, "plc.chw_return_c": 99.0}, 7.0),
            (30, {"plc.chw_setpoint_c": 7.0, "plc.chw_return_c": 14.0}, 7.0),
        ],
    )


def test_a_negative_trim_is_refused() -> None:
    with pytest.raises(ValidationError, match="positive"):
        config(reset=dict(reset(), trim=-0.1, respond=0.2, max_response=0.6))


def reset() -> dict[str, Any]:
    return {
        "min": 5.0,
        "max": 14.0,
        "initial": 7.0,
        "period": "2min",
        "delay": "5min",
        "trim": 0.1,
        "respond": -0.2,
        "max_response": -0.6,
    }


HEADROOM = {"tag": "plc.chw_cooling_kw", "capacity_kw": 60.0, "hold_above": 0.9}


def test_near_its_capacity_the_chiller_is_held_at_the_safe_setpoint() -> None:
    # A chiller at 90 % of its capacity cannot win back the cold a warmer supply spends: the
    # setpoint goes to the safe setpoint and is not trimmed above it for `hold_for` after.
    rule = ChillerReset(config(headroom=HEADROOM))
    at_12 = {"plc.chw_setpoint_c": 12.0, "plc.chw_return_c": 14.0}
    assert_table(
        rule,
        [
            (1, {**at_12, "plc.chw_cooling_kw": 40.0}, 12.0),  # 67 %: trim and respond's
            (2, {**at_12, "plc.chw_cooling_kw": 54.0}, 7.0),  # 90 %: reset.initial, now
            (600, {**at_12, "plc.chw_cooling_kw": 40.0}, 7.0),  # no trim within hold_for
            (1200, {**at_12, "plc.chw_cooling_kw": 40.0}, 7.0),  # 15 min after, a delay and
            (1300, {**at_12, "plc.chw_cooling_kw": 40.0}, 7.1),  # a period: trims from there
        ],
    )
    assert rule.detail()["last_fast"] == "no headroom"


def test_without_headroom_the_reset_trims_whatever_the_chiller_s_load() -> None:
    rule = ChillerReset(config())
    at_12 = {"plc.chw_setpoint_c": 12.0, "plc.chw_return_c": 14.0, "plc.chw_cooling_kw": 58.0}
    assert_table(rule, [(1, at_12, 12.0), (500, at_12, 12.1)])


def undersized_afternoon() -> Scenario:
    """cell-1-026 as first drawn (bench/cellgen.py before its plausibility rule): a 29 kW
    chiller for 13.2 kW of machines' heat and a loop gaining 1.07 kW/K from a 35.1 degC
    afternoon; over its 17.5 degC limit 12,420 s a day on its own fixed supply."""
    from bench.cellgen import generate

    cell = Scenario.model_validate(generate(1, 26).scenario)
    water = cell.chilled_water.model_copy(update={"capacity_kw": 29.0, "loop_flow_m3_h": 5.0})
    return cell.model_copy(update={"chilled_water": water})


def afternoon_over_limit_s(headroom: dict[str, Any] | None) -> float:
    cell = undersized_afternoon()
    points = dict(POINTS) | {"plc.chw_cooling_kw": "chiller.cooling_kw"}
    points |= {f"plc.{m.name}_state": f"{m.name}.state" for m in cell.machines}
    production = {"tags": [f"plc.{m.name}_state" for m in cell.machines], "at_least": 3}
    changes: dict[str, Any] = {
        "process": [{**GUARDED[0], "max": 17.5}],
        "production": production,
        "reset": {
            "min": 5.0,
            "max": 14.0,
            "initial": 7.5,
            "period": "2min",
            "delay": "5min",
            "trim": 0.1,
            "respond": -0.2,
            "max_response": -0.6,
        },
    }
    if headroom is not None:
        changes["headroom"] = {**headroom, "capacity_kw": 29.0}
    loop = PlantLoop(ChillerReset(config(**changes)), points, plant=Plant(cell), dt=5.0)
    loop.run(24 * 3600)
    return loop.plant.truth.seconds_process_above_limit


def baseline_over_limit_s() -> float:
    plant = Plant(undersized_afternoon())
    for _ in range(24 * 720):
        plant.step(5.0)
    return plant.truth.seconds_process_above_limit


def test_plant_an_undersized_chiller_breaks_its_limit_longer_with_the_reset() -> None:
    # The reset trims the morning's supply up to the margin; the loop's stored cold is spent
    # before the afternoon's heat passes the capacity (16,705 s against 12,420).
    assert afternoon_over_limit_s(None) > baseline_over_limit_s() + 3600


def test_plant_held_near_capacity_the_reset_is_no_worse_than_the_fixed_supply() -> None:
    assert afternoon_over_limit_s(HEADROOM) <= baseline_over_limit_s()


@pytest.mark.parametrize(
    ("headroom", "where"),
    [
        ({**HEADROOM, "hold_above": 0.0}, r"headroom\.hold_above"),
        ({**HEADROOM, "hold_above": 1.5}, r"headroom\.hold_above"),
        ({**HEADROOM, "hold_above": float("nan")}, r"headroom\.hold_above"),
        ({**HEADROOM, "capacity_kw": 0.0}, r"headroom\.capacity_kw"),
        ({"tag": "plc.chw_cooling_kw"}, r"headroom\.capacity_kw"),
    ],
)
def test_a_headroom_without_a_capacity_or_with_a_share_outside_0_1_is_refused(
    headroom: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError, match=where):
        config(headroom=headroom)


def test_a_cooling_reading_of_1e9_holds_the_safe_setpoint() -> None:
    # A hostile register or a broken meter: held at the safe setpoint, the safe way.
    at_12 = {"plc.chw_setpoint_c": 12.0, "plc.chw_return_c": 14.0, "plc.chw_cooling_kw": 0.0}
    huge = {**at_12, "plc.chw_cooling_kw": 1e9}
    assert_table(ChillerReset(config(headroom=HEADROOM)), [(1, at_12, 12.0), (2, huge, 7.0)])

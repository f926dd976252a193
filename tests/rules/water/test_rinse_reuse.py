"""Rinse water reuse: quality kept in spec on the plant with far less fresh water than a
constant overflow, fresh water between two conductivities held over the mains' own,
recirculation whenever the rinse needs cleaning (not only in production), the quality alarm;
step tables of (seconds, inputs, expected proposals)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.water.rinse_reuse import RinseReuse, RinseReuseConfig
from drivers.sim.plant.plant import Plant
from tests.rules.plantloop import Driven, PlantLoop, scenario

POINTS = {
    "plc.rinse_us_cm": "rinse.conductivity_us_cm",
    "plc.fresh_pct": "rinse.fresh_valve_pct",
    "plc.recirc_pct": "rinse.recirc_valve_pct",
    "plc.washer_state": "washer-1.state",
}


def config(**changes: Any) -> RinseReuseConfig:
    settings: dict[str, Any] = {
        "name": "rinse",
        "kind": "rinse_reuse",
        "conductivity": "plc.rinse_us_cm",
        "limit_us_cm": 900,
        "fresh_valve": "plc.fresh_pct",
        "fresh_on_us_cm": 750,
        "fresh_off_us_cm": 600,
        "recirc_valve": "plc.recirc_pct",
        "production": {"tags": ["plc.washer_state"], "at_least": 3},
    }
    settings.update(changes)
    return RinseReuseConfig.model_validate(settings)


def test_plant_rinse_stays_in_spec_with_less_fresh_water_than_overflow() -> None:
    loop = PlantLoop(RinseReuse(config()), POINTS, plant=Plant(scenario()), dt=5.0)
    highest: list[float] = []
    loop.run(24 * 3600, lambda loop: highest.append(loop.plant.rinse.conductivity))
    plant = loop.plant
    assert plant.truth.seconds_rinse_above_limit == 0
    assert max(highest) <= 900
    # the baseline overflows at the valve's default 50 % of 2 m3/h all day: 24 m3
    assert plant.rinse_fresh_total_m3 < 0.1 * 24


def test_plant_without_recirculation_feeds_fresh_water_and_stays_in_spec() -> None:
    rule = RinseReuse(config(recirc_valve=None))
    loop = PlantLoop(rule, POINTS, plant=Plant(scenario()), dt=5.0)
    loop.advance(6 * 3600)
    loop.run(8 * 3600)
    assert loop.plant.truth.seconds_rinse_above_limit == 0
    assert loop.plant.rinse_fresh_total_m3 > 0


def test_fresh_water_opens_at_fresh_on_and_closes_at_fresh_off() -> None:
    driven = Driven(RinseReuse(config()))
    running = {"plc.washer_state": 3}
    assert driven.step({"plc.rinse_us_cm": 740.0, **running})["plc.fresh_pct"] == 0.0
    assert driven.step({"plc.rinse_us_cm": 750.0, **running})["plc.fresh_pct"] == 100.0
    assert driven.step({"plc.rinse_us_cm": 610.0, **running})["plc.fresh_pct"] == 100.0
    assert driven.step({"plc.rinse_us_cm": 600.0, **running})["plc.fresh_pct"] == 0.0


def test_recirculates_while_the_line_runs_and_the_rinse_is_under_reuse_below() -> None:
    driven = Driven(RinseReuse(config(reuse_below_us_cm=800)))
    assert driven.step({"plc.rinse_us_cm": 200.0, "plc.washer_state": 3})["plc.recirc_pct"] == 100
    assert driven.step({"plc.rinse_us_cm": 820.0, "plc.washer_state": 3})["plc.recirc_pct"] == 0


Row = tuple[float, dict[str, float], dict[str, float]]


def run_table(driven: Driven, rows: list[Row]) -> None:
    """Rows of (seconds, inputs, expected proposals): each row one cycle at its time."""
    for seconds, inputs, expected in rows:
        got = driven.step(inputs, dt=seconds - driven.t if driven.t else seconds or 1.0)
        assert {tag: got[tag] for tag in expected} == expected, f"at {seconds:g} s {inputs}"


NIGHT = {"plc.washer_state": 0}  # the washer stands: no drag-out, no production


def test_at_night_on_hard_water_recirculation_cleans_and_fresh_water_closes() -> None:
    """Mains at 700 uS/cm, the shipped thresholds (fresh on 750, off 600): fresh water alone
    can never bring the rinse to 600, so recirculation must do it, production or not."""
    fresh, recirc = "plc.fresh_pct", "plc.recirc_pct"
    run_table(
        Driven(RinseReuse(config())),
        [
            (1, {"plc.rinse_us_cm": 760.0, **NIGHT}, {fresh: 100, recirc: 100}),
            (600, {"plc.rinse_us_cm": 720.0, **NIGHT}, {fresh: 100, recirc: 100}),
            (1800, {"plc.rinse_us_cm": 600.0, **NIGHT}, {fresh: 0, recirc: 100}),
            (3600, {"plc.rinse_us_cm": 400.0, **NIGHT}, {fresh: 0, recirc: 100}),
            (5400, {"plc.rinse_us_cm": 300.0, **NIGHT}, {fresh: 0, recirc: 0}),  # the floor
            (7200, {"plc.rinse_us_cm": 320.0, **NIGHT}, {fresh: 0, recirc: 0}),
            (9000, {"plc.rinse_us_cm": 600.0, **NIGHT}, {fresh: 0, recirc: 100}),
        ],
    )


def test_fresh_water_closes_over_the_configured_mains() -> None:
    """No recirculation valve, mains 700: close at 770 (mains + 10 %), open at 835 (the gap of
    150 kept but no more than half-way from 770 to the limit 900)."""
    fresh = "plc.fresh_pct"
    rule = RinseReuse(config(recirc_valve=None, mains_us_cm=700))
    run_table(
        Driven(rule),
        [
            (1, {"plc.rinse_us_cm": 840.0, **NIGHT}, {fresh: 100}),
            (600, {"plc.rinse_us_cm": 775.0, **NIGHT}, {fresh: 100}),
            (1200, {"plc.rinse_us_cm": 770.0, **NIGHT}, {fresh: 0}),
            (1800, {"plc.rinse_us_cm": 720.0, **NIGHT}, {fresh: 0}),
            (2400, {"plc.rinse_us_cm": 830.0, **NIGHT}, {fresh: 0}),
            (3000, {"plc.rinse_us_cm": 835.0, **NIGHT}, {fresh: 100}),
        ],
    )
    assert rule.detail()["fresh_off_us_cm"] == 770.0
    assert rule.detail()["fresh_on_us_cm"] == 835.0


def test_a_measured_mains_moves_the_levels_with_it() -> None:
    fresh = "plc.fresh_pct"
    rule = RinseReuse(config(recirc_valve=None, mains_conductivity="plc.mains_us_cm"))
    run_table(
        Driven(rule),
        [
            # soft water: the configured 750 / 600 stand
            (1, {"plc.rinse_us_cm": 760.0, "plc.mains_us_cm": 300.0, **NIGHT}, {fresh: 100}),
            (60, {"plc.rinse_us_cm": 650.0, "plc.mains_us_cm": 300.0, **NIGHT}, {fresh: 100}),
            # the supply turns hard: 650 is now under the mains + 10 % (660), close
            (120, {"plc.rinse_us_cm": 650.0, "plc.mains_us_cm": 600.0, **NIGHT}, {fresh: 0}),
        ],
    )
    assert rule.detail()["mains_us_cm"] == 600.0


def test_mains_too_hard_for_fresh_water_alone_is_refused() -> None:
    with pytest.raises(ValidationError, match="fresh water alone cannot keep the rinse"):
        config(recirc_valve=None, mains_us_cm=850)
    assert config(mains_us_cm=850).mains_us_cm == 850  # with ion exchange it can


def test_plant_on_hard_water_at_night_does_not_run_fresh_water() -> None:
    """normal-day with 700 uS/cm mains, 00:00-06:15 (the washer stands), the shipped thresholds:
    the baseline's valve (50 %) is open when the controller starts."""
    normal = scenario()
    rinse = normal.rinse.model_copy(
        update={"fresh_conductivity_us_cm": 700.0, "initial_conductivity_us_cm": 760.0}
    )
    plant = Plant(normal.model_copy(update={"rinse": rinse}))
    loop = PlantLoop(RinseReuse(config()), POINTS, plant=plant, dt=5.0)
    highest: list[float] = []
    fresh_after_first_hour: list[float] = []

    def watch(loop: PlantLoop) -> None:
        highest.append(loop.plant.rinse.conductivity)
        if loop.plant.time_s > 3600:
            fresh_after_first_hour.append(loop.plant.rinse.fresh_m3_h)

    loop.run(6.25 * 3600, watch)
    truth = loop.plant.ground_truth()
    assert truth.seconds_rinse_above_limit == 0
    assert max(highest) <= 900
    # the baseline's overflow is 1 m3/h: 6.25 m3 in these hours; fresh water fully open, 12.5
    assert truth.water_m3["rinse_fresh"] < 1.0, "the fresh valve stood open at night"
    assert max(fresh_after_first_hour) == 0.0


def test_over_the_limit_raises_the_quality_alarm() -> None:
    rule = RinseReuse(config())
    Driven(rule).step({"plc.rinse_us_cm": 950.0, "plc.washer_state": 3})
    (alarm,) = rule.alarm_conditions()
    assert (alarm.name, alarm.active) == ("rinse.quality", True)
    assert alarm.estimate["conductivity_us_cm"] == pytest.approx(950.0)


def test_levels_out_of_order_are_refused() -> None:
    with pytest.raises(ValidationError, match="fresh_off_us_cm < fresh_on_us_cm"):
        config(fresh_on_us_cm=950)

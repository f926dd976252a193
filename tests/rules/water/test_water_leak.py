"""Water leaks by minimum night flow: the baseline learned from earlier windows of the same
mode, the alarm and its estimate, what is (not) learned, the isolation valve."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.water.water_leak import WaterLeak, WaterLeakConfig, percentile
from drivers.sim.plant.plant import Plant
from tests.rules.plantloop import Driven, PlantLoop, scenario

MACHINES = ["press-1", "cnc-1", "cnc-2", "washer-1"]


def config(**changes: Any) -> WaterLeakConfig:
    settings: dict[str, Any] = {
        "name": "water",
        "kind": "water_leak",
        "flow": "wm.flow_m3_h",
        "production": {"tags": ["plc.state"], "at_least": 3},
        "threshold_m3_h": 0.2,
        "duration": "15min",
    }
    settings.update(changes)
    return WaterLeakConfig.model_validate(settings)


def run(driven: Driven, hours: float, flow: float, state: float, **extra: Any) -> None:
    for _ in range(round(hours * 360)):
        driven.step({"wm.flow_m3_h": flow, "plc.state": state, **extra}, dt=10.0)


def leak(rule: WaterLeak) -> Any:
    (condition,) = rule.alarm_conditions()
    return condition


def test_percentile_is_linear_between_ranks() -> None:
    assert percentile([0.5, 0.1, 0.3, 0.2, 0.4], 20) == pytest.approx(0.18)
    assert percentile([0.7], 20) == 0.7


def test_baseline_is_the_percentile_of_earlier_idle_minima() -> None:
    rule = WaterLeak(config(threshold_m3_h=1.0))
    driven = Driven(rule)
    for night in (0.10, 0.20, 0.30, 0.40, 0.50):
        run(driven, 3, night, state=1)
        run(driven, 1, 2.0, state=3)
    assert rule.baseline((1.0,), producing=False) == pytest.approx(0.18)


def test_idle_flow_above_baseline_plus_threshold_for_the_duration_raises_a_leak() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 3, 0.05, state=1)
    run(driven, 1, 2.0, state=3)
    run(driven, 0.6, 0.85, state=1)  # 15 min to fill the watch window, 15 min above
    assert leak(rule).active
    assert leak(rule).estimate["leak_m3_h"] == pytest.approx(0.8)
    assert leak(rule).estimate["baseline_m3_h"] == pytest.approx(0.05)


def test_shorter_than_the_duration_is_no_leak() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 3, 0.05, state=1)
    run(driven, 1, 2.0, state=3)
    run(driven, 0.25, 0.05, state=1)
    run(driven, 0.2, 0.85, state=1)
    assert not leak(rule).active


def test_without_a_learned_or_initial_baseline_nothing_is_watched() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 2, 0.9, state=1)
    assert not leak(rule).active


def test_initial_baseline_serves_until_a_window_is_learned() -> None:
    rule = WaterLeak(config(initial_baseline_m3_h=0.05))
    driven = Driven(rule)
    run(driven, 1, 0.9, state=1)
    assert leak(rule).active


def test_a_window_with_a_suspected_leak_is_not_learned() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 3, 0.05, state=1)
    run(driven, 1, 2.0, state=3)
    run(driven, 3, 0.85, state=1)
    run(driven, 1, 2.0, state=3)
    assert list(rule.minima[(1.0,)]) == [pytest.approx(0.05)]


def test_a_window_shorter_than_learn_window_is_not_learned() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 0.5, 0.05, state=1)
    run(driven, 1, 2.0, state=3)
    assert (1.0,) not in rule.minima


def test_production_is_not_watched_by_default() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 2, 2.0, state=3)
    run(driven, 2, 5.0, state=3)
    assert not leak(rule).active


def test_leak_clears_when_the_flow_falls_back() -> None:
    rule = WaterLeak(config())
    driven = Driven(rule)
    run(driven, 3, 0.05, state=1)
    run(driven, 1, 2.0, state=3)
    run(driven, 1, 0.85, state=1)
    run(driven, 0.5, 0.06, state=1)
    assert not leak(rule).active


def test_isolation_valve_closes_only_when_enabled() -> None:
    valve = {"tag": "plc.main_valve", "close_value": False, "open_value": True}
    disabled = WaterLeak(config(isolation=valve, initial_baseline_m3_h=0.05))
    run(Driven(disabled), 1, 0.9, state=1)
    assert leak(disabled).active
    assert disabled.outputs == ()
    enabled = WaterLeak(config(isolation=dict(valve, enabled=True), initial_baseline_m3_h=0.05))
    driven = Driven(enabled)
    run(driven, 0.1, 0.9, state=1)
    assert [(p.tag, p.value) for p in driven.proposals] == [("plc.main_valve", True)]
    run(driven, 1, 0.9, state=1)
    assert [(p.tag, p.value) for p in driven.proposals] == [("plc.main_valve", False)]


PLANT_POINTS = {
    "wm.flow_m3_h": "water_meter.flow_m3_h",
    "plc.makeup_m3_h": "tower.makeup_flow_m3_h",
    "plc.rinse_m3_h": "rinse.fresh_flow_m3_h",
    **{f"plc.{m}_state": f"{m}.state" for m in MACHINES},
}


def plant_rule() -> WaterLeak:
    return WaterLeak(
        config(
            submeters=["plc.makeup_m3_h", "plc.rinse_m3_h"],
            production={"tags": [f"plc.{m}_state" for m in MACHINES], "at_least": 3},
            watch="always",
        )
    )


def test_plant_leak_behind_the_main_meter_is_alarmed_in_production() -> None:
    """The leak scenario's pipe bursts at 14:10 mid-shift; with the metered tower makeup and
    rinse feed subtracted, the production baseline learned that morning shows it."""
    rule = plant_rule()
    loop = PlantLoop(rule, PLANT_POINTS, plant=Plant(scenario("leak")), dt=10.0)
    raised: list[float] = []

    def watch(loop: PlantLoop) -> None:
        if not raised and leak(rule).active:
            raised.append(loop.plant.time_s)

    loop.run(16 * 3600, watch)
    started = loop.plant.truth.leaks[1].started_s
    assert started is not None
    assert raised
    assert 0 < raised[0] - started <= 30 * 60
    assert leak(rule).estimate["leak_m3_h"] == pytest.approx(0.8, abs=0.05)


def test_plant_normal_day_raises_no_leak() -> None:
    rule = plant_rule()
    loop = PlantLoop(rule, PLANT_POINTS, plant=Plant(scenario("normal-day")), dt=10.0)
    active: list[bool] = []
    loop.run(24 * 3600, lambda loop: active.append(leak(rule).active))
    assert not any(active)


def test_watch_window_longer_than_learn_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="watch_window"):
        config(watch_window="2h")

"""Peak shaving: the demand prediction, the shed set, restore order and hysteresis, control on
the uncontrolled demand, shed time limits, shadow mode and restart, on synthetic meters."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from controller.rules.config import RuleConfig
from controller.rules.energy.peak_shaving import PeakShaving, PeakShavingConfig
from tests.rules.plantloop import Driven

LOADS = [
    {"name": "a", "tag": "cell.a_enable", "kw": 8, "shed_value": False, "restore_value": True},
    {"name": "b", "tag": "cell.b_enable", "kw": 15, "shed_value": False, "restore_value": True},
    {"name": "c", "tag": "cell.c_enable", "kw": 30, "shed_value": False, "restore_value": True},
]


def config(**changes: Any) -> PeakShavingConfig:
    settings: dict[str, Any] = {
        "name": "peak",
        "kind": "peak_shaving",
        "power": "meter.power_kw",
        "limit_kw": 100,
        "window": "15min",
        "loads": LOADS,
    }
    settings.update(changes)
    return PeakShavingConfig.model_validate(settings)


class Site:
    """A site whose uncontrolled load is `load_kw`; each shed load draws its kW less."""

    def __init__(self, rule: PeakShaving, load_kw: float = 120.0) -> None:
        self.rule = rule
        self.driven = Driven(rule)
        self.load_kw = load_kw
        self.kw = {load.tag: load.kw for load in rule.config.loads}
        self.shed_values = {load.tag: load.shed_value for load in rule.config.loads}
        self.state: dict[str, Any] = {}
        self.energy_kwh = 0.0
        self.history: list[list[str]] = []

    @property
    def measured_kw(self) -> float:
        shed = sum(
            kw for tag, kw in self.kw.items() if self.state.get(tag) == self.shed_values[tag]
        )
        return self.load_kw - shed

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.energy_kwh += self.measured_kw / 3600
            self.state.update(self.driven.step({"meter.power_kw": self.measured_kw}))
            self.history.append(list(self.rule.shed_loads))


def test_steady_120_kw_against_100_kw_sheds_the_smallest_prefix_covering_20_kw() -> None:
    rule = PeakShaving(config(margin_kw=2))
    site = Site(rule)
    site.run(1)
    assert rule.detail()["needed_kw"] == pytest.approx(22)
    assert rule.shed_loads == ["a", "b"]
    assert rule.shed_kw == 23


def test_steady_120_kw_window_average_ends_under_the_limit() -> None:
    rule = PeakShaving(config(margin_kw=2))
    site = Site(rule)
    site.run(900)  # the driven clock starts on the hour: one whole fixed window
    average = site.energy_kwh * 4
    assert average < 100
    assert all("c" not in shed for shed in site.history)


def test_prediction_is_energy_so_far_plus_present_load_for_the_rest() -> None:
    rule = PeakShaving(config(limit_kw=500))
    site = Site(rule, load_kw=90)
    site.run(300)
    site.load_kw = 120
    site.run(1)
    detail = rule.detail()
    # (90 kW for 5 min + 120 kW for the remaining 10 min) / 15 min
    assert detail["predicted_uncontrolled_kw"] == pytest.approx(110, abs=0.1)
    assert detail["shed"] == []


def test_energy_counter_gives_the_same_prediction_as_power() -> None:
    rule = PeakShaving(config(limit_kw=500, energy="meter.energy_kwh"))
    driven = Driven(rule)
    counter = 1000.0
    for second in range(301):
        kw = 90 if second < 300 else 120
        driven.step({"meter.power_kw": kw, "meter.energy_kwh": counter})
        counter += kw / 3600
    assert rule.detail()["predicted_uncontrolled_kw"] == pytest.approx(110, abs=0.2)


def test_loads_are_restored_last_shed_first() -> None:
    rule = PeakShaving(config())
    site = Site(rule)
    site.run(10)
    site.load_kw = 60
    site.run(3)
    changes = [shed for i, shed in enumerate(site.history) if i and shed != site.history[i - 1]]
    assert changes == [["a"], []]


@pytest.mark.parametrize(("hysteresis_kw", "shed"), [(0, ["a"]), (10, ["a", "b"])])
def test_restore_waits_for_the_hysteresis(hysteresis_kw: float, shed: list[str]) -> None:
    rule = PeakShaving(config(hysteresis_kw=hysteresis_kw))
    site = Site(rule, load_kw=120)
    site.run(1)
    # 105 kW uncontrolled: 5 kW to shed. Without b, a's 8 kW covers it with 3 kW to spare:
    # enough with no hysteresis, not with 10 kW.
    site.load_kw = 105
    site.run(2)
    assert rule.shed_loads == shed


def test_steady_uncontrolled_load_never_restores_and_resheds() -> None:
    rule = PeakShaving(config(alignment="sliding", horizon="5min"))
    site = Site(rule, load_kw=120)
    site.run(3600)
    assert all(shed == ["a", "b"] for shed in site.history)


def test_min_shed_holds_a_load_shed() -> None:
    loads = [dict(LOADS[0], min_shed="10min"), LOADS[1], LOADS[2]]
    rule = PeakShaving(config(loads=loads, limit_kw=115))
    site = Site(rule)
    site.run(5)
    assert rule.shed_loads == ["a"]
    site.load_kw = 50
    site.run(300)
    assert rule.shed_loads == ["a"]
    site.run(301)
    assert rule.shed_loads == []


def test_max_shed_restores_and_min_between_holds_it_back() -> None:
    loads = [dict(LOADS[0], max_shed="2min", min_between="10min"), LOADS[1], LOADS[2]]
    rule = PeakShaving(config(loads=loads, limit_kw=115, alignment="sliding", horizon="5min"))
    site = Site(rule)
    site.run(119)
    assert rule.shed_loads == ["a"]
    site.run(2)
    # a has reached its max shed time; b takes its place, a may not come back for 10 min.
    assert rule.shed_loads == ["b"]
    site.run(300)
    assert "a" not in rule.shed_loads


def test_shadow_mode_counts_nothing_as_shed() -> None:
    rule = PeakShaving(config())
    rule.mode = "shadow"
    driven = Driven(rule)
    for _ in range(60):  # nothing is really shed: the meter keeps reading 120 kW
        driven.step({"meter.power_kw": 120.0})
    assert rule.shed_loads == ["a", "b"]
    assert rule.detail()["uncontrolled_kw"] == 120.0


def test_auto_mode_counts_shed_loads_into_the_uncontrolled_demand() -> None:
    rule = PeakShaving(config())
    driven = Driven(rule)
    driven.step({"meter.power_kw": 120.0})
    driven.step({"meter.power_kw": 97.0})
    assert rule.detail()["uncontrolled_kw"] == 120.0


def test_restart_releases_every_shed() -> None:
    rule = PeakShaving(config())
    site = Site(rule)
    site.run(5)
    rule.restart({}, site.driven.now)
    assert rule.shed_loads == []


def test_shed_loads_get_their_shed_value_and_the_others_their_restore_value() -> None:
    rule = PeakShaving(config())
    proposals = Driven(rule).step({"meter.power_kw": 120.0})
    assert proposals == {"cell.a_enable": False, "cell.b_enable": False, "cell.c_enable": True}


def test_a_load_without_restore_value_is_released_when_not_shed() -> None:
    loads = [dict(LOADS[0]), {"name": "chiller", "tag": "plc.chw_sp", "kw": 20, "shed_value": 12.0}]
    rule = PeakShaving(config(loads=loads, limit_kw=200))
    proposals = Driven(rule).step({"meter.power_kw": 120.0})
    assert proposals == {"cell.a_enable": True}


def test_inputs_are_the_meter_tags_with_the_rule_max_age() -> None:
    rule = PeakShaving(config(energy="meter.energy_kwh", max_age="5s"))
    assert rule.inputs == {"meter.power_kw": 5.0, "meter.energy_kwh": 5.0}
    assert set(rule.outputs) == {"cell.a_enable", "cell.b_enable", "cell.c_enable"}


def test_sliding_window_without_horizon_is_refused() -> None:
    with pytest.raises(ValidationError, match="horizon"):
        config(alignment="sliding")


def test_loads_writing_one_tag_twice_are_refused() -> None:
    with pytest.raises(ValidationError, match="same tag"):
        config(loads=[LOADS[0], dict(LOADS[1], tag=LOADS[0]["tag"])])


def test_kind_is_part_of_the_rules_union() -> None:
    settings = {"name": "peak", "kind": "peak_shaving", "power": "meter.power_kw"}
    parsed = TypeAdapter(RuleConfig).validate_python(settings | {"limit_kw": 90, "loads": LOADS})
    assert isinstance(parsed, PeakShavingConfig)

"""The generic rule kinds on their own: threshold (hold time, hysteresis, release), pid
(bumpless start, direction, following the applied output) and schedule (values per period)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.model import Quality, Sample
from controller.rules.config import PidRuleConfig, ScheduleRuleConfig, ThresholdRuleConfig
from controller.rules.kinds import PidRule, ScheduleRule, ThresholdRule, build_rules
from controller.rules.rule import Now, RuleInputError

# 2024-06-03, a Monday, in UTC.
MONDAY_MS = 1_717_372_800_000


def now(seconds: float) -> Now:
    return Now(seconds, MONDAY_MS + round(seconds * 1000))


def snapshot(**values: Any) -> dict[str, Sample]:
    """`snapshot(meter__power_kw=80)` -> {"meter.power_kw": good sample of 80}."""
    out = {}
    for key, value in values.items():
        device, tag = key.split("__")
        out[f"{device}.{tag}"] = Sample(device, tag, value, Quality.GOOD, 0, 0)
    return out


def threshold(**settings: Any) -> ThresholdRule:
    config = {
        "kind": "threshold",
        "name": "shed",
        "when": {"tag": "meter.power_kw", "above": 90.0, "release": 80.0},
        "for": "10s",
        "set": {"heater.enable": False},
        **settings,
    }
    return ThresholdRule(ThresholdRuleConfig.model_validate(config))


def values(proposals: list[Any]) -> dict[str, Any]:
    return {p.tag: p.value for p in proposals}


# --- threshold ---------------------------------------------------------------------------------


def test_threshold_acts_only_once_the_condition_has_held_for_its_duration():
    rule = threshold()
    assert values(rule.evaluate(snapshot(meter__power_kw=95), now(0))) == {}
    assert values(rule.evaluate(snapshot(meter__power_kw=95), now(9))) == {}
    assert values(rule.evaluate(snapshot(meter__power_kw=95), now(10))) == {
        "heater.enable": False
    }


def test_threshold_condition_that_drops_before_its_duration_restarts_the_wait():
    rule = threshold()
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    rule.evaluate(snapshot(meter__power_kw=70), now(5))
    rule.evaluate(snapshot(meter__power_kw=95), now(8))
    assert values(rule.evaluate(snapshot(meter__power_kw=95), now(12))) == {}
    assert values(rule.evaluate(snapshot(meter__power_kw=95), now(18))) == {
        "heater.enable": False
    }


def test_threshold_holds_between_the_trigger_and_the_release_level():
    rule = threshold(**{"for": "0s"})
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    assert rule.evaluate(snapshot(meter__power_kw=85), now(1)) != []
    assert rule.active


def test_threshold_releases_at_the_release_level_and_proposes_nothing():
    rule = threshold(**{"for": "0s"})
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    assert rule.evaluate(snapshot(meter__power_kw=80), now(1)) == []
    assert not rule.active


def test_threshold_proposes_its_otherwise_values_once_released():
    rule = threshold(**{"for": "0s", "otherwise": {"heater.enable": True}})
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    assert values(rule.evaluate(snapshot(meter__power_kw=75), now(1))) == {"heater.enable": True}


def test_threshold_release_waits_for_release_after():
    rule = threshold(**{"for": "0s", "release_after": "30s"})
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    rule.evaluate(snapshot(meter__power_kw=75), now(1))
    assert rule.active
    rule.evaluate(snapshot(meter__power_kw=75), now(31))
    assert not rule.active


def test_threshold_below_acts_when_the_input_falls_to_the_level():
    rule = threshold(
        when={"tag": "tank.level_pct", "below": 20.0, "release": 40.0},
        set={"pump.run": True},
        **{"for": "0s"},
    )
    assert values(rule.evaluate(snapshot(tank__level_pct=19), now(0))) == {"pump.run": True}
    assert rule.evaluate(snapshot(tank__level_pct=41), now(1)) == []


def test_threshold_reason_says_what_holds():
    rule = threshold()
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    [proposal] = rule.evaluate(snapshot(meter__power_kw=96.5), now(10))
    assert proposal.reason == "meter.power_kw 96.5: holds (>= 90 for 10s)"


def test_threshold_restart_forgets_a_condition_held_before():
    rule = threshold(**{"for": "0s"})
    rule.evaluate(snapshot(meter__power_kw=95), now(0))
    rule.restart(snapshot(meter__power_kw=85), now(5))
    assert rule.evaluate(snapshot(meter__power_kw=85), now(5)) == []


def test_threshold_input_that_is_not_a_number_is_an_input_error():
    rule = threshold()
    with pytest.raises(RuleInputError):
        rule.evaluate(snapshot(meter__power_kw="n/a"), now(0))


# --- pid -----------------------------------------------------------------------------------------


def pid(**settings: Any) -> PidRule:
    config = {
        "kind": "pid",
        "name": "air",
        "measurement": "air.header_bar",
        "setpoint": 6.5,
        "output": "comp.setpoint_bar",
        "pid": {"kp": 0.5, "ti": "20s", "out_min": 6.0, "out_max": 8.0},
        **settings,
    }
    return PidRule(PidRuleConfig.model_validate(config))


def test_pid_starts_from_the_present_value_of_its_output():
    rule = pid()
    present = snapshot(air__header_bar=6.0, comp__setpoint_bar=7.2)
    rule.restart(present, now(0))
    [proposal] = rule.evaluate(present, now(0))
    assert proposal.value == pytest.approx(7.2)


def test_pid_raises_the_output_while_the_measurement_is_below_the_setpoint():
    rule = pid()
    present = snapshot(air__header_bar=6.0, comp__setpoint_bar=7.0)
    rule.restart(present, now(0))
    outputs = [rule.evaluate(present, now(t))[0].value for t in range(1, 6)]
    assert outputs == sorted(outputs)
    assert outputs[0] > 7.0


def test_pid_follows_the_value_its_output_actually_got():
    rule = pid()
    present = snapshot(air__header_bar=6.0, comp__setpoint_bar=7.0)
    rule.restart(present, now(0))
    rule.evaluate(present, now(1))
    rule.settle({"comp.setpoint_bar": 7.05})  # the actuator's ramp let it move only this far
    [proposal] = rule.evaluate(present, now(1))
    assert proposal.value == pytest.approx(7.05)


def test_pid_setpoint_can_come_from_a_tag():
    rule = pid(setpoint="air.target_bar")
    assert set(rule.inputs) == {"air.header_bar", "air.target_bar"}
    present = snapshot(air__header_bar=6.5, air__target_bar=6.5, comp__setpoint_bar=7.0)
    rule.restart(present, now(0))
    assert rule.evaluate(present, now(1))[0].value == pytest.approx(7.0)


# --- schedule ------------------------------------------------------------------------------------


def schedule_rule() -> ScheduleRule:
    config = {
        "kind": "schedule",
        "name": "setback",
        "schedule": {
            "timezone": "UTC",
            "default": "night",
            "periods": [
                {"name": "day", "days": ["mon", "tue", "wed", "thu", "fri"],
                 "start": "06:00", "end": "22:00"}
            ],
        },
        "set": {"day": {"comp.setpoint_bar": 7.0}, "night": {"comp.setpoint_bar": 6.2}},
    }
    return ScheduleRule(ScheduleRuleConfig.model_validate(config))


def test_schedule_proposes_the_values_of_the_period_in_force():
    rule = schedule_rule()
    assert values(rule.evaluate({}, now(8 * 3600))) == {"comp.setpoint_bar": 7.0}
    assert values(rule.evaluate({}, now(23 * 3600))) == {"comp.setpoint_bar": 6.2}


def test_schedule_state_names_the_next_change():
    rule = schedule_rule()
    rule.evaluate({}, now(8 * 3600))
    assert rule.detail() == {
        "period": "day",
        "next": {"at": MONDAY_MS + 22 * 3600 * 1000, "period": "night"},
    }


def test_schedule_proposes_nothing_in_a_period_it_does_not_list():
    config = schedule_rule().config.model_copy(update={"set": {"day": {"comp.setpoint_bar": 7.0}}})
    rule = ScheduleRule(config)
    assert rule.evaluate({}, now(23 * 3600)) == []


def test_rules_are_built_in_config_order_with_their_kind():
    rules = build_rules([schedule_rule().config, threshold().config, pid().config])
    assert [(r.name, r.kind) for r in rules] == [
        ("setback", "schedule"),
        ("shed", "threshold"),
        ("air", "pid"),
    ]

"""The `rules:` and `actuation:` sections through the config loader: what is accepted, and each
refusal named by file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from controller.config import ConfigError, parse_config

DEVICES = """\
gateway: {id: cell}
devices:
  - driver: modbus
    name: comp
    link: {transport: tcp, host: 127.0.0.1, port: 502}
    poll_interval: 1s
    tags:
      - {name: header_bar, address: 0, type: float32}
      - {name: setpoint_bar, address: 2, type: float32, writable: true, min: 6, max: 8}
      - {name: run, table: coil, address: 0, type: bool, writable: true}
      - {name: heartbeat, address: 10, writable: true}
"""


def load(rules: str = "", actuation: str = "") -> object:
    text = DEVICES
    if rules:
        text += "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    if actuation:
        text += "actuation:\n" + textwrap.indent(textwrap.dedent(actuation), "  ")
    return parse_config(text, "cell.yaml")


def problems(rules: str = "", actuation: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(rules, actuation)
    return caught.value.problems


PID = """\
- kind: pid
  name: air
  measurement: comp.header_bar
  setpoint: 6.5
  output: comp.setpoint_bar
  pid: {kp: 0.5, ti: 30s, out_min: 6, out_max: 8}
"""


def test_rules_of_every_kind_and_the_actuation_section_load():
    config = load(
        PID
        + """\
- kind: threshold
  name: stop-on-high
  when: {tag: comp.header_bar, above: 7.8, release: 7.2}
  for: 5s
  set: {comp.run: false}
- kind: schedule
  name: setback
  mode: shadow
  schedule:
    timezone: UTC
    default: night
    periods: [{name: day, days: [mon], start: "06:00", end: "22:00"}]
  set: {night: {comp.setpoint_bar: 6.2}}
""",
        """\
heartbeat: {tag: comp.heartbeat, period: 2s}
manual_writes: true
outputs:
  comp.run: {min_on: 5min, min_off: 3min}
""",
    )
    assert [rule.kind for rule in config.rules] == ["pid", "threshold", "schedule"]
    assert config.actuation.heartbeat[0].period == 2.0
    assert config.actuation.outputs["comp.run"].min_on == 300.0


def test_heartbeat_takes_a_list_of_tags():
    config = load(actuation="heartbeat: [{tag: comp.heartbeat}, {tag: comp.heartbeat}]\n")
    assert len(config.actuation.heartbeat) == 2


def test_unknown_rule_kind_is_refused():
    assert problems("- {kind: fuzzy, name: x}\n") == [
        "cell.yaml:13: rules[0]: Input tag 'fuzzy' found using 'kind' does not match any of "
        "the expected tags: 'threshold', 'pid', 'schedule', 'peak_shaving', 'compressed_air', "
        "'chiller_reset', 'idle_standby', 'water_leak', 'cooling_tower_blowdown', 'rinse_reuse', "
        "'tower_balance', 'battery_peak_shaving', 'pv_self_consumption', 'battery_schedule', "
        "'load_schedule'"
    ]


def test_threshold_release_on_the_wrong_side_is_refused():
    found = problems(
        "- kind: threshold\n  name: t\n  when: {tag: comp.header_bar, above: 7, release: 7.5}\n"
        "  set: {comp.run: false}\n"
    )
    assert found == [
        "cell.yaml:15: rules[0].when: release (7.5) must be below above (7.0): "
        "the gap is the hysteresis"
    ]


def test_duplicate_rule_names_are_refused():
    assert problems(PID + PID) == ["cell.yaml:20: rules[1].name: duplicate rule name 'air'"]


def test_input_of_a_device_that_does_not_exist_is_refused():
    assert problems(PID.replace("comp.header_bar", "meter.power_kw")) == [
        "cell.yaml:15: rules[0].measurement: unknown tag 'meter.power_kw': "
        "there is no device 'meter'"
    ]


def test_input_tag_the_device_does_not_have_is_refused():
    assert problems(PID.replace("comp.header_bar", "comp.flow")) == [
        "cell.yaml:15: rules[0].measurement: unknown tag 'comp.flow': "
        "device 'comp' has no such tag"
    ]


def test_output_not_declared_writable_is_refused():
    assert problems(PID.replace("output: comp.setpoint_bar", "output: comp.header_bar")) == [
        "cell.yaml:17: rules[0].output: comp.header_bar is not declared writable: "
        "add 'writable: true' to the tag"
    ]


def test_fixed_value_outside_the_tags_limits_is_refused():
    found = problems(
        "- kind: threshold\n  name: t\n  when: {tag: comp.header_bar, above: 7, release: 6}\n"
        "  set: {comp.setpoint_bar: 9}\n"
    )
    assert found == ["cell.yaml:16: rules[0].set: 9 for comp.setpoint_bar is above its max 8"]


def test_pid_output_range_beyond_the_tags_limits_is_refused():
    assert problems(PID.replace("out_max: 8", "out_max: 100")) == [
        "cell.yaml:18: rules[0].pid.out_max: 100 is above the max 8 of comp.setpoint_bar: "
        "keep out_min/out_max inside its limits"
    ]


def test_schedule_values_for_a_period_it_does_not_have_are_refused():
    found = problems(
        "- kind: schedule\n  name: s\n"
        "  schedule: {timezone: UTC, default: night}\n"
        "  set: {weekend: {comp.setpoint_bar: 6.2}}\n"
    )
    assert found == [
        "cell.yaml:16: rules[0].set: the schedule has no period 'weekend'; it has ['night']"
    ]


def test_heartbeat_on_a_tag_not_writable_is_refused():
    # One heartbeat written as a mapping: the message names it as written.
    assert problems(actuation="heartbeat: {tag: comp.header_bar}\n") == [
        "cell.yaml:13: actuation.heartbeat.tag: comp.header_bar is not declared writable: "
        "add 'writable: true' to the tag"
    ]


def test_verify_timeout_not_longer_than_the_poll_interval_is_refused():
    assert problems(PID, "verify_timeout: 1s\n") == [
        "cell.yaml:20: actuation.verify_timeout: 1s is not longer than the poll_interval 1s of "
        "device 'comp': a write could never be read back in time"
    ]


def test_bare_number_duration_in_a_rule_is_refused():
    found = problems(PID.replace("ti: 30s", "ti: 30"))
    assert found[0].startswith("cell.yaml:18: rules[0].pid.ti: a duration is a string")

"""The air-use rise (`air_leak`) as step tables: rows of (minutes, inputs, expected alarm) run
cycle by cycle with the gateway's poll. What the duty of a sampled loaded contact can tell, a
pressure the rule itself raised, the first night, and production leaks seen on a header flow
meter (docs/rules.md, compressed_air, "Air use rise")."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from controller.rules.energy.compressed_air import CompressedAir
from tests.rules.energy.test_compressed_air import config, far_end, states
from tests.rules.plantloop import Driven

RATED = 5.0  # m3/min
NIGHT, PRODUCING = 1.0, 3.0  # machine states: standby, producing (production: at least 2)


@dataclass(frozen=True)
class Row:
    """`minutes` of whole load/unload cycles `cycle_s` long, loaded `loaded_s` of each (the
    contact as polled every `poll_s`), or of a header `flow` (share of rated) when given; the
    setpoint read back; `air_leak` raised or not at the end of the row."""

    minutes: float
    state: float
    loaded_s: float = 0.0
    air_leak: bool = False
    setpoint: float = 6.5
    flow: float | None = None
    cycle_s: float = 210.0


def run(table: list[Row], poll_s: float, **leak_test: Any) -> CompressedAir:
    test = {
        "loaded": "c.loaded",
        "full_load_kw": 34.0,
        "rated_flow_m3_min": RATED,
        **leak_test,
    }
    rule = CompressedAir(config(leak_test=test))
    driven = Driven(rule)
    for number, row in enumerate(table):
        for _ in range(round(row.minutes * 60 / row.cycle_s)):
            for k in range(round(row.cycle_s / poll_s)):
                values: dict[str, Any] = {
                    "c.loaded": k * poll_s < row.loaded_s,
                    "compressor.pressure_setpoint_bar": row.setpoint,
                    **states(row.state),
                    **far_end(6.6),
                }
                if row.flow is not None:
                    values["c.flow"] = row.flow * RATED
                driven.step(values, dt=poll_s)
        (alarm,) = [c for c in rule.alarm_conditions() if c.name == "air.air_leak"]
        assert alarm.active is row.air_leak, (number, row, rule.detail()["air_use"])
    return rule


def test_one_poll_more_per_cycle_is_not_a_leak() -> None:
    """cell-1-003's six false alarms: at night the compressor loads about 21 s of every 210 s;
    polled every 5 s the loaded contact reads 20 s for hours, then 25 s for half an hour as the
    phase drifts. One poll per cycle is 2.4 % of capacity, over the 1 % floor: the duty cannot
    tell it from a leak, so the threshold adds it. A leak of 7 % is still found."""
    table = [
        Row(90, NIGHT, loaded_s=20),  # the first night learned: 9.5 %
        Row(30, NIGHT, loaded_s=25),  # one poll more per cycle: 11.9 %
        Row(30, NIGHT, loaded_s=20),
        Row(30, NIGHT, loaded_s=35, air_leak=True),  # 16.7 %: a leak of 7 % of capacity
    ]
    rule = run(table, poll_s=5.0)
    estimate = rule.detail()["air_use"]
    assert estimate["resolution"] == pytest.approx(5 / 210, abs=1e-3)
    assert estimate["state"] == "no-production"


def test_a_pressure_the_rule_raised_is_not_a_leak() -> None:
    """30 % standing leakage measured at night at 6.0 bar; production learned at 6.0 bar
    (duty 60 %); the setpoint held at 8.0 bar (a load-step hold, the fast path): leakage
    flows like an orifice, 9.013 / 7.013 of itself, 8.6 % of capacity more with nothing new.
    Compared at the same pressure it is no rise; a real 8 % leak at 8.0 bar is."""
    table = [
        Row(40, NIGHT, loaded_s=63, setpoint=6.0),  # 30 %: the leakage line's point
        Row(90, PRODUCING, loaded_s=126, setpoint=6.0),  # 60 %
        Row(40, PRODUCING, loaded_s=144, setpoint=8.0),  # 68.6 %: the same air at 8.0 bar
        Row(40, PRODUCING, loaded_s=161, setpoint=8.0, air_leak=True),  # 76.7 %: +8 %
    ]
    run(table, poll_s=1.0)


def test_a_leak_on_the_first_night_is_found_within_half_an_hour() -> None:
    """The gateway starts in production; production stops, and 30 min into the first night
    a leak of 3 % of capacity opens. Night windows are 5 min (the use is steady): four are
    learned 25 min after production stops, and the leak is alarmed 20 min after it opens,
    not learned as the night's normal."""
    table = [
        Row(63, PRODUCING, loaded_s=126),
        Row(31.5, NIGHT, loaded_s=42),  # 20 %
        Row(21, NIGHT, loaded_s=48.3, air_leak=True),  # 23 %
    ]
    rule = run(table, poll_s=1.0)
    assert rule.detail()["air_use"]["rise"] == pytest.approx(0.03, abs=0.005)


# Production flow, share of rated, window by window: the machines' air use wanders.
WANDER = [0.60, 0.61, 0.595, 0.605, 0.60, 0.615, 0.59, 0.605]


def flow_rows(flows: list[float], minutes: float, air_leak: bool = False) -> list[Row]:
    return [Row(minutes, PRODUCING, loaded_s=150, flow=f, air_leak=air_leak) for f in flows]


def test_a_production_leak_on_the_flow_meter_is_found_within_half_an_hour() -> None:
    """With a header flow meter the mean flow of a window does not depend on the compressor's
    cycles; production wanders by about 1 % of capacity; a leak of 4 % of capacity in
    production is alarmed 21 min after it opens, with its flow."""
    table = [
        *flow_rows(WANDER * 2, 14),  # about 3.7 h of production learned
        Row(3.5, PRODUCING, loaded_s=150, flow=0.64),
        Row(17.5, PRODUCING, loaded_s=150, flow=0.64, air_leak=True),
    ]
    rule = run(table, poll_s=5.0, flow="c.flow")
    estimate = rule.detail()["air_use"]
    assert estimate["leak_m3_min"] == pytest.approx(0.04 * RATED, abs=0.03)
    assert estimate["state"] == "production"


def test_production_wander_on_the_flow_meter_is_no_leak() -> None:
    table = [*flow_rows(WANDER * 2, 14), *flow_rows([0.615, 0.62, 0.59, 0.61] * 2, 14)]
    run(table, poll_s=5.0, flow="c.flow")


def test_a_flow_meter_needs_the_rated_flow() -> None:
    test = {"loaded": "c.loaded", "full_load_kw": 34.0, "flow": "c.flow"}
    with pytest.raises(ValidationError, match="rated_flow_m3_min"):
        config(leak_test=test)


def test_a_flow_meter_reading_garbage_raises_nothing() -> None:
    """Hostile input: the flow meter reads 1e9 m3/min (or negative) for an hour in production.
    Those readings are no air this compressor can deliver: left out, the windows are too gappy
    to judge, and no leak is alarmed; the meter's good readings judge again after."""
    table = [
        *flow_rows(WANDER, 14),
        *flow_rows([1e9 / RATED, -3.0], 28),
        *flow_rows(WANDER, 14),
    ]
    rule = run(table, poll_s=5.0, flow="c.flow")
    assert rule.detail()["air_use"]["use"] < 1.0


def test_a_mode_learned_after_the_leak_opened_neither_clears_nor_steps_it() -> None:
    """cell-1-015: a leak opens while the machines idle (a mode first seen then, so its windows
    learn the leak as normal); production finds it. Back at idle the rise is nil against that
    normal: the alarm is not cleared there (only the mode that raised it can see the leak go),
    and production's rise is no step over idle's level (levels are compared within a mode)."""
    idle = 2.0  # production on (at least 2), machines idle: another mode
    table = [
        *flow_rows(WANDER, 14),
        Row(75, idle, loaded_s=150, flow=0.34),  # first seen with a leak of 4 % open
        Row(30, PRODUCING, loaded_s=150, flow=0.64, air_leak=True),
        Row(60, idle, loaded_s=150, flow=0.34, air_leak=True),
        Row(30, PRODUCING, loaded_s=150, flow=0.64, air_leak=True),
    ]
    rule = run(table, poll_s=5.0, flow="c.flow")
    (alarm,) = [c for c in rule.alarm_conditions() if c.name == "air.air_leak"]
    assert alarm.steps == 0


def test_the_first_minutes_of_a_mode_are_no_window() -> None:
    """cell-2-001: back from a break, the machines start with 10 % of capacity more air for
    3 min. The moving window is judged only once it is (nearly) full, not on the first
    minutes' samples alone (which raised a false `air_leak` 5 min into the shift)."""
    table = [
        *flow_rows(WANDER, 14),
        Row(20, 2.0, loaded_s=150, flow=0.30, cycle_s=60),  # a break: another mode
        Row(5, PRODUCING, loaded_s=150, flow=0.60, cycle_s=60),  # settling
        Row(3, PRODUCING, loaded_s=150, flow=0.70, cycle_s=60),
        Row(7, PRODUCING, loaded_s=150, flow=0.60, cycle_s=60),
        Row(23, PRODUCING, loaded_s=150, flow=0.60, cycle_s=60),
    ]
    run(table, poll_s=5.0, flow="c.flow")


# --- production air explained by the machines' work (`explained_by`) -------------------------

# Two machines: (kW producing, air producing as a share of rated). Their air per kW differs, so
# the cell's total power alone does not explain the air; each machine's does.
MACHINE_WORK = {"plc.m1_kw": (40.0, 0.20), "plc.m2_kw": (20.0, 0.25)}
LEAKAGE = 0.15  # standing leakage, share of rated


@dataclass(frozen=True)
class WorkRow:
    """`minutes` of production with the machines working at `work` times their mean (each
    poll's own work scattered about it, as cycles are), a new leak of `leak` (share of rated)
    open, and `air_leak` raised or not at the end of the row."""

    minutes: float
    work: float = 1.0
    leak: float = 0.0
    air_leak: bool = False
    m1_reads: float | None = None  # the first machine's meter reads this instead
    m1_reads_polls: int | None = None  # ... for this many polls at the row's start (else all)
    unrelated: bool = False  # the power signals do not follow the machines' work


def run_work(table: list[WorkRow], **leak_test: Any) -> CompressedAir:
    test = {
        "loaded": "c.loaded",
        "full_load_kw": 34.0,
        "rated_flow_m3_min": RATED,
        "flow": "c.flow",
        **leak_test,
    }
    rule = CompressedAir(config(leak_test=test))
    driven = Driven(rule)
    scatter = random.Random(14)
    poll_s = 5.0
    for number, row in enumerate(table):
        for k in range(round(row.minutes * 60 / poll_s)):
            values: dict[str, Any] = {
                "c.loaded": k % 12 < 6,
                "compressor.pressure_setpoint_bar": 6.5,
                **states(PRODUCING),
                **far_end(6.6),
            }
            flow = LEAKAGE + row.leak
            for tag, (kw, air) in MACHINE_WORK.items():
                work = row.work * (1.0 + scatter.gauss(0.0, 0.08))
                values[tag] = kw * work
                if row.unrelated:
                    values[tag] = kw * (1.0 + scatter.gauss(0.0, 0.08))
                flow += air * work
            if row.m1_reads is not None and (row.m1_reads_polls is None or k < row.m1_reads_polls):
                values["plc.m1_kw"] = row.m1_reads
            values["c.flow"] = flow * RATED
            driven.step(values, dt=poll_s)
        (alarm,) = [c for c in rule.alarm_conditions() if c.name == "air.air_leak"]
        assert alarm.active is row.air_leak, (number, row, rule.detail()["air_use"])
    return rule


# The machines' work, 15 min by 15 min: it wanders by about 1 % of their mean.
WORK = [1.0, 1.01, 0.99, 1.005, 0.995, 1.01, 0.99, 1.0]


def test_the_machines_working_harder_is_no_leak_when_their_power_explains_it() -> None:
    """cell-1-003's excursion: both machines use 11 % more air for 30 min with no leak: 5 % of
    capacity, many times the windows' wander. Judged on what the machines' power does not
    explain, it is nothing."""
    table = [*(WorkRow(15, w) for w in WORK), WorkRow(30, 1.11), WorkRow(30, 1.0)]
    run_work(table, explained_by=list(MACHINE_WORK))


def test_a_production_leak_under_the_wander_is_found_within_half_an_hour() -> None:
    """A leak of 2 % of capacity opens in production while the machines work 4 % lighter than
    their mean (1.8 % of capacity less air): by the flow alone nothing rose (and a rise of 2 %
    would be under the 3 % floor); on what the machines' power does not explain, the leak
    alone is left and is alarmed within 30 min, with its flow."""
    table = [
        *(WorkRow(15, w) for w in WORK),
        WorkRow(30, 0.96, leak=0.02, air_leak=True),
    ]
    rule = run_work(table, explained_by=list(MACHINE_WORK))
    estimate = rule.detail()["air_use"]
    assert estimate["rise"] == pytest.approx(0.02, abs=0.005)
    assert estimate["leak_m3_min"] == pytest.approx(0.02 * RATED, abs=0.03)


def test_explained_by_needs_a_flow_meter() -> None:
    test = {"loaded": "c.loaded", "full_load_kw": 34.0, "explained_by": ["plc.m1_kw"]}
    with pytest.raises(ValidationError, match="explained_by: needs flow:"):
        config(leak_test=test)
    test |= {"flow": "c.flow", "rated_flow_m3_min": RATED, "explained_by": ["p.a", "p.a"]}
    with pytest.raises(ValidationError, match="listed twice"):
        config(leak_test=test)


def test_a_machine_power_meter_reading_negative_raises_nothing() -> None:
    """Hostile input: a machine's power meter reads -500 kW for 45 min while the machines work
    8 % harder. Those polls are no work: left out, the windows are too gappy to judge, nothing
    is raised; the good readings judge again after, and find a leak."""
    table = [
        *(WorkRow(15, w) for w in WORK),
        WorkRow(45, 1.08, m1_reads=-500.0),
        WorkRow(30, 1.0),
        WorkRow(30, 1.0, leak=0.02, air_leak=True),
    ]
    run_work(table, explained_by=list(MACHINE_WORK))


def test_signals_that_explain_nothing_keep_the_flow_alone_s_floor() -> None:
    """Power signals that do not follow the machines' air (meters on other loads) explain
    none of its wander: the production floor stays `rise_above` (3 %), not the 1 % a fit that
    explains the wander earns, and a rise of 2 % is not raised, as by the flow alone."""
    table = [
        *(WorkRow(15, 1.0, unrelated=True) for _ in WORK),  # steady: the spreads are small
        WorkRow(30, 1.0, leak=0.02, unrelated=True),
    ]
    rule = run_work(table, explained_by=list(MACHINE_WORK))
    assert rule.detail()["air_use"]["rise_above"] >= 0.028


def test_a_failed_machine_power_meter_does_not_stop_the_pressure_control() -> None:
    """Hostile input: a machine's power meter goes silent (its reading gone, or bad). The work
    signals only sharpen the leak estimate, so they are no required input: the engine does not
    stop the rule for them, the setpoint is still proposed, and those polls are left out of
    the fit (nothing raised); once the meter reads again a leak is found."""
    rule = CompressedAir(
        config(
            leak_test={
                "loaded": "c.loaded",
                "full_load_kw": 34.0,
                "rated_flow_m3_min": RATED,
                "flow": "c.flow",
                "explained_by": list(MACHINE_WORK),
            }
        )
    )
    assert not set(MACHINE_WORK) & set(rule.inputs)
    assert "c.flow" in rule.inputs
    driven = Driven(rule)
    for k in range(120):  # 10 min with the first machine's meter silent
        values: dict[str, Any] = {
            "c.loaded": k % 12 < 6,
            "compressor.pressure_setpoint_bar": 6.5,
            **states(PRODUCING),
            **far_end(6.6),
        }
        flow = LEAKAGE
        for tag, (kw, air) in MACHINE_WORK.items():
            values[tag] = kw
            flow += air
        del values["plc.m1_kw"]
        values["c.flow"] = flow * RATED
        assert "compressor.pressure_setpoint_bar" in driven.step(values, dt=5.0)
    (alarm,) = [c for c in rule.alarm_conditions() if c.name == "air.air_leak"]
    assert alarm.active is False


def test_an_absurd_machine_power_reading_does_not_hide_a_leak_for_hours() -> None:
    """Hostile input: a machine's power meter glitches to 10x its draw (400 kW) for a minute.
    Fitted, those polls' work explained far more air than flowed and bent the mode's slopes
    for as long as their window stayed in the history (4 h): a leak of 2 % of capacity opened
    after it while the machines worked 7 % lighter (the first machine's 1.4 % less air no
    longer explained) was not seen. A reading far above what the signal did in its mode's
    learned windows is no work: left out of the fit like a negative one, and the leak is
    alarmed within 30 min."""
    table = [
        *(WorkRow(15, w) for w in WORK),
        WorkRow(1, 1.0, m1_reads=400.0, m1_reads_polls=6),
        WorkRow(29, 1.0),
        WorkRow(30, 0.93, leak=0.02, air_leak=True),
    ]
    run_work(table, explained_by=list(MACHINE_WORK))

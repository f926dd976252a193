"""What rules learn outlives a restart: the water leak baseline saved to and restored from the
state directory, through the engine and the store; corrupt and foreign files are ignored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from closedloop import Cell, EventLog, SteppedClock, float_tag, start_plant
from structlog.testing import capture_logs

from controller.model import Sample
from controller.rules.engine import RuleEngine
from controller.rules.memory import RuleMemory, RuleMemoryError
from controller.rules.rule import Now, Proposal, Rule, number
from controller.rules.water.water_leak import WaterLeak, WaterLeakConfig
from tests.rules.plantloop import Driven

DAY_MS = 86_400_000


def leak_rule(**changes: Any) -> WaterLeak:
    settings: dict[str, Any] = {
        "name": "water",
        "kind": "water_leak",
        "flow": "wm.flow_m3_h",
        "production": {"tags": ["plc.state"], "at_least": 3},
        "threshold_m3_h": 0.2,
    }
    settings.update(changes)
    return WaterLeak(WaterLeakConfig.model_validate(settings))


def learn_two_nights(rule: WaterLeak) -> Driven:
    driven = Driven(rule)
    for night in (0.10, 0.12):
        for flow, state, hours in ((night, 1, 3), (2.0, 3, 1)):
            for _ in range(hours * 360):
                driven.step({"wm.flow_m3_h": flow, "plc.state": state}, dt=10.0)
    return driven


def test_water_leak_learned_baseline_survives_a_restart(tmp_path: Path) -> None:
    before = leak_rule()
    driven = learn_two_nights(before)
    assert before.baseline((1.0,), producing=False) == pytest.approx(0.104)
    memory = RuleMemory(tmp_path)
    assert memory.save(before, driven.now.wall_ms)
    after = leak_rule()
    assert after.baseline((1.0,), producing=False) is None
    assert memory.restore(after)
    assert after.baseline((1.0,), producing=False, at_ms=driven.now.wall_ms) == pytest.approx(0.104)


def test_a_remembered_baseline_older_than_its_bound_is_not_trusted(tmp_path: Path) -> None:
    before = leak_rule(baseline_max_age="7d")
    driven = learn_two_nights(before)
    RuleMemory(tmp_path).save(before, driven.now.wall_ms)
    after = leak_rule(baseline_max_age="7d")
    RuleMemory(tmp_path).restore(after)
    eight_days_on = driven.now.wall_ms + 8 * DAY_MS
    assert after.baseline((1.0,), producing=False, at_ms=eight_days_on) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"format": "other", "version": 1}).encode(), "not edgecell-rule-memory"),
        (
            json.dumps(
                {
                    "format": "edgecell-rule-memory",
                    "version": 1,
                    "rule": "tower",
                    "kind": "cooling_tower_blowdown",
                    "saved_at_ms": 0,
                    "state": {},
                }
            ).encode(),
            "kept for rule 'tower'",
        ),
        (
            json.dumps(
                {
                    "format": "edgecell-rule-memory",
                    "version": 1,
                    "rule": "water",
                    "kind": "water_leak",
                    "saved_at_ms": 0,
                    "state": {"learned": [{"mode": ["x"], "minima": "many"}]},
                }
            ).encode(),
            "not a water_leak memory",
        ),
    ],
)
def test_a_corrupt_or_foreign_file_is_ignored_with_one_log_line(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    (tmp_path / "water.json").write_bytes(content)
    rule = leak_rule()
    with capture_logs() as logs:
        assert not RuleMemory(tmp_path).restore(rule)
    assert [entry["event"] for entry in logs] == ["rule_memory_ignored"]
    assert reason in logs[0]["reason"]
    assert rule.minima == {}


def test_no_file_is_a_first_start_without_a_log_line(tmp_path: Path) -> None:
    with capture_logs() as logs:
        assert not RuleMemory(tmp_path / "missing").restore(leak_rule())
    assert logs == []


def test_an_unwritable_directory_is_one_log_line_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "rules"
    blocker.write_text("a file where the directory should be")
    with capture_logs() as logs:
        assert not RuleMemory(blocker).save(leak_rule(), 0)
    assert [entry["event"] for entry in logs] == ["rule_memory_not_saved"]


# --- through the engine ------------------------------------------------------------------------


class Peak(Rule):
    """Remembers the highest power it has read (a stand-in for anything a rule learns)."""

    def __init__(self) -> None:
        self.name, self.kind, self.mode, self.priority = "peak", "peak", "auto", 0
        self.inputs = {"meter.power_kw": None}
        self.outputs = ()
        self.peak = 0.0
        self.memory_revision = 0

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        power = number(snapshot, "meter.power_kw")
        if power > self.peak:
            self.peak, self.memory_revision = power, self.memory_revision + 1
        return []

    def remembered(self) -> dict[str, Any]:
        return {"peak": self.peak}

    def recall(self, state: Mapping[str, Any]) -> None:
        peak = state.get("peak")
        if not isinstance(peak, float):
            raise RuleMemoryError("no peak")
        self.peak = peak


@pytest.fixture
async def cell(tmp_path: Path) -> AsyncIterator[tuple[Cell, SteppedClock]]:
    clock = SteppedClock()
    meter = await start_plant(
        [float_tag("power_kw", 0)],
        clock,
        tmp_path / "meter",
        name="meter",
        initial={"power_kw": 42.0},
    )
    cell = Cell([meter])
    yield cell, clock
    await cell.stop()


async def test_the_engine_saves_what_a_rule_learned_and_a_new_engine_restores_it(
    cell: tuple[Cell, SteppedClock], tmp_path: Path
) -> None:
    plant, clock = cell
    memory = RuleMemory(tmp_path / "state" / "rules")
    events = EventLog()
    first = Peak()
    engine = RuleEngine([first], plant.table, plant.actuator(clock, events), clock, memory=memory)
    clock.advance(1.0)
    await plant.poll()
    await engine.cycle()
    assert first.peak == 42.0
    saved = json.loads(memory.path("peak").read_text())
    assert saved["state"] == {"peak": 42.0}
    assert saved["saved_at_ms"] == clock.wall_ms()
    second = Peak()  # the daemon restarted
    RuleEngine([second], plant.table, plant.actuator(clock, events), clock, memory=memory)
    assert second.peak == 42.0

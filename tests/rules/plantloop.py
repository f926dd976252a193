"""Drive one energy or water rule without any protocol: snapshots made from the simulated
plant's points (or from synthetic values), the rule's proposals written straight back to the
plant, the PLCs' heartbeats kept alive. Imported by name from the tests beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from controller.model import Quality, Sample, Value
from controller.rules.common import OutputValue
from controller.rules.rule import Now, Proposal, Rule
from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import Scenario, load_scenario


def sample(tag: str, value: Value | None, ts_ms: int, quality: Quality = Quality.GOOD) -> Sample:
    device, name = tag.split(".", 1)
    return Sample(device, name, value, quality, ts_ms, ts_ms)


def snapshot(values: Mapping[str, Value], ts_ms: int) -> dict[str, Sample]:
    return {tag: sample(tag, value, ts_ms) for tag, value in values.items()}


@dataclass
class Driven:
    """A rule evaluated on synthetic values: `step(values)` runs one cycle `dt` after the last."""

    rule: Rule
    start_ms: int = 1_717_372_800_000  # 2024-06-03 00:00 UTC, a Monday
    t: float = 0.0
    proposals: list[Proposal] = field(default_factory=list)

    def step(self, values: Mapping[str, Value], dt: float = 1.0) -> dict[str, OutputValue]:
        self.t += dt
        now = self.now
        snap = snapshot(values, now.wall_ms)
        if self.t == dt:
            self.rule.restart(snap, now)
        self.proposals = self.rule.evaluate(snap, now)
        return {p.tag: p.value for p in self.proposals}

    @property
    def now(self) -> Now:
        return Now(self.t, self.start_ms + round(self.t * 1000))


def scenario(name: str = "normal-day", **changes: Any) -> Scenario:
    """A shipped scenario with some top-level sections replaced (e.g. `events=`)."""
    loaded = load_scenario(name)
    if not changes:
        return loaded
    data = loaded.model_dump()
    data.update(changes)
    return Scenario.model_validate(data)


class PlantLoop:
    """A `Plant` and a rule in lock-step: every `dt` the plant steps, the rule reads its points
    (named as the rule's tags through `points`) and its proposals are written to the plant.

    `hours_from` starts the plant that many hours after the scenario start (stepped without
    the rule, as the cell runs before the controller is started)."""

    def __init__(
        self,
        rule: Rule,
        points: Mapping[str, str],
        *,
        plant: Plant | None = None,
        dt: float = 1.0,
        extra: Callable[[Plant], Mapping[str, Value]] | None = None,
    ) -> None:
        self.plant = plant or Plant(scenario())
        self.rule = rule
        self.points = dict(points)
        self.dt = dt
        self.extra = extra
        self.beat = 0
        self.started = False
        self.written: dict[str, list[OutputValue]] = {}

    @property
    def now(self) -> Now:
        plant = self.plant
        wall = plant.now.replace(tzinfo=UTC).timestamp()
        return Now(plant.time_s, round(wall * 1000))

    def advance(self, seconds: float, dt: float = 10.0) -> None:
        """Step the plant alone (the controller not yet running); PLCs keep their heartbeats."""
        for _ in range(round(seconds / dt)):
            self._beat()
            self.plant.step(dt)

    def snapshot(self) -> dict[str, Sample]:
        now = self.now
        values: dict[str, Value] = {}
        for tag, point in self.points.items():
            value = self.plant.read_point(point)
            values[tag] = value
        if self.extra is not None:
            values.update(self.extra(self.plant))
        return snapshot(values, now.wall_ms)

    def run(self, seconds: float, each: Callable[[PlantLoop], None] | None = None) -> None:
        for _ in range(round(seconds / self.dt)):
            self._beat()
            self.plant.step(self.dt)
            snap = self.snapshot()
            now = self.now
            if not self.started:
                self.rule.restart(snap, now)
                self.started = True
            for proposal in self.rule.evaluate(snap, now):
                point = self.points[proposal.tag]
                value = proposal.value
                self.plant.write_point(point, float(value))
                self.written.setdefault(proposal.tag, []).append(value)
            if each is not None:
                each(self)

    def _beat(self) -> None:
        self.beat += 1
        for name in ("compressor", "chiller", "water"):
            self.plant.write_point(f"{name}.heartbeat", self.beat % 30000)

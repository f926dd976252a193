"""The plant is a function of its scenario, seed and steps: the same inputs give the same day."""

from __future__ import annotations

from drivers.sim.plant import Plant
from drivers.sim.scenario import Scenario


def _trace(scenario: Scenario, seed: int | None = None) -> list[dict[str, object]]:
    plant = Plant(scenario, seed=seed)
    names = list(plant.point_names())
    trace = []
    while plant.time_s < 86400.0:
        plant.step(5.0)
        if plant.time_s % 3600 == 0:
            trace.append({name: plant.read_point(name) for name in names})
    trace.append(plant.ground_truth().as_dict())
    return trace


def test_same_seed_gives_an_identical_day(normal_day: Scenario) -> None:
    assert _trace(normal_day) == _trace(normal_day)


def test_another_seed_gives_another_day(normal_day: Scenario) -> None:
    assert _trace(normal_day, seed=1) != _trace(normal_day, seed=99)

"""The simulated plant's physics, independent of any protocol: `Plant(scenario).step(dt)`."""

from drivers.sim.plant.plant import Plant, PointInfo
from drivers.sim.plant.truth import GroundTruth, write_ground_truth

__all__ = ["GroundTruth", "Plant", "PointInfo", "write_ground_truth"]

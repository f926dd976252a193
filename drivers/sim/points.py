"""The seam between the simulated plant and its protocol faces.

The Modbus and OPC UA servers know only this protocol: they read the plant's points to serve
them and pass setpoint writes back. The physics never knows which protocol serves a point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

PointValue = float | int | bool


class PointSource(Protocol):
    """A plant, seen by the servers in front of it."""

    def point_names(self) -> Iterable[str]:
        """Every point the plant has (measurements and setpoints)."""
        ...

    def read_point(self, name: str) -> PointValue:
        """The present value of a point; KeyError for an unknown name."""
        ...

    def write_point(self, name: str, value: PointValue) -> None:
        """A controller wrote a setpoint. The plant applies its own limits (as a PLC would);
        KeyError for an unknown point, PermissionError for a point that is not writable."""
        ...


class DictPoints:
    """A process image whose values a test or a bench sets by hand (`points[name] = value`):
    every point readable and writable, no physics; the server in front of it is real."""

    def __init__(self, points: Mapping[str, PointValue]) -> None:
        self.points: dict[str, PointValue] = dict(points)

    def point_names(self) -> Iterable[str]:
        return self.points

    def read_point(self, name: str) -> PointValue:
        return self.points[name]

    def write_point(self, name: str, value: PointValue) -> None:
        if name not in self.points:
            raise KeyError(name)
        self.points[name] = value

"""The seam between the simulated plant and its protocol faces.

The Modbus and OPC UA servers know only this protocol: they read the plant's points to serve
them and pass setpoint writes back. The physics never knows which protocol serves a point.
"""

from __future__ import annotations

from collections.abc import Iterable
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

"""What every gateway under test is asked to do: N devices x M holding registers, each register
one tag (uint16, scaled by 0.1, named r0000...), polled every `period` seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_REGISTERS_PER_READ = 125  # Modbus application protocol v1.1b3, 6.3
SCALE = 0.1  # every tag is "tenths of a unit", as many meters and PLCs publish
CHANGE_FRACTION = 0.1  # bench.simulator changes one register in ten per period


@dataclass(frozen=True)
class Workload:
    devices: int
    registers: int
    period: float = 1.0

    @property
    def tags(self) -> int:
        return self.devices * self.registers

    @property
    def reads_per_device(self) -> int:
        """The fewest requests that read one device's registers (the optimum)."""
        return math.ceil(self.registers / MAX_REGISTERS_PER_READ)

    def reads(self) -> list[tuple[int, int]]:
        """(first address, count) of each optimal read of one device."""
        return [
            (start, min(MAX_REGISTERS_PER_READ, self.registers - start))
            for start in range(0, self.registers, MAX_REGISTERS_PER_READ)
        ]


def device_name(index: int) -> str:
    return f"d{index:03d}"


def tag_name(address: int) -> str:
    return f"r{address:04d}"

"""What every gateway under test is asked to do: N devices x M holding registers polled every
`period` seconds, with one of two register maps (the same for every device):

- `uint16`: every register one tag, `uint16` scaled by 0.1, named `r0000`...;
- `mixed`: what meters look like, each read of 125 registers holding 50 `float32` values
  (two registers each, in engineering units) and then 25 `int16` values scaled by 0.1: 75 named
  values per read, as in the issue's reference measurement.

A tag is named after its first register (`r0100`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

MAX_REGISTERS_PER_READ = 125  # Modbus application protocol v1.1b3, 6.3
SCALE = 0.1  # integer tags are "tenths of a unit", as many meters and PLCs publish
CHANGE_FRACTION = 0.1  # bench.simulator changes one tag in ten per period
FLOATS_PER_READ = 50  # the mixed map: float32 pairs first in each read, int16 after them
REGISTER_MAPS = ("uint16", "mixed")

# kind -> (registers, scale)
KINDS: dict[str, tuple[int, float]] = {
    "uint16": (1, SCALE),
    "int16": (1, SCALE),
    "float32": (2, 1.0),
}


@dataclass(frozen=True)
class Field:
    """One tag of a device: its first register, its kind and the scale its value carries."""

    address: int
    kind: str

    @property
    def registers(self) -> int:
        return KINDS[self.kind][0]

    @property
    def scale(self) -> float:
        return KINDS[self.kind][1]


@dataclass(frozen=True)
class Workload:
    devices: int
    registers: int
    period: float = 1.0
    register_map: str = "uint16"

    @cached_property
    def fields(self) -> tuple[Field, ...]:
        """The tags of one device, in address order."""
        if self.register_map == "uint16":
            return tuple(Field(a, "uint16") for a in range(self.registers))
        fields: list[Field] = []
        for first, count in self.reads():
            floats = min(FLOATS_PER_READ, count // 2)
            fields += [Field(first + 2 * k, "float32") for k in range(floats)]
            fields += [Field(a, "int16") for a in range(first + 2 * floats, first + count)]
        return tuple(fields)

    @property
    def tags_per_device(self) -> int:
        return len(self.fields)

    @property
    def tags(self) -> int:
        return self.devices * self.tags_per_device

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

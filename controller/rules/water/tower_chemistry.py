"""A cooling tower's water balance at a given cycles of concentration: makeup = evaporation +
blowdown, and the dissolved solids in the makeup leave with the blowdown."""

from __future__ import annotations


def cycles_of_concentration(tower_us_cm: float, makeup_us_cm: float) -> float:
    """Cycles of concentration: dissolved solids (conductivity) in the tower over the makeup's."""
    return tower_us_cm / makeup_us_cm


def blowdown_for_cycles(evaporation_m3_h: float, cycles: float) -> float:
    """Blowdown (with drift) that holds `cycles`: B = E / (C - 1), from makeup = E + B and
    makeup * C_makeup = B * C_tower (the solids balance)."""
    if cycles <= 1:
        raise ValueError("cycles of concentration must be above 1")
    return evaporation_m3_h / (cycles - 1)


def makeup_for_cycles(evaporation_m3_h: float, cycles: float) -> float:
    """Makeup at `cycles`: M = E * C / (C - 1)."""
    return evaporation_m3_h + blowdown_for_cycles(evaporation_m3_h, cycles)

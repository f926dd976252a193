"""Totalisers never go back, in the plant and in the float32 registers that serve them."""

from __future__ import annotations

import struct

from drivers.sim.plant import Plant
from drivers.sim.scenario import Scenario

COUNTERS = (
    "site_meter.import_energy_kwh",
    "water_meter.total_m3",
    "tower.makeup_total_m3",
    "rinse.fresh_total_m3",
    "compressor.energy_kwh",
)


def _float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def test_counters_only_increase_over_a_day(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    last = {name: float(plant.read_point(name)) for name in COUNTERS}
    last32 = {name: _float32(v) for name, v in last.items()}
    while plant.time_s < 86400.0:
        plant.step(5.0)
        for name in COUNTERS:
            value = float(plant.read_point(name))
            assert value >= last[name], name
            assert _float32(value) >= last32[name], name
            last[name], last32[name] = value, _float32(value)
    assert last["site_meter.import_energy_kwh"] > normal_day.site.meter.initial_import_kwh


def test_split_water_totaliser_adds_up_to_the_float_one(normal_day: Scenario) -> None:
    plant = Plant(normal_day)
    while plant.time_s < 3 * 3600:
        plant.step(5.0)
    whole = plant.read_point("water_meter.total_whole_m3")
    fraction = float(plant.read_point("water_meter.total_fraction_m3"))
    assert isinstance(whole, int)
    assert 0.0 <= fraction < 1.0
    assert whole + fraction == float(plant.read_point("water_meter.total_m3"))

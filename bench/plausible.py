"""What a generated cell must hold on its own fixed controls to be a site anyone would build:
the compressor feeds the machines' air, its own leaks and any injected leak at its cut-in
pressure with a margin, the chiller covers the process heat and the loop's gain from the
design ambient at its design return, and the rinse's own overflow holds its quality limit
against the drag-out of full production. A cell that breaks these breaks its process limits for
hours in the baseline too (cells 1-020, 1-025, 1-026 of the 30-cell run: far end under its
minimum 19,045 s and 40 s, return water over its limit 12,420 s on the plant's own controls),
and says nothing about the rules. bench/cellgen.py draws within them; the test of the
generator checks every cell of several seeds against `implausible`. docs/simulator.md,
"Generated cells", gives the rules.
"""

from __future__ import annotations

import math

from drivers.sim.plant.air import P_ATM_BAR, orifice_free_air_m3_min_per_bar_abs
from drivers.sim.scenario import AirLeak, Scenario

# The compressor's rated flow over what it must deliver at its cut-in pressure, at least: the
# machines' air varies about its mean (8 % by default, a minute's correlation), and the
# compressor, loaded all the time at 1.0, would let the header sink under the cut-in.
AIR_MARGIN = 1.1
# The loop's design temperature difference: its flow is sized to carry the chiller's capacity
# at 5 K (bench/cellgen.py), so the design return is the design supply plus 5 K.
DESIGN_DELTA_K = 5.0


def hole_air_m3_min(orifice_mm: float, pressure_bar: float, discharge_coefficient: float) -> float:
    """Free air through an injected leak at a header pressure (bar g)."""
    k = orifice_free_air_m3_min_per_bar_abs(orifice_mm, discharge_coefficient)
    return k * (pressure_bar + P_ATM_BAR)


def largest_hole_mm(
    spare_m3_min: float, pressure_bar: float, discharge_coefficient: float
) -> float:
    """The widest orifice whose flow at `pressure_bar` fits in `spare_m3_min` (flow goes with
    the orifice's area)."""
    if spare_m3_min <= 0:
        return 0.0
    per_mm2 = hole_air_m3_min(1.0, pressure_bar, discharge_coefficient)
    return math.sqrt(spare_m3_min / per_mm2)


def base_leak_m3_min(
    rated_flow: float, leak_fraction: float, rated_pressure: float, pressure_bar: float
) -> float:
    """The compressed-air system's own leaks at a header pressure (the plant's model: a share
    of rated flow at rated pressure, going with absolute pressure)."""
    return leak_fraction * rated_flow * (pressure_bar + P_ATM_BAR) / (rated_pressure + P_ATM_BAR)


def design_cooling_kw(
    heat_kw: float, gain_kw_per_k: float, ambient_max_c: float, supply_c: float
) -> float:
    """What the chiller must take out at full production on the design day: the machines'
    heat plus the loop's gain from the day's highest ambient with the return at its design
    value (the design supply + `DESIGN_DELTA_K`)."""
    return heat_kw + gain_kw_per_k * max(0.0, ambient_max_c - (supply_c + DESIGN_DELTA_K))


def rinse_steady_us_cm(
    fresh_m3_h: float, fresh_us_cm: float, dragout_l_h: float, bath_us_cm: float
) -> float:
    """The rinse tank's conductivity once it has settled with production running: fresh water
    at `fresh_m3_h` and the drag-out's bath both flow in, the mixture overflows."""
    fresh_l_h = fresh_m3_h * 1000.0
    return (fresh_l_h * fresh_us_cm + dragout_l_h * bath_us_cm) / (fresh_l_h + dragout_l_h)


def rinse_overflow_pct(
    fresh_max_m3_h: float, fresh_us_cm: float, dragout_l_h: float, bath_us_cm: float, target: float
) -> float:
    """The fresh valve's opening (%) at which the settled rinse is at `target` uS/cm (over 100:
    the valve cannot)."""
    if target <= fresh_us_cm:
        return math.inf
    fresh_l_h = dragout_l_h * (bath_us_cm - target) / (target - fresh_us_cm)
    return 100.0 * fresh_l_h / 1000.0 / fresh_max_m3_h


def air_needed_m3_min(scenario: Scenario) -> float:
    """Free air the compressor must deliver at its cut-in pressure with every machine producing,
    its own leaks and every injected air leak flowing."""
    air = scenario.compressed_air
    cut_in = air.setpoint_bar.default - air.pressure_band_bar
    machines = sum(m.air_m3_min.producing for m in scenario.machines)
    own = base_leak_m3_min(air.rated_flow_m3_min, air.leak_fraction, air.rated_pressure_bar, cut_in)
    holes = sum(
        hole_air_m3_min(leak.orifice_mm, cut_in, leak.discharge_coefficient)
        for leak in scenario.events.leaks
        if isinstance(leak, AirLeak)
    )
    return machines + own + holes


def implausible(scenario: Scenario) -> list[str]:
    """What in `scenario` no site would be built with (empty: nothing)."""
    problems: list[str] = []
    air = scenario.compressed_air
    needed = air_needed_m3_min(scenario)
    if air.rated_flow_m3_min < AIR_MARGIN * needed:
        problems.append(
            f"compressor {air.rated_flow_m3_min:.2f} m3/min against {needed:.2f} m3/min of"
            f" machines, leaks and injected leaks at its cut-in pressure (x {AIR_MARGIN} needed)"
        )
    water = scenario.chilled_water
    heat = sum(m.power_kw.producing * m.heat_to_chilled_water for m in scenario.machines)
    load = design_cooling_kw(
        heat, water.ambient_gain_kw_per_k, scenario.ambient.max_c, water.supply_setpoint_c.default
    )
    if water.capacity_kw < load:
        problems.append(
            f"chiller {water.capacity_kw:.0f} kW against {load:.1f} kW of process heat and loop"
            f" gain at {scenario.ambient.max_c} degC ambient"
        )
    rinse = scenario.rinse
    settled = rinse_steady_us_cm(
        rinse.fresh_max_m3_h * rinse.fresh_valve_pct.default / 100.0,
        rinse.fresh_conductivity_us_cm,
        rinse.dragout_l_h,
        rinse.bath_conductivity_us_cm,
    )
    if settled > rinse.quality_limit_us_cm:
        problems.append(
            f"rinse overflow {rinse.fresh_valve_pct.default:.0f} % of {rinse.fresh_max_m3_h}"
            f" m3/h settles at {settled:.0f} uS/cm in production, over its limit"
            f" {rinse.quality_limit_us_cm:.0f}"
        )
    return problems

"""What really happened in the simulated plant, for scoring a controller: energy per component,
water per use, true leak starts, cost. It never goes over a protocol: only to a file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LeakTruth:
    name: str
    kind: str
    configured_start: str  # local time the scenario names
    started_s: float | None = None  # simulated seconds when it first flowed
    volume_m3: float = 0.0  # water m3, or free air m3
    # Where it is, in the words alarms use for their location (controller/alarms.py): `main`
    # (a pipe behind the main meter), `cooling_tower` (the basin), `compressed_air`.
    location: str = ""


@dataclass
class GroundTruth:
    scenario: str
    seed: int
    start: str
    elapsed_s: float = 0.0
    site_import_kwh: float = 0.0
    energy_kwh: dict[str, float] = field(default_factory=dict)  # by component
    water_m3: dict[str, float] = field(default_factory=dict)  # by use
    air_m3: dict[str, float] = field(default_factory=dict)  # free air by use
    leaks: list[LeakTruth] = field(default_factory=list)
    energy_cost: float = 0.0
    energy_cost_by_period: dict[str, float] = field(default_factory=dict)
    # The site meter's own demand (sliding over site.meter.demand_window): its highest value.
    max_demand_kw: float = 0.0
    meter_demand_window_s: float = 900.0
    # What the utility bills: the highest average over the tariff's windows
    # (tariff.demand_window, clock-aligned when tariff.demand_alignment is fixed).
    billing_demand_kw: float = 0.0
    billing_window_s: float = 900.0
    billing_alignment: str = "fixed"
    demand_charge_prorated: float = 0.0
    water_cost: float = 0.0
    seconds_process_above_limit: float = 0.0
    seconds_far_end_below_critical: float = 0.0
    seconds_rinse_above_limit: float = 0.0
    seconds_tower_above_limit: float = 0.0  # tower conductivity over its chemistry limit
    # By machine: seconds scheduled to produce while in standby or still waking up.
    seconds_production_lost: dict[str, float] = field(default_factory=dict)
    machine_restarts: dict[str, int] = field(default_factory=dict)  # times left standby
    # By machine: energy of its wake-ups above idle power (already in energy_kwh[machine]).
    restart_kwh: dict[str, float] = field(default_factory=dict)
    # By heated tank: seconds under its minimum while its machine produced.
    seconds_tank_below_min: dict[str, float] = field(default_factory=dict)
    # By charging point: energy the cars wanted and left without.
    ev_energy_short_kwh: dict[str, float] = field(default_factory=dict)
    plc_fallbacks: dict[str, int] = field(default_factory=dict)
    # Storage and sun (zero unless the scenario has `pv:` / `battery:`).
    site_export_kwh: float = 0.0
    export_revenue: float = 0.0
    pv_kwh: float = 0.0  # AC energy the PV inverter delivered
    pv_clipped_kwh: float = 0.0  # DC energy above the inverter's rating, not converted
    battery_charged_kwh: float = 0.0  # AC, from the site
    battery_discharged_kwh: float = 0.0  # AC, to the site
    battery_loss_kwh: float = 0.0  # inverter, DC round trip and standby
    battery_curtailed_kwh: float = 0.0  # remote setpoint asked beyond a limit, not given
    battery_soc_min_pct: float | None = None
    battery_soc_max_pct: float | None = None
    battery_initial_soc_pct: float | None = None
    battery_final_soc_pct: float | None = None
    seconds_soc_outside_limits: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_ground_truth(truth: GroundTruth, path: Path) -> None:
    """Write the ground truth as JSON (atomically: a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(truth.as_dict(), indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)

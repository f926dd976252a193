"""Generated cells (bench/cellgen.py): reproducible from (seed, index), valid in the scenario
schema and the controller's config schema, within the documented ranges, the config fitted to
its own cell, and runnable by the plant."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
import yaml

from bench.cellgen import RANGES, Cell, generate, production_periods, quiet_hours
from bench.plausible import implausible
from controller.cellcheck import check_cell
from controller.config import Config, load_config
from controller.rules.energy.chiller_reset import ChillerResetConfig
from controller.rules.energy.compressed_air import CompressedAirConfig
from controller.rules.energy.peak_shaving import PeakShavingConfig
from controller.rules.schedule import Schedule
from controller.rules.water.tower_balance import TowerBalanceConfig
from controller.rules.water.water_leak import WaterLeakConfig
from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import AirLeak, Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
CELLS = 30


def loaded(cell: Cell, directory: Path) -> tuple[Scenario, Config]:
    scenario_path, config_path = cell.write(directory / cell.name)
    return load_scenario(scenario_path), load_config(config_path).config


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Scenario, Config]]:
    directory = tmp_path_factory.mktemp("cells")
    return [loaded(generate(1, index), directory) for index in range(CELLS)]


def test_the_same_seed_and_index_give_the_same_cell() -> None:
    assert generate(7, 3) == generate(7, 3)
    assert generate(7, 3).scenario != generate(7, 4).scenario
    assert generate(7, 3).scenario != generate(8, 3).scenario


def test_production_periods_are_the_shifts_less_their_pauses() -> None:
    # normal-day's plan gives configs/cosim.yaml's hand-written production periods.
    shifts = [("06:00", "14:00"), ("14:00", "22:00")]
    pauses = [("09:00", 15), ("11:45", 30), ("17:00", 15), ("19:30", 30), ("15:00", 20)]
    shipped = yaml.safe_load((ROOT / "configs" / "cosim.yaml").read_text(encoding="utf-8"))
    (standby,) = [rule for rule in shipped["rules"] if rule["kind"] == "idle_standby"]
    expected = [(p["start"], p["end"]) for p in standby["schedule"]["periods"]]

    assert production_periods(shifts, pauses) == expected


def test_quiet_hours_of_the_shipped_plan_are_the_shipped_ones() -> None:
    # normal-day: shifts 06:00-22:00, warm-up 30 min; configs/cosim.yaml: quiet 22:30-05:30.
    scenario = yaml.safe_load(
        (ROOT / "configs" / "sim" / "normal-day.yaml").read_text(encoding="utf-8")
    )
    shipped = yaml.safe_load((ROOT / "configs" / "cosim.yaml").read_text(encoding="utf-8"))
    (leak,) = [rule for rule in shipped["rules"] if rule["kind"] == "water_leak"]
    (night,) = leak["quiet_hours"]["schedule"]["periods"]

    assert quiet_hours(scenario["schedule"]) == (night["start"], night["end"])


def test_generated_cells_stay_within_the_documented_ranges(
    cells: list[tuple[Scenario, Config]],
) -> None:
    for scenario, _ in cells:
        low, high = RANGES["machines"]
        assert low <= len(scenario.machines) <= high
        assert len(scenario.heated_tanks) <= RANGES["heated_tanks"][1]
        assert len(scenario.ev_chargers) <= RANGES["ev_chargers"][1]
        assert len(scenario.events.leaks) <= RANGES["leaks"][1]
        windows = {minutes * 60.0 for minutes in RANGES["demand_window_min"]}
        assert scenario.site.meter.demand_window in windows
        low_us, high_us = RANGES["makeup_conductivity_us_cm"]
        tower = scenario.cooling_tower
        assert low_us <= tower.makeup_conductivity_us_cm <= high_us
        assert tower.local_conductivity_setpoint_us_cm < tower.max_conductivity_us_cm
        # The rinse takes the mains water, and its spec can be met with it.
        assert scenario.rinse.fresh_conductivity_us_cm == tower.makeup_conductivity_us_cm
        assert scenario.rinse.quality_limit_us_cm >= 1.5 * tower.makeup_conductivity_us_cm
        assert scenario.rinse.machine in {m.name for m in scenario.machines}


def test_generated_cells_vary_where_the_issue_asks(cells: list[tuple[Scenario, Config]]) -> None:
    scenarios = [scenario for scenario, _ in cells]
    assert len({len(s.machines) for s in scenarios}) >= 4
    assert {s.site.meter.demand_window for s in scenarios} == {900.0, 1800.0}
    assert {leak.kind for s in scenarios for leak in s.events.leaks} == {"air", "water"}
    locations = {
        leak.location for s in scenarios for leak in s.events.leaks if leak.kind == "water"
    }
    assert locations == {"main", "cooling_tower"}
    # Leaks at any time of day, the night included.
    hours = {leak.start.at.hour for s in scenarios for leak in s.events.leaks}
    assert min(hours) < 6
    assert max(hours) >= 18


def test_each_config_is_fitted_to_its_own_cell(cells: list[tuple[Scenario, Config]]) -> None:
    for scenario, config in cells:
        rules = {rule.name: rule for rule in config.rules}
        machines = [m.name for m in scenario.machines]
        standby = rules["idle_standby"]
        assert [m.name for m in standby.machines] == machines  # type: ignore[union-attr]
        peak = rules["peak_shaving"]
        assert peak.window == scenario.site.meter.demand_window  # type: ignore[union-attr]
        shed = {load.name for load in peak.loads}  # type: ignore[union-attr]
        assert {c.name for c in scenario.ev_chargers} <= shed
        assert {f"{t.name}-heater" for t in scenario.heated_tanks} <= shed
        chiller = rules["chiller_reset"]
        (process,) = chiller.process  # type: ignore[union-attr]
        assert process.max == scenario.chilled_water.process_limit_c
        blowdown = rules["tower_blowdown"]
        assert blowdown.limit_us_cm == scenario.cooling_tower.max_conductivity_us_cm  # type: ignore[union-attr]
        # Each machine's power explains its air use in production (the air-use rise).
        air = rules["compressed_air"].leak_test  # type: ignore[union-attr]
        assert air is not None
        assert [tag.rsplit(".", 1)[1] for tag in air.explained_by] == [
            f"{m.replace('-', '_')}_kw" for m in machines
        ]


def test_no_config_disagrees_with_its_own_cell(cells: list[tuple[Scenario, Config]]) -> None:
    # The config is written from the scenario: the report's config-against-scenario check
    # (controller/cellcheck.py) must find nothing to warn about.
    warnings = [
        f"{scenario.name}: {finding.line()}"
        for scenario, config in cells
        for finding in check_cell(config, scenario)
        if finding.severity == "warning"
    ]
    assert warnings == []


def test_every_shed_load_names_the_process_limit_it_endangers(
    cells: list[tuple[Scenario, Config]],
) -> None:
    for scenario, config in cells:
        (peak,) = [r for r in config.rules if isinstance(r, PeakShavingConfig)]
        loads = {load.name: load for load in peak.loads}
        chiller = loads["chiller-setpoint-up"]
        (limit,) = chiller.limits
        assert limit.tag == "process-plc.chiller_return_c"
        assert limit.max == scenario.chilled_water.process_limit_c
        assert limit.min is None
        for tank in scenario.heated_tanks:
            heater = loads[f"{tank.name}-heater"]
            (limit,) = heater.limits
            assert limit.tag == f"process-plc.{tank.name.replace('-', '_')}_temp_c"
            assert limit.min == tank.min_c
            assert heater.restore_value is not None
        for charger in scenario.ev_chargers:
            assert loads[charger.name].limits == []
        assert peak.restore_gap > 0


def test_leak_rules_know_the_cell_s_quiet_hours_and_tower(
    cells: list[tuple[Scenario, Config]],
) -> None:
    plans = set()
    for scenario, config in cells:
        (leak,) = [r for r in config.rules if isinstance(r, WaterLeakConfig)]
        assert leak.quiet_hours is not None
        clock = Schedule(leak.quiet_hours.schedule)
        first = min(s.start for s in scenario.schedule.shifts)
        last = max(s.end for s in scenario.schedule.shifts)
        plans.add((first, last))
        midnight = scenario.start.replace(hour=0, minute=0, second=0, microsecond=0)
        # The co-simulation's clock reads the scenario's local time as UTC.
        base_ms = int(midnight.replace(tzinfo=UTC).timestamp() * 1000)
        quiet = [
            clock.period_at(base_ms + minute * 60_000) in leak.quiet_hours.periods
            for minute in range(24 * 60)
        ]
        # Quiet from shortly after the last shift to before the warm-up of the first, every
        # minute between them; never during a shift.
        assert quiet[(last.hour * 60 + last.minute + 60) % 1440]
        assert quiet[3 * 60]
        arrive = first.hour * 60 + first.minute - scenario.schedule.warmup / 60
        assert not any(quiet[round(arrive) : last.hour * 60 + last.minute])
        assert leak.occupied_flow_m3_h == round(scenario.site.domestic_water.occupied_m3_h, 2)
        (balance,) = [r for r in config.rules if isinstance(r, TowerBalanceConfig)]
        assert balance.makeup_us_cm == scenario.cooling_tower.makeup_conductivity_us_cm
        assert balance.volume_m3 == scenario.cooling_tower.system_volume_m3
    assert len(plans) >= 3  # the quiet hours follow each cell's own plan


def test_each_compressor_holds_its_far_end_minimum_on_its_own_controls(
    cells: list[tuple[Scenario, Config]],
) -> None:
    # The lowest header pressure is the load (cut-in) point, one band under the setpoint; the
    # most the far end loses is the drop at rated flow.
    low, high = RANGES["cut_in_margin_bar"]
    for scenario, _ in cells:
        air = scenario.compressed_air
        cut_in = air.setpoint_bar.default - air.pressure_band_bar
        margin = cut_in - air.distribution_drop_bar - air.critical_min_bar
        assert low - 0.051 <= margin <= high + 0.051, scenario.name


def test_every_reset_is_ready_for_load_steps(
    cells: list[tuple[Scenario, Config]],
) -> None:
    for scenario, config in cells:
        (chiller,) = [r for r in config.rules if isinstance(r, ChillerResetConfig)]
        (process,) = chiller.process
        assert process.guard is not None
        assert process.guard < process.margin
        assert chiller.production is not None
        states = {f"process-plc.{m.name.replace('-', '_')}_state" for m in scenario.machines}
        assert set(chiller.production.tags) == states
        assert chiller.production.at_least == 3  # producing: the state that brings the heat
        (air,) = [r for r in config.rules if isinstance(r, CompressedAirConfig)]
        assert air.hold_for_load_steps


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_generated_cell_is_a_site_someone_would_build(seed: int) -> None:
    # bench/plausible.py: the compressor feeds machines, leaks and injected leaks at its cut-in
    # pressure with 10 % to spare; the chiller covers the design day's heat and loop gain; the
    # rinse's own overflow settles under its limit in production.
    for index in range(CELLS):
        scenario = Scenario.model_validate(generate(seed, index).scenario)
        assert implausible(scenario) == [], scenario.name


def test_an_undersized_chiller_or_a_hole_the_compressor_cannot_feed_is_implausible() -> None:
    # cell-1-026 as first drawn: a 29 kW chiller for 13.2 kW of machines' heat and a loop
    # gaining 1.07 kW/K from a 35.1 degC afternoon (its return over its limit 12,420 s a day
    # on the plant's own controls).
    scenario = Scenario.model_validate(generate(1, 26).scenario)
    small = scenario.chilled_water.model_copy(update={"capacity_kw": 29.0})
    assert implausible(scenario.model_copy(update={"chilled_water": small})) == [
        "chiller 29 kW against 37.4 kW of process heat and loop gain at 35.1 degC ambient"
    ]
    # cell-1-020 as first drawn: a 3.94 mm hole on a 1.64 m3/min compressor.
    scenario = Scenario.model_validate(generate(1, 20).scenario)
    (hole,) = [leak for leak in scenario.events.leaks if isinstance(leak, AirLeak)]
    wide = hole.model_copy(update={"orifice_mm": 3.94})
    others = [leak for leak in scenario.events.leaks if leak is not hole]
    events = scenario.events.model_copy(update={"leaks": [wide, *others]})
    (problem,) = implausible(scenario.model_copy(update={"events": events}))
    assert problem.startswith("compressor 1.64 m3/min against 1.92 m3/min")


def test_a_rinse_whose_own_overflow_cannot_hold_its_limit_is_implausible() -> None:
    # cell-3-026 as first drawn: 50 % of 1.7 m3/h of 636 uS/cm mains against 9.9 l/h of
    # drag-out at 35,000 uS/cm settles at (850 x 636 + 9.9 x 35,000) / 859.9 = 1,031 uS/cm,
    # over its 954 limit (30,855 s over it a day on the plant's own controls).
    scenario = Scenario.model_validate(generate(3, 26).scenario)
    rinse = scenario.rinse
    valve = rinse.fresh_valve_pct.model_copy(update={"default": 50.0})
    drawn = rinse.model_copy(update={"fresh_max_m3_h": 1.7, "fresh_valve_pct": valve})
    (problem,) = implausible(scenario.model_copy(update={"rinse": drawn}))
    assert problem == (
        "rinse overflow 50 % of 1.7 m3/h settles at 1031 uS/cm in production, over its limit 954"
    )
    # As generated now the site opened its overflow to settle at 95 % of the limit.
    assert rinse.fresh_valve_pct.default > 50.0
    assert implausible(scenario) == []


@pytest.mark.parametrize(
    ("seed", "index"), [(1, 3), (2, 5), (1, 20), (1, 25), (1, 26), (3, 26)]
)
def test_the_plant_on_its_own_controls_breaks_no_process_limit(
    tmp_path: Path, seed: int, index: int
) -> None:
    # Cells whose process limits broke on the plant's own controls as first drawn: the far end
    # under its minimum 930 s and 8,965 s a day (1-003, 2-005, before the cut-in pressure was
    # sized) and 19,045 s and 40 s (1-020, 1-025: an air leak the compressor could not feed),
    # the return water over its limit 12,420 s (1-026: a chiller too small for its afternoon).
    scenario, _ = loaded(generate(seed, index), tmp_path)
    plant = Plant(scenario)
    for _ in range(24 * 720):
        plant.step(5.0)
    truth = plant.ground_truth()
    assert truth.seconds_far_end_below_critical == 0
    assert truth.seconds_process_above_limit == 0
    assert sum(truth.seconds_tank_below_min.values()) == 0
    assert truth.seconds_rinse_above_limit == 0


def test_generated_cells_run_in_the_plant(cells: list[tuple[Scenario, Config]]) -> None:
    for scenario, _ in cells[:3]:
        plant = Plant(scenario)
        for _ in range(720):  # the first hour at 5 s
            plant.step(5.0)
        states = {m.name: plant.read_point(f"{m.name}.state") for m in scenario.machines}
        assert set(states) == {m.name for m in scenario.machines}
        assert plant.ground_truth().site_import_kwh > 0

"""The simulated factory cell as one object: every component stepped together in simulated time,
its measurements and setpoints as named points (the `PointSource` the protocol servers serve),
and the ground truth kept aside for scoring."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from drivers.sim.plant.air import CompressedAir, orifice_free_air_m3_min_per_bar_abs
from drivers.sim.plant.battery import Battery, setpoint_for
from drivers.sim.plant.charging import EvCharger
from drivers.sim.plant.chiller import ChilledWater
from drivers.sim.plant.electricity import Load, SiteMeter, billing_demand
from drivers.sim.plant.machines import Machine
from drivers.sim.plant.noise import seeded
from drivers.sim.plant.plc import Plc, Setpoint
from drivers.sim.plant.schedule import Activity, ProductionSchedule
from drivers.sim.plant.tank import HeatedTank
from drivers.sim.plant.truth import GroundTruth, LeakTruth
from drivers.sim.plant.water import CoolingTower, RinseLine, TowerStep, condenser_water_c
from drivers.sim.plant.weather import Ambient
from drivers.sim.points import PointValue
from drivers.sim.scenario import AirLeak, LimitedSetpoint, Scenario, WaterLeak

if TYPE_CHECKING:
    from drivers.sim.plant.pv import PvArray


@dataclass(frozen=True)
class PointInfo:
    name: str
    unit: str
    writable: bool
    description: str


@dataclass(frozen=True)
class _Point:
    info: PointInfo
    read: Callable[[], PointValue]
    write: Callable[[PointValue], None] | None = None


def _setpoint(spec: LimitedSetpoint) -> Setpoint:
    return Setpoint(default=spec.default, min=spec.min, max=spec.max)


def _number(name: str, value: PointValue) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"{name} takes a number, not {value!r}")


def _item(values: list[float], index: int) -> float:
    return values[index]


def _machine_state(machine: Machine) -> int:
    return int(machine.activity)


def _command_state(setpoint: Setpoint) -> int:
    """A PLC's 0/1 command register as it reads back."""
    return 1 if setpoint.value is not None and setpoint.value >= 0.5 else 0


def _on_off() -> Setpoint:
    return Setpoint(default=0.0, min=0.0, max=1.0)


def _enabled() -> Setpoint:
    return Setpoint(default=1.0, min=0.0, max=1.0)


class Plant:
    """Deterministic for a given scenario and seed and sequence of `step(dt)` calls."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.time_s = 0.0
        sc = scenario
        self.schedule = ProductionSchedule(sc.schedule)
        self.ambient = Ambient(sc.ambient, seeded(self.seed, "ambient"))
        plcs = sc.plcs
        self.plcs = {
            "compressor": Plc("compressor", plcs.compressor.heartbeat_timeout),
            "chiller": Plc("chiller", plcs.chiller.heartbeat_timeout),
            "water": Plc("water", plcs.water.heartbeat_timeout),
            "process": Plc("process", plcs.process.heartbeat_timeout),
        }
        process = self.plcs["process"]
        self.machines: list[Machine] = []
        for spec in sc.machines:
            request = _on_off()  # local default: no standby request
            process.add(f"{spec.name}.standby_request", request)
            self.machines.append(Machine(spec, seeded(self.seed, f"machine:{spec.name}"), request))
        self._by_name = {m.name: m for m in self.machines}
        self.tanks: list[HeatedTank] = []
        for tank_spec in sc.heated_tanks:
            enable = _enabled()  # local default: the thermostat alone decides
            process.add(f"{tank_spec.name}.heater_enable", enable)
            self.tanks.append(HeatedTank(tank_spec, enable))
        self.chargers: list[EvCharger] = []
        for charger_spec in sc.ev_chargers:
            enable = _enabled()  # local default: charge as soon as a car is plugged in
            process.add(f"{charger_spec.name}.enable", enable)
            self.chargers.append(EvCharger(charger_spec, enable))
        self.meter = SiteMeter(sc.site.meter, seeded(self.seed, "grid"))
        self.pv: PvArray | None = None
        if sc.pv is not None:
            # pvlib (pandas, scipy) loads only for a scenario with PV: the `sim` extra.
            from drivers.sim.plant.pv import PvArray  # noqa: PLC0415

            self.pv = PvArray(sc.pv)
        self.battery: Battery | None = None
        if sc.battery is not None:
            self.plcs["battery"] = Plc("battery", sc.battery.heartbeat_timeout)
            battery_sp = setpoint_for(sc.battery)
            self.plcs["battery"].add("battery.setpoint_kw", battery_sp)
            self.battery = Battery(sc.battery, battery_sp)
        # What the utility bills: the tariff's windows on the site's clock (the meter's own
        # demand above is a sliding window, what its display shows).
        start = sc.start
        self.billing = billing_demand(
            sc.tariff.demand_window,
            sc.tariff.demand_alignment,
            start.hour * 3600.0 + start.minute * 60.0 + start.second + start.microsecond / 1e6,
        )
        self._pressure_sp = _setpoint(sc.compressed_air.setpoint_bar)
        self._supply_sp = _setpoint(sc.chilled_water.supply_setpoint_c)
        self._blowdown_sp = Setpoint(default=None, min=0.0, max=100.0)
        self._fresh_sp = _setpoint(sc.rinse.fresh_valve_pct)
        self._recirc_sp = _setpoint(sc.rinse.recirc_valve_pct)
        self.plcs["compressor"].add("compressor.pressure_setpoint_bar", self._pressure_sp)
        self.plcs["chiller"].add("chiller.supply_setpoint_c", self._supply_sp)
        self.plcs["water"].add("tower.blowdown_valve_pct", self._blowdown_sp)
        self.plcs["water"].add("rinse.fresh_valve_pct", self._fresh_sp)
        self.plcs["water"].add("rinse.recirc_valve_pct", self._recirc_sp)

        self.air = CompressedAir(sc.compressed_air)
        self.chiller = ChilledWater(sc.chilled_water)
        self.tower = CoolingTower(sc.cooling_tower, self._blowdown_sp)
        self.rinse = RinseLine(sc.rinse, self._fresh_sp, self._recirc_sp)

        self.water_total_m3 = sc.site.initial_water_m3
        self.water_flow_m3_h = 0.0
        self.tower_makeup_total_m3 = 0.0
        self.rinse_fresh_total_m3 = 0.0
        self.compressor_energy_kwh = 0.0
        self.activity = Activity.OFF
        self.running = False

        self._leak_starts = {
            leak.name: leak.start.seconds_after(sc.start) for leak in sc.events.leaks
        }
        self._active_leaks: set[str] = set()
        self.truth = GroundTruth(
            scenario=sc.name,
            seed=self.seed,
            start=sc.start.isoformat(),
            meter_demand_window_s=sc.site.meter.demand_window,
            billing_window_s=sc.tariff.demand_window,
            billing_alignment=sc.tariff.demand_alignment,
            leaks=[
                LeakTruth(
                    name=leak.name,
                    kind=leak.kind,
                    location="compressed_air" if isinstance(leak, AirLeak) else leak.location,
                    configured_start=(
                        sc.start + timedelta(seconds=self._leak_starts[leak.name])
                    ).isoformat(),
                )
                for leak in sc.events.leaks
            ],
            seconds_production_lost={m.name: 0.0 for m in self.machines},
            machine_restarts={m.name: 0 for m in self.machines},
            restart_kwh={m.name: 0.0 for m in self.machines},
            seconds_tank_below_min={t.name: 0.0 for t in self.tanks},
            ev_energy_short_kwh={c.name: 0.0 for c in self.chargers},
        )
        self._points = self._build_points()

    # --- time -------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """Local time on site."""
        return self.scenario.start + timedelta(seconds=self.time_s)

    # --- PointSource ------------------------------------------------------------------------

    def point_names(self) -> Iterable[str]:
        return list(self._points)

    def point_info(self, name: str) -> PointInfo:
        return self._points[name].info

    def read_point(self, name: str) -> PointValue:
        return self._points[name].read()

    def write_point(self, name: str, value: PointValue) -> None:
        point = self._points[name]
        if point.write is None:
            raise PermissionError(f"{name} is a measurement; it cannot be written")
        point.write(value)

    def ground_truth(self) -> GroundTruth:
        self.truth.elapsed_s = self.time_s
        self.truth.max_demand_kw = self.meter.max_demand_kw
        self.truth.billing_demand_kw = self.billing.max_kw
        self.truth.demand_charge_prorated = (
            self.billing.max_kw
            * self.scenario.tariff.demand_charge_per_kw_month
            * min(1.0, self.time_s / (30 * 86400.0))
        )
        self.truth.plc_fallbacks = {name: plc.fallbacks for name, plc in self.plcs.items()}
        for machine in self.machines:
            self.truth.seconds_production_lost[machine.name] = machine.production_lost_s
            self.truth.machine_restarts[machine.name] = machine.restarts
            self.truth.restart_kwh[machine.name] = machine.restart_kwh
        for charger in self.chargers:
            self.truth.ev_energy_short_kwh[charger.name] = charger.short_kwh
        return self.truth

    # --- physics ----------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Advance the plant by `dt` simulated seconds."""
        if dt <= 0:
            raise ValueError(f"a step is a positive number of seconds, not {dt}")
        sc = self.scenario
        t = self.time_s
        now = self.now
        for plc in self.plcs.values():
            plc.tick(t)
        self._start_leaks(t)

        self.activity = self.schedule.activity(now)
        occupied = self.schedule.occupied(now)
        self.ambient.step(now, dt)
        for machine in self.machines:
            machine.step(self.activity, dt)
        self.running = any(m.activity is not Activity.OFF for m in self.machines)

        loads: list[Load] = [Load(m.name, m.power_kw, m.spec.power_factor) for m in self.machines]
        for tank in self.tanks:
            tank.step(dt, self._by_name[tank.spec.machine].activity)
            loads.append(Load(tank.name, tank.power_kw, tank.spec.power_factor))
        for charger in self.chargers:
            charger.step(now, dt)
            loads.append(Load(charger.name, charger.power_kw, charger.spec.power_factor))

        if self._pressure_sp.value is not None:
            self.air.setpoint_bar = self._pressure_sp.value
        air = self.air.step(dt, sum(m.air_m3_min for m in self.machines))
        loads.append(
            Load("compressor", air.energy_kwh * 3600.0 / dt, sc.compressed_air.power_factor)
        )

        if self._supply_sp.value is not None:
            self.chiller.setpoint_c = self._supply_sp.value
        condenser_in = condenser_water_c(sc.cooling_tower, self.ambient.wet_bulb_c)
        heat = sum(m.heat_kw for m in self.machines)
        chill = self.chiller.step(dt, heat, self.ambient.dry_bulb_c, condenser_in, self.running)
        drive_pf = sc.site.drive_power_factor
        loads.append(Load("chiller", chill.energy_kwh * 3600.0 / dt, sc.chilled_water.power_factor))
        loads.append(
            Load("chilled_water_pump", sc.chilled_water.pump_kw if self.running else 0.0, drive_pf)
        )

        tower = self.tower.step(
            dt, chill.heat_rejected_kwh * 3600.0 / dt, self.ambient.wet_bulb_c, self.running
        )
        loads.append(Load("tower_fan", self.tower.fan_kw, drive_pf))
        loads.append(Load("condenser_pump", self.tower.pump_kw, drive_pf))

        rinse_machine = self._by_name[sc.rinse.machine]
        rinse = self.rinse.step(dt, rinse_machine.activity is Activity.PRODUCING)
        loads.append(Load("rinse_pump", self.rinse.pump_kw, drive_pf))

        base = sc.site.base_load
        loads.append(
            Load("base_load", base.kw + (base.occupied_kw if occupied else 0.0), base.power_factor)
        )
        for extra in sc.events.loads:
            begin = extra.start.seconds_after(sc.start)
            if begin <= t < begin + extra.duration:
                loads.append(Load(extra.name, extra.kw, extra.power_factor))

        behind_meter = self._behind_meter(now, dt, loads)
        kwh = self.meter.step(dt, loads + behind_meter if behind_meter else loads)
        self.billing.add(dt, kwh)

        domestic_m3_h = sc.site.domestic_water.m3_h + (
            sc.site.domestic_water.occupied_m3_h if occupied else 0.0
        )
        main_leak_m3_h = sum(
            leak.m3_h
            for leak in sc.events.leaks
            if isinstance(leak, WaterLeak)
            and leak.location == "main"
            and leak.name in self._active_leaks
        )
        self.water_flow_m3_h = (
            self.tower.makeup_m3_h + self.rinse.supply_m3_h + domestic_m3_h + main_leak_m3_h
        )
        hours = dt / 3600.0
        self.water_total_m3 += self.water_flow_m3_h * hours
        self.tower_makeup_total_m3 += tower.makeup_m3
        self.rinse_fresh_total_m3 += rinse.fresh_m3 + rinse.regeneration_m3
        self.compressor_energy_kwh += air.energy_kwh

        self._account(
            dt=dt,
            now=now,
            loads=loads,
            kwh=kwh,
            air_leak_m3=air.leak_m3,
            air_demand_m3=air.demand_m3,
            tower=tower,
            rinse_m3=rinse.fresh_m3,
            regeneration_m3=rinse.regeneration_m3,
            domestic_m3=domestic_m3_h * hours,
            main_leak_m3=main_leak_m3_h * hours,
        )
        self.time_s = t + dt

    def _behind_meter(self, now: datetime, dt: float, loads: list[Load]) -> list[Load]:
        """PV and battery as negative loads on the site meter (none without them). The battery's
        local program sees the site's net before its own power, as its CT on the feeder does."""
        sources: list[Load] = []
        truth, hours = self.truth, dt / 3600.0
        if self.pv is not None:
            pv = self.pv.step(now, dt, self.ambient.dry_bulb_c)
            sources.append(Load("pv", -pv.ac_kw, 1.0))
            truth.pv_kwh += pv.ac_kw * hours
            truth.pv_clipped_kwh += pv.clipped_kw * hours
        battery = self.battery
        if battery is not None:
            net = sum(load.kw for load in loads) + sum(s.kw for s in sources)
            step = battery.step(dt, net)
            sources.append(Load("battery", -step.ac_kw, 1.0))
            truth.battery_loss_kwh += step.loss_kwh
            truth.battery_curtailed_kwh += step.curtailed_kw * hours
            if step.ac_kw > 0:
                truth.battery_discharged_kwh += step.ac_kw * hours
            else:
                truth.battery_charged_kwh -= step.ac_kw * hours
            soc, spec = battery.soc_pct, battery.spec
            if truth.battery_initial_soc_pct is None:
                truth.battery_initial_soc_pct = spec.initial_soc_pct
            low, high = truth.battery_soc_min_pct, truth.battery_soc_max_pct
            truth.battery_soc_min_pct = soc if low is None else min(soc, low)
            truth.battery_soc_max_pct = soc if high is None else max(soc, high)
            truth.battery_final_soc_pct = soc
            # A hair below the limit is rounding in the step; standby draw is not.
            if not spec.soc_min_pct - 1e-6 <= soc <= spec.soc_max_pct + 1e-6:
                truth.seconds_soc_outside_limits += dt
        return sources

    def _start_leaks(self, t: float) -> None:
        for leak in self.scenario.events.leaks:
            if leak.name in self._active_leaks or t < self._leak_starts[leak.name]:
                continue
            self._active_leaks.add(leak.name)
            for truth in self.truth.leaks:
                if truth.name == leak.name:
                    truth.started_s = t
            if isinstance(leak, AirLeak):
                self.air.extra_leak_k += orifice_free_air_m3_min_per_bar_abs(
                    leak.orifice_mm, leak.discharge_coefficient
                )
            elif leak.location == "cooling_tower":
                self.tower.leak_m3_h += leak.m3_h

    def _account(
        self,
        *,
        dt: float,
        now: datetime,
        loads: list[Load],
        kwh: float,
        air_leak_m3: float,
        air_demand_m3: float,
        tower: TowerStep,
        rinse_m3: float,
        regeneration_m3: float,
        domestic_m3: float,
        main_leak_m3: float,
    ) -> None:
        truth = self.truth
        hours = dt / 3600.0
        truth.site_import_kwh += kwh
        for load in loads:
            truth.energy_kwh[load.name] = truth.energy_kwh.get(load.name, 0.0) + load.kw * hours
        water = truth.water_m3
        for key, value in (
            ("tower_evaporation", tower.evaporation_m3),
            ("tower_drift", tower.drift_m3),
            ("tower_blowdown", tower.blowdown_m3),
            ("tower_leak", tower.leak_m3),
            ("tower_makeup", tower.makeup_m3),
            ("rinse_fresh", rinse_m3),
            ("rinse_regeneration", regeneration_m3),
            ("domestic", domestic_m3),
            ("main_leak", main_leak_m3),
        ):
            water[key] = water.get(key, 0.0) + value
        truth.air_m3["demand"] = truth.air_m3.get("demand", 0.0) + air_demand_m3
        truth.air_m3["leaks"] = truth.air_m3.get("leaks", 0.0) + air_leak_m3
        self._split_leaks(dt, air_leak_m3)
        price, period = self._price(now)
        truth.energy_cost += kwh * price
        exported = self.meter.last_export_kwh
        if exported:
            truth.site_export_kwh += exported
            truth.export_revenue += exported * self.scenario.tariff.export_price_per_kwh
        truth.energy_cost_by_period[period] = (
            truth.energy_cost_by_period.get(period, 0.0) + kwh * price
        )
        truth.water_cost += (
            tower.makeup_m3 + rinse_m3 + regeneration_m3 + domestic_m3 + main_leak_m3
        ) * self.scenario.tariff.water_price_per_m3
        # Limits count only while the process they protect is running.
        producing = any(m.activity is Activity.PRODUCING for m in self.machines)
        if producing and self.chiller.return_c > self.scenario.chilled_water.process_limit_c:
            truth.seconds_process_above_limit += dt
        if producing and self.air.far_end_bar < self.scenario.compressed_air.critical_min_bar:
            truth.seconds_far_end_below_critical += dt
        rinsing = self._by_name[self.scenario.rinse.machine].activity is Activity.PRODUCING
        if rinsing and self.rinse.conductivity > self.scenario.rinse.quality_limit_us_cm:
            truth.seconds_rinse_above_limit += dt
        for tank in self.tanks:
            served = self._by_name[tank.spec.machine]
            if served.activity is Activity.PRODUCING and tank.temperature_c < tank.spec.min_c:
                truth.seconds_tank_below_min[tank.name] += dt
        # The chemistry limit holds whenever water circulates over the tower.
        limit = self.scenario.cooling_tower.max_conductivity_us_cm
        if self.running and self.tower.conductivity > limit:
            truth.seconds_tower_above_limit += dt

    def _split_leaks(self, dt: float, air_leak_m3: float) -> None:
        """Book each injected leak's own volume (air leaks share the orifice flow by area)."""
        air_k = self.air.leak_k
        for leak in self.scenario.events.leaks:
            if leak.name not in self._active_leaks:
                continue
            truth = next(t for t in self.truth.leaks if t.name == leak.name)
            if isinstance(leak, AirLeak):
                k = orifice_free_air_m3_min_per_bar_abs(leak.orifice_mm, leak.discharge_coefficient)
                truth.volume_m3 += air_leak_m3 * k / air_k if air_k > 0 else 0.0
            else:
                truth.volume_m3 += leak.m3_h * dt / 3600.0

    def _price(self, now: datetime) -> tuple[float, str]:
        return self.scenario.tariff.price_at(now)

    # --- points -----------------------------------------------------------------------------

    def _build_points(self) -> dict[str, _Point]:
        points: dict[str, _Point] = {}

        def measure(name: str, unit: str, read: Callable[[], PointValue], description: str) -> None:
            points[name] = _Point(PointInfo(name, unit, False, description), read)

        def setpoint(
            name: str, unit: str, plc: Plc, read: Callable[[], PointValue], description: str
        ) -> None:
            def write(value: PointValue) -> None:
                plc.write(name, _number(name, value))

            points[name] = _Point(PointInfo(name, unit, True, description), read, write)

        m = self.meter
        for i in range(3):
            n = i + 1
            measure(
                f"site_meter.voltage_l{n}_v",
                "V",
                functools.partial(_item, m.voltage_v, i),
                f"L{n}-N voltage",
            )
            measure(
                f"site_meter.current_l{n}_a",
                "A",
                functools.partial(_item, m.current_a, i),
                f"L{n} current",
            )
            measure(
                f"site_meter.active_power_l{n}_kw",
                "kW",
                functools.partial(_item, m.phase_kw, i),
                f"L{n} active power",
            )
        measure("site_meter.active_power_kw", "kW", lambda: m.active_kw, "total active power")
        measure(
            "site_meter.reactive_power_kvar",
            "kvar",
            lambda: m.reactive_kvar,
            "total reactive power",
        )
        measure(
            "site_meter.apparent_power_kva", "kVA", lambda: m.apparent_kva, "total apparent power"
        )
        measure("site_meter.power_factor", "", lambda: m.power_factor, "total power factor")
        measure("site_meter.frequency_hz", "Hz", lambda: m.frequency_hz, "grid frequency")
        measure(
            "site_meter.import_energy_kwh", "kWh", lambda: m.import_kwh, "imported active energy"
        )
        measure(
            "site_meter.export_energy_kwh", "kWh", lambda: m.export_kwh, "exported active energy"
        )
        measure("site_meter.demand_kw", "kW", lambda: m.demand.kw, "rolling demand (mean power)")
        measure("site_meter.max_demand_kw", "kW", lambda: m.max_demand_kw, "highest rolling demand")

        measure(
            "water_meter.flow_m3_h", "m3/h", lambda: self.water_flow_m3_h, "site main water flow"
        )
        measure(
            "water_meter.total_m3", "m3", lambda: self.water_total_m3, "site main water totaliser"
        )
        measure(
            "water_meter.total_whole_m3",
            "m3",
            lambda: int(self.water_total_m3),
            "totaliser, whole m3 (meters that split it into an integer and a fraction)",
        )
        measure(
            "water_meter.total_fraction_m3",
            "m3",
            lambda: self.water_total_m3 - int(self.water_total_m3),
            "totaliser, the fraction below one m3",
        )

        air = self.air
        cplc = self.plcs["compressor"]
        measure(
            "compressor.pressure_bar", "bar", lambda: air.pressure_bar, "receiver pressure (gauge)"
        )
        measure("compressor.loaded", "", lambda: air.loaded, "compressor loaded (true) or unloaded")
        measure(
            "compressor.running", "", lambda: True, "motor running (load/unload never stops it)"
        )
        measure("compressor.motor_power_kw", "kW", lambda: air.power_kw, "compressor input power")
        measure(
            "compressor.energy_kwh", "kWh", lambda: self.compressor_energy_kwh, "compressor energy"
        )
        setpoint(
            "compressor.pressure_setpoint_bar",
            "bar",
            cplc,
            lambda: self._pressure_sp.value if self._pressure_sp.value is not None else 0.0,
            "unload pressure; the compressor loads one band below",
        )
        measure(
            "air.far_end_pressure_bar", "bar", lambda: air.far_end_bar, "pressure at the far end"
        )
        measure(
            "air.flow_m3_min", "m3/min", lambda: air.consumption_m3_min, "air flow to the network"
        )

        ch = self.chiller
        setpoint(
            "chiller.supply_setpoint_c",
            "degC",
            self.plcs["chiller"],
            lambda: self._supply_sp.value if self._supply_sp.value is not None else 0.0,
            "chilled water supply setpoint",
        )
        measure("chiller.supply_temp_c", "degC", lambda: ch.supply_c, "chilled water supply")
        measure(
            "chiller.return_temp_c", "degC", lambda: ch.return_c, "chilled water return (process)"
        )
        measure("chiller.cooling_kw", "kW", lambda: ch.cooling_kw, "cooling delivered")
        measure("chiller.power_kw", "kW", lambda: ch.power_kw, "chiller input power")
        measure("chiller.cop", "", lambda: ch.cop, "coefficient of performance")

        tw = self.tower
        wplc = self.plcs["water"]
        setpoint(
            "tower.blowdown_valve_pct",
            "%",
            wplc,
            lambda: (
                self._blowdown_sp.value if self._blowdown_sp.value is not None else tw.valve_pct
            ),
            "blowdown valve opening; the PLC's conductivity control drives it when not forced",
        )
        measure("tower.conductivity_us_cm", "uS/cm", lambda: tw.conductivity, "basin conductivity")
        measure("tower.blowdown_flow_m3_h", "m3/h", lambda: tw.blowdown_m3_h, "blowdown flow")
        measure("tower.makeup_flow_m3_h", "m3/h", lambda: tw.makeup_m3_h, "makeup flow")
        measure(
            "tower.makeup_total_m3", "m3", lambda: self.tower_makeup_total_m3, "makeup totaliser"
        )
        measure("tower.supply_temp_c", "degC", lambda: tw.supply_c, "cold water to the condenser")
        measure("tower.fan_power_kw", "kW", lambda: tw.fan_kw, "tower fan power")

        rn = self.rinse
        setpoint(
            "rinse.fresh_valve_pct",
            "%",
            wplc,
            lambda: self._fresh_sp.value if self._fresh_sp.value is not None else 0.0,
            "fresh water valve opening",
        )
        setpoint(
            "rinse.recirc_valve_pct",
            "%",
            wplc,
            lambda: self._recirc_sp.value if self._recirc_sp.value is not None else 0.0,
            "recirculation valve opening",
        )
        measure("rinse.conductivity_us_cm", "uS/cm", lambda: rn.conductivity, "rinse conductivity")
        # The rinse station's meter: fresh valve and the ion exchanger's regeneration water.
        measure("rinse.fresh_flow_m3_h", "m3/h", lambda: rn.supply_m3_h, "rinse station water flow")
        measure(
            "rinse.fresh_total_m3", "m3", lambda: self.rinse_fresh_total_m3, "rinse water totaliser"
        )

        measure(
            "ambient.dry_bulb_c", "degC", lambda: self.ambient.dry_bulb_c, "outdoor temperature"
        )
        measure("ambient.wet_bulb_c", "degC", lambda: self.ambient.wet_bulb_c, "outdoor wet bulb")

        for machine in self.machines:
            measure(
                f"{machine.name}.state",
                "",
                functools.partial(_machine_state, machine),
                "0 off, 1 standby, 2 idle, 3 producing",
            )
            measure(
                f"{machine.name}.power_kw",
                "kW",
                functools.partial(getattr, machine, "power_kw"),
                "power",
            )

        pplc = self.plcs["process"]

        def command(name: str, setpoint: Setpoint, description: str) -> None:
            def write(value: PointValue) -> None:
                pplc.write(name, 1.0 if _number(name, value) >= 0.5 else 0.0)

            points[name] = _Point(
                PointInfo(name, "", True, description),
                functools.partial(_command_state, setpoint),
                write,
            )

        for machine in self.machines:
            command(
                f"{machine.name}.standby_request",
                machine.standby_request,
                "1: go to standby (PROFIenergy Start_Pause), 0: be ready (End_Pause)",
            )
        for tank in self.tanks:
            measure(
                f"{tank.name}.temperature_c",
                "degC",
                functools.partial(getattr, tank, "temperature_c"),
                "water temperature",
            )
            measure(
                f"{tank.name}.heater_power_kw",
                "kW",
                functools.partial(getattr, tank, "power_kw"),
                "heater power",
            )
            measure(
                f"{tank.name}.heater_on",
                "",
                functools.partial(getattr, tank, "heater_on"),
                "heater energised (thermostat calling and heater enabled)",
            )
            command(
                f"{tank.name}.heater_enable",
                tank.enable,
                "1: the thermostat may heat, 0: heater off (deferred)",
            )
        for charger in self.chargers:
            measure(
                f"{charger.name}.power_kw",
                "kW",
                functools.partial(getattr, charger, "power_kw"),
                "charging power",
            )
            measure(
                f"{charger.name}.connected",
                "",
                functools.partial(getattr, charger, "connected"),
                "a car is plugged in",
            )
            command(
                f"{charger.name}.enable",
                charger.enable,
                "1: charge, 0: pause charging (deferred)",
            )

        self._storage_points(points, measure)
        for plc in self.plcs.values():

            def beat(value: PointValue, plc: Plc = plc) -> None:
                plc.beat(int(_number(plc.heartbeat_point, value)), self.time_s)

            points[plc.heartbeat_point] = _Point(
                PointInfo(plc.heartbeat_point, "", True, "controller heartbeat: change it often"),
                functools.partial(getattr, plc, "heartbeat"),
                beat,
            )
            measure(
                f"{plc.name}.remote",
                "",
                functools.partial(getattr, plc, "remote"),
                "remote setpoints active (heartbeat alive)",
            )
        return points

    def _storage_points(self, points: dict[str, _Point], measure: Callable[..., None]) -> None:
        """The PV array's and the battery's points, when the scenario has them."""
        pv = self.pv
        if pv is not None:
            measure("pv.power_kw", "kW", lambda: pv.power_kw, "PV inverter AC power")
            measure("pv.dc_power_kw", "kW", lambda: pv.dc_kw, "PV array DC power into the inverter")
            measure("pv.energy_kwh", "kWh", lambda: pv.energy_kwh, "PV AC energy delivered")
            measure("pv.irradiance_w_m2", "W/m2", lambda: pv.poa_w_m2, "plane-of-array irradiance")
            measure("pv.cell_temp_c", "degC", lambda: pv.cell_c, "module cell temperature")
            measure("pv.rated_kw", "kW", lambda: pv.spec.inverter_ac_kw, "PV inverter AC rating")
        battery = self.battery
        if battery is None:
            return
        spec, plc = battery.spec, self.plcs["battery"]
        measure("battery.power_kw", "kW", lambda: battery.power_kw, "AC power, + discharging")
        measure("battery.soc_pct", "%", lambda: battery.soc_pct, "state of charge (usable)")
        measure(
            "battery.following_setpoint",
            "",
            lambda: battery.remote,
            "following the remote setpoint (false: its local self-consumption program)",
        )
        measure("battery.usable_kwh", "kWh", lambda: spec.usable_kwh, "usable capacity")
        measure("battery.max_charge_kw", "kW", lambda: spec.max_charge_kw, "charge power limit")
        measure("battery.max_discharge_kw", "kW", lambda: spec.max_discharge_kw, "discharge limit")
        measure("battery.soc_min_pct", "%", lambda: spec.soc_min_pct, "lowest SoC it goes to")
        measure("battery.soc_max_pct", "%", lambda: spec.soc_max_pct, "highest SoC it goes to")
        measure("battery.charged_kwh", "kWh", lambda: battery.charged_kwh, "AC energy charged")
        measure(
            "battery.discharged_kwh", "kWh", lambda: battery.discharged_kwh, "AC energy discharged"
        )
        measure(
            "battery.watchdog_s",
            "s",
            lambda: plc.heartbeat_timeout or 0.0,
            "the setpoint reverts to local after this long without a write or heartbeat (0: never)",
        )

        def write_setpoint(value: PointValue) -> None:
            number = _number("battery.setpoint_kw", value)
            if not math.isfinite(number):
                raise ValueError(f"battery.setpoint_kw takes a finite number, not {number}")
            plc.keepalive(self.time_s)  # a new setpoint renews the watchdog (SunSpec 124)
            plc.write("battery.setpoint_kw", number)

        points["battery.setpoint_kw"] = _Point(
            PointInfo(
                "battery.setpoint_kw",
                "kW",
                True,
                "remote power setpoint, + discharge / - charge; reads 0 in the local program",
            ),
            lambda: battery.setpoint.value if battery.setpoint.value is not None else 0.0,
            write_setpoint,
        )

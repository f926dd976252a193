"""What the planner asks the solver, from what the site knows: prices from the tariff, the load
learned per period from the metering (kept in the state directory with its age), the battery
now, the car's session, the billing window already begun, the cloud factor per step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.clock import SteppedClock
from controller.cosim import RecordedEvents
from controller.model import Quality, Sample
from controller.scheduler.board import AcceptedPlan, PlanBoard, PlanTarget
from controller.scheduler.planner import Planner
from controller.tagtable import TagTable
from tests.scheduler.cell import scheduler_config
from tests.scheduler.forecasts import cloud_forecast, payload

MONDAY_MS = 1_717_372_800_000  # 2024-06-03 00:00 UTC, a Monday
MINUTE_MS = 60_000
# A car booked for Mondays to Fridays 08:00-16:00, 40 kWh at up to 11 kW.
CAR = {
    "name": "car",
    "connected": "process-plc.ev_charger_connected",
    "power": "process-plc.ev_charger_kw",
    "max_kw": 11,
    "arrive": "08:00",
    "depart": "16:00",
    "energy_kwh": 40,
}


class Site:
    def __init__(self, start_ms: int, tmp_path: Path, **scheduler: Any) -> None:
        self.clock = SteppedClock(start_ms)
        self.table = TagTable()
        self.events = RecordedEvents()
        config = scheduler_config(**scheduler)
        assert config.scheduler is not None
        assert config.tariff is not None
        self.planner = Planner(
            config.scheduler,
            config.tariff,
            board=PlanBoard(),
            table=self.table,
            clock=self.clock,
            events=self.events,
            base_topic="edgecell/t",
            state_dir=tmp_path,
        )

    def read(self, **values: float) -> None:
        now = self.clock.wall_ms()
        tags = {
            "meter": "site-meter.power_kw",
            "battery": "bess-1.inverter_w",
            "soc": "bess-1.storage_chastate",
            "pv": "pv-inverter.inverter_w",
        }
        self.table.update(
            Sample(*tags[key].split("."), value, Quality.GOOD, now, now)
            for key, value in values.items()
        )

    def charger(self, connected: float | None, kw: float | None) -> None:
        """The charger's two readings now; None: a bad reading."""
        now = self.clock.wall_ms()
        self.table.update(
            Sample(
                "process-plc", name, value, Quality.BAD if value is None else Quality.GOOD, now, now
            )
            for name, value in (("ev_charger_connected", connected), ("ev_charger_kw", kw))
        )

    def run(self, minutes: float, **values: float) -> None:
        """Readings every 10 s for `minutes`, observed by the planner."""
        for _ in range(int(minutes * 6)):
            self.clock.advance(10)
            self.read(**values)
            self.planner.observe(self.clock.wall_ms())


def test_prices_load_battery_and_pv_per_step(tmp_path: Path) -> None:
    site = Site(MONDAY_MS + 7 * 60 * MINUTE_MS, tmp_path)  # 07:00
    site.read(meter=100.0, battery=0.0, soc=5.0, pv=0.0)
    assert site.planner.offer_pv_forecast(payload(cloud_forecast(site.clock.wall_ms())), "t")
    request = site.planner.request(site.clock.wall_ms())
    problem = request.problem
    assert len(problem.base_load_kw) == 96
    assert problem.start_ms == MONDAY_MS + 7 * 60 * MINUTE_MS
    assert problem.import_price[:5] == [0.16, 0.16, 0.16, 0.16, 0.24]  # peak from 08:00
    assert problem.export_price[0] == 0.07
    assert problem.demand_charge_per_kw == 9.0 / 28  # the month shared by 3..30 June
    assert problem.demand_window_steps == 1
    assert problem.base_load_kw[0] == 170.0  # the prior of production (06:00-09:00)
    assert problem.base_load_kw[8] == 45.0  # 09:00-09:15: a pause
    battery = problem.battery
    assert battery is not None
    assert battery.soc_kwh == 10.0  # 5 % of 200 kWh
    assert battery.soc_min_kwh == 10.0  # under the 12 % reserve now: the floor is now
    assert battery.soc_max_kwh == 188.0
    assert request.pv is not None
    assert request.pv.cloud == [0.9] * 96
    assert request.pv.wall_clock_zone == "Europe/Berlin"


def test_the_load_is_learned_per_period_and_kept_with_its_age(tmp_path: Path) -> None:
    site = Site(MONDAY_MS + 7 * 60 * MINUTE_MS, tmp_path)
    # meter 120 + battery discharging 30 + PV 40 = 190 kW of load in production.
    site.run(15, meter=120.0, battery=30.0, soc=50.0, pv=40.0)  # 07:00:10 .. 07:15:00
    load = site.planner.load
    assert load.power_of("production") == 190.0
    assert load.power_of("pause") == 45.0  # not seen: the prior
    site.run(15, meter=150.0, battery=30.0, soc=50.0, pv=40.0)  # 220 kW: moves by 0.2
    # The 07:15-07:30 step: the 07:15:00 reading at 190 kW, 89 at 220 kW.
    second = (190.0 + 89 * 220.0) / 90
    learned = 190.0 + 0.2 * (second - 190.0)
    assert abs(load.power_of("production") - learned) < 1e-9
    saved = json.loads((tmp_path / "scheduler" / "load.json").read_text())
    assert saved["kind"] == "load"
    assert saved["state"]["periods"]["production"]["steps"] == 2
    again = Site(site.clock.wall_ms(), tmp_path)
    assert abs(again.planner.load.power_of("production") - learned) < 1e-3
    shown = again.planner.load.as_json(site.clock.wall_ms() + 60_000)
    assert shown["production"]["learned_steps"] == 2
    assert shown["production"]["age_s"] is not None
    assert shown["pause"]["learned_steps"] == 0


def test_the_peak_already_set_and_a_window_already_begun(tmp_path: Path) -> None:
    site = Site(MONDAY_MS + 10 * 60 * MINUTE_MS, tmp_path, step="5min")
    site.read(meter=160.0, battery=0.0, soc=50.0, pv=0.0)
    site.planner.observe(site.clock.wall_ms())  # 10:00:00, a window's start
    site.run(15, meter=160.0, battery=0.0, soc=50.0, pv=0.0)  # one whole window at 160 kW
    site.run(7, meter=100.0, battery=0.0, soc=50.0, pv=0.0)  # 10:15-10:22
    assert abs(site.planner.billing.peak_kw - 160.0) < 1e-6
    site.planner.offer_pv_forecast(payload(cloud_forecast(site.clock.wall_ms())), "t")
    problem = site.planner.request(site.clock.wall_ms()).problem
    assert problem.start_ms == MONDAY_MS + (10 * 60 + 20) * MINUTE_MS
    assert problem.demand_window_steps == 3
    assert problem.first_window_steps == 2  # 10:20 and 10:25 are left of the 10:15 window
    assert problem.peak_already_kw == site.planner.billing.peak_kw
    # 100 kW from 10:15 to 10:20: 8.3 kWh already in this window.
    assert abs(problem.first_window_import_kwh - 100 * 5 / 60) < 0.3


def test_a_car_s_session_from_its_arrival_and_what_it_got(tmp_path: Path) -> None:
    site = Site(MONDAY_MS + 7 * 60 * MINUTE_MS, tmp_path, evs=[CAR])
    site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
    site.planner.offer_pv_forecast(payload(cloud_forecast(site.clock.wall_ms())), "t")
    [session] = site.planner.request(site.clock.wall_ms()).problem.evs
    assert (session.first_step, session.depart_step, session.energy_kwh) == (4, 36, 40.0)


def test_a_load_off_its_forecast_is_a_disturbance_once_it_holds(tmp_path: Path) -> None:

    site = Site(MONDAY_MS + 7 * 60 * MINUTE_MS, tmp_path)
    planner = site.planner
    now = site.clock.wall_ms()
    planner._last_slot = now
    step = PlanTarget(
        start_ms=now,
        end_ms=now + 15 * MINUTE_MS,
        battery_kw=0.0,
        import_kw=170.0,
        export_kw=0.0,
        soc_pct=50.0,
        peak_kw=170.0,
        load_kw=170.0,
        pv_kw=0.0,
        soc_start_pct=50.0,
    )
    planner.board.accept(AcceptedPlan((step,), created_ms=now, valid_until_ms=now + 3_600_000))
    site.run(0.5, meter=175.0, battery=0.0, soc=50.0, pv=0.0)  # 5 kW off: nothing
    assert planner.due(site.clock.wall_ms()) == ""
    site.run(0.5, meter=300.0, battery=0.0, soc=50.0, pv=0.0)  # the average climbs
    site.run(1.5, meter=300.0, battery=0.0, soc=50.0, pv=0.0)  # held past `hold` (1 min)
    reason = planner.due(site.clock.wall_ms())
    assert reason.startswith("net load ")
    assert reason.endswith("off its forecast 170.0 kW")


def test_the_car_s_status_for_the_deadline_guard(tmp_path: Path) -> None:
    """Every pass the planner tells load_schedule what the car still needs (the booking less
    what the charger's kW delivered since it came) and when it leaves, plan or no plan."""
    site = Site(MONDAY_MS + 8 * 60 * MINUTE_MS, tmp_path, evs=[CAR])
    board = site.planner.board
    charger = site.charger

    for _ in range(360):  # an hour of readings every 10 s, charging at 11 kW
        site.clock.advance(10)
        site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
        charger(1.0, 11.0)
        site.planner.observe(site.clock.wall_ms())
    car = board.ev_sessions["car"]
    assert car.connected
    # counted from the first reading that saw it connected: 359 intervals of 10 s at 11 kW
    assert car.remaining_kwh == pytest.approx(40.0 - 11.0 * 359 * 10 / 3600)
    assert car.depart_ms == MONDAY_MS + 16 * 60 * MINUTE_MS
    assert car.max_kw == 11.0
    assert car.seen_ms == site.clock.wall_ms()
    assert board.plan is None  # no plan was made: the view is kept all the same
    site.clock.advance(10)
    site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
    charger(0.0, 0.0)
    site.planner.observe(site.clock.wall_ms())
    assert not board.ev_sessions["car"].connected
    assert board.ev_sessions["car"].remaining_kwh == 0.0
    site.clock.advance(10)
    site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
    now = site.clock.wall_ms()
    site.table.update([Sample("process-plc", "ev_charger_connected", None, Quality.BAD, now, now)])
    site.planner.observe(now)
    assert board.ev_sessions["car"].connected is None  # not known: load_schedule lets it be


def test_a_missed_connected_reading_is_no_new_car(tmp_path: Path) -> None:
    """One bad `connected` reading in a charging session: the count of what the car got is
    kept (not reset as for a car that left and came again), and no re-plan is asked."""
    site = Site(MONDAY_MS + 9 * 60 * MINUTE_MS, tmp_path, evs=[CAR])
    for i in range(61):
        site.clock.advance(10)
        site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
        site.charger(None if i == 30 else 1, 11.0)
        site.planner.observe(site.clock.wall_ms())
    car = site.planner.board.ev_sessions["car"]
    assert car.connected is True
    # 60 intervals of 10 s, the one ending at the bad reading not counted: 59 at 11 kW
    assert car.remaining_kwh == pytest.approx(40.0 - 11.0 * 59 * 10 / 3600)
    assert site.planner._pending == ["car at car"]  # the car's arrival, once


def test_a_bad_charger_kw_counts_nothing_delivered(tmp_path: Path) -> None:
    """The charger's kW unreadable while the car is connected: nothing is counted as
    delivered, so the car's remaining energy is over-, never under-estimated."""
    site = Site(MONDAY_MS + 9 * 60 * MINUTE_MS, tmp_path, evs=[CAR])
    for _ in range(30):
        site.clock.advance(10)
        site.read(meter=100.0, battery=0.0, soc=50.0, pv=0.0)
        site.charger(1, None)
        site.planner.observe(site.clock.wall_ms())
    car = site.planner.board.ev_sessions["car"]
    assert car.connected is True
    assert car.remaining_kwh == 40.0

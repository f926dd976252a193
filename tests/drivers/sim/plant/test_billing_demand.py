"""What the utility bills: the highest average over clock-aligned windows of the tariff's
length, not the meter's sliding window (issue #14, item 4). A known trace whose two maxima
differ: 10 min at 200 kW from 00:10 on a 100 kW base."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.sim.plant import Plant
from drivers.sim.plant.electricity import BillingDemand, RollingDemand, billing_demand
from drivers.sim.scenario import ExtraLoad, TariffSpec, load_scenario


def trace(step_s: float) -> list[tuple[float, float]]:
    """(dt, kWh) steps from 00:00 for 45 min: 200 kW from 00:10 to 00:20, else 100 kW."""
    steps: list[tuple[float, float]] = []
    t = 0.0
    while t < 45 * 60 - 1e-9:
        kw = 200.0 if 600 <= t < 1200 else 100.0
        steps.append((step_s, kw * step_s / 3600))
        t += step_s
    return steps


@pytest.mark.parametrize("step_s", [1.0, 5.0, 60.0])
def test_the_aligned_maximum_is_below_the_sliding_one_on_a_peak_across_a_boundary(
    step_s: float,
) -> None:
    aligned = BillingDemand(900.0, offset_s=0.0)
    sliding = RollingDemand(900.0)
    sliding_max = 0.0
    for dt, kwh in trace(step_s):
        aligned.add(dt, kwh)
        sliding.add(dt, kwh)
        sliding_max = max(sliding_max, sliding.kw)
    # 00:00-00:15: 10 min at 100 + 5 at 200 = 133.3 kW; 00:15-00:30: the same.
    assert aligned.max_kw == pytest.approx(400 / 3)
    # 00:05-00:20 slides over the whole peak: 5 min at 100 + 10 at 200 = 166.7 kW.
    assert sliding_max == pytest.approx(500 / 3, rel=1e-3)


def test_a_step_across_a_window_boundary_is_split_between_the_windows() -> None:
    aligned = BillingDemand(900.0, offset_s=0.0)
    aligned.add(890.0, 100.0 * 890 / 3600)
    aligned.add(20.0, 20 * 1000.0 / 3600)  # 1000 kW for 20 s, 10 s in each window
    # first window: 890 s at 100 kW + 10 s at 1000 kW
    assert aligned.max_kw == pytest.approx((100 * 890 + 1000 * 10) / 900)
    assert aligned.kw == pytest.approx(1000 * 10 / 900)


def test_windows_are_aligned_to_the_site_clock_not_to_the_start() -> None:
    """A run starting at 05:20 has its first window 05:15-05:30: 10 min of it."""
    aligned = BillingDemand(900.0, offset_s=5 * 3600 + 20 * 60)
    aligned.add(600.0, 200.0 * 600 / 3600)  # 05:20-05:30 at 200 kW
    aligned.add(900.0, 100.0 * 900 / 3600)  # 05:30-05:45 at 100 kW
    assert aligned.max_kw == pytest.approx(200.0 * 600 / 900)


def test_a_tariff_billing_a_sliding_window_gets_the_rolling_maximum() -> None:
    demand = billing_demand(900.0, "sliding", offset_s=0.0)
    for dt, kwh in trace(5.0):
        demand.add(dt, kwh)
    assert demand.max_kw == pytest.approx(500 / 3, rel=1e-3)


def test_a_fixed_billing_window_must_divide_the_hour() -> None:
    with pytest.raises(ValidationError, match="does not divide the hour"):
        TariffSpec.model_validate({"default_price_per_kwh": 0.2, "demand_window": "7min"})
    assert TariffSpec.model_validate(
        {"default_price_per_kwh": 0.2, "demand_window": "7min", "demand_alignment": "sliding"}
    ).demand_window == 420


def test_the_plant_bills_the_aligned_window_and_keeps_the_meter_s_own_beside_it() -> None:
    """normal-day from 10:00 with a 90 kW extra load from 10:10 to 10:20: the meter's sliding
    peak is above the billed one, and the demand charge is on the billed one."""
    day = load_scenario("normal-day")
    furnace = ExtraLoad.model_validate(
        {"name": "furnace", "start": {"at": "10:10"}, "duration": "10min", "kw": 90.0}
    )
    scenario = day.model_copy(
        update={
            "start": day.start.replace(hour=10, minute=0),
            "events": day.events.model_copy(update={"loads": [furnace]}),
        }
    )
    plant = Plant(scenario)
    while plant.time_s < 45 * 60:
        plant.step(5.0)
    truth = plant.ground_truth()
    assert truth.billing_window_s == 900
    assert truth.billing_alignment == "fixed"
    assert truth.billing_demand_kw < truth.max_demand_kw - 10
    assert truth.demand_charge_prorated == pytest.approx(
        truth.billing_demand_kw
        * scenario.tariff.demand_charge_per_kw_month
        * (45 * 60) / (30 * 86400)
    )

"""Small LP problems the scheduler's known-answer tests share: a battery with one or two figures
changed, and the two-step price spread (docs/rules.md, "Worked example: a two-step price
spread") they start from."""

from __future__ import annotations

from controller.scheduler.problem import BatteryModel, Problem


def battery(**changes: float) -> BatteryModel:
    """100 kWh, at its 10 kWh reserve, 100 kW each way, 90 % efficient each way; `changes`
    replace any of these or add to them (wear, an end value)."""
    values: dict[str, float] = {
        "capacity_kwh": 100.0,
        "soc_kwh": 10.0,
        "soc_min_kwh": 10.0,
        "soc_max_kwh": 100.0,
        "max_charge_kw": 100.0,
        "max_discharge_kw": 100.0,
        "charge_efficiency": 0.9,
        "discharge_efficiency": 0.9,
    }
    values.update(changes)
    return BatteryModel(**values)


def spread(
    bat: BatteryModel | None = None, import_price: tuple[float, float] = (0.10, 0.30)
) -> Problem:
    """Two 1-hour steps, 50 kW of load in each, nothing exported, at `import_price`."""
    return Problem(
        start_ms=0,
        step_minutes=60,
        base_load_kw=(50, 50),
        pv_kw=(0, 0),
        import_price=import_price,
        export_price=(0, 0),
        battery=bat if bat is not None else battery(),
    )

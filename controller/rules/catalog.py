"""The energy and water rule kinds: their config classes (listed in the `kind:` union of
controller/rules/config.py) and how each is built (by controller/rules/kinds.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from controller.rules.energy.battery_peak_shaving import (
    BatteryPeakShaving,
    BatteryPeakShavingConfig,
)
from controller.rules.energy.battery_schedule import BatterySchedule, BatteryScheduleConfig
from controller.rules.energy.chiller_reset import ChillerReset, ChillerResetConfig
from controller.rules.energy.compressed_air import CompressedAir, CompressedAirConfig
from controller.rules.energy.idle_standby import IdleStandby, IdleStandbyConfig
from controller.rules.energy.load_schedule import LoadSchedule, LoadScheduleConfig
from controller.rules.energy.peak_shaving import PeakShaving, PeakShavingConfig
from controller.rules.energy.pv_self_consumption import PvSelfConsumption, PvSelfConsumptionConfig
from controller.rules.rule import Rule
from controller.rules.timing import ControlTiming
from controller.rules.water.cooling_tower_blowdown import BlowdownConfig, CoolingTowerBlowdown
from controller.rules.water.rinse_reuse import RinseReuse, RinseReuseConfig
from controller.rules.water.tower_balance import TowerBalance, TowerBalanceConfig
from controller.rules.water.water_leak import WaterLeak, WaterLeakConfig
from controller.scheduler.board import PlanBoard

if TYPE_CHECKING:
    from controller.scheduler.config import TariffConfig

DomainRuleConfig: TypeAlias = (
    PeakShavingConfig
    | CompressedAirConfig
    | ChillerResetConfig
    | IdleStandbyConfig
    | WaterLeakConfig
    | BlowdownConfig
    | RinseReuseConfig
    | TowerBalanceConfig
    | BatteryPeakShavingConfig
    | PvSelfConsumptionConfig
    | BatteryScheduleConfig
    | LoadScheduleConfig
)


def build_domain_rule(
    config: DomainRuleConfig,
    timing: ControlTiming | None = None,
    plans: PlanBoard | None = None,
    tariff: TariffConfig | None = None,
) -> Rule:
    """The rule of an energy or water rule config; `timing` for idle_standby's wake-up,
    `plans` (the scheduler's plan in force) for battery_schedule and load_schedule, `tariff`
    (the config's top-level one) for battery_peak_shaving's prices."""
    if isinstance(config, PeakShavingConfig):
        return PeakShaving(config)
    if isinstance(config, CompressedAirConfig):
        return CompressedAir(config)
    if isinstance(config, ChillerResetConfig):
        return ChillerReset(config)
    if isinstance(config, IdleStandbyConfig):
        return IdleStandby(config, timing)
    if isinstance(config, WaterLeakConfig):
        return WaterLeak(config)
    if isinstance(config, BlowdownConfig):
        return CoolingTowerBlowdown(config)
    if isinstance(config, BatteryPeakShavingConfig):
        return BatteryPeakShaving(config, tariff)
    if isinstance(config, BatteryScheduleConfig):
        return BatterySchedule(config, plans)
    if isinstance(config, LoadScheduleConfig):
        return LoadSchedule(config, plans)
    if isinstance(config, PvSelfConsumptionConfig):
        return PvSelfConsumption(config)
    if isinstance(config, TowerBalanceConfig):
        return TowerBalance(config)
    return RinseReuse(config)

"""The energy and water rule kinds: their config classes (listed in the `kind:` union of
controller/rules/config.py) and how each is built (by controller/rules/kinds.py)."""

from __future__ import annotations

from typing import TypeAlias

from controller.rules.energy import (
    ChillerReset,
    ChillerResetConfig,
    CompressedAir,
    CompressedAirConfig,
    IdleStandby,
    IdleStandbyConfig,
    PeakShaving,
    PeakShavingConfig,
)
from controller.rules.rule import Rule
from controller.rules.water import (
    BlowdownConfig,
    CoolingTowerBlowdown,
    RinseReuse,
    RinseReuseConfig,
    WaterLeak,
    WaterLeakConfig,
)

DomainRuleConfig: TypeAlias = (
    PeakShavingConfig
    | CompressedAirConfig
    | ChillerResetConfig
    | IdleStandbyConfig
    | WaterLeakConfig
    | BlowdownConfig
    | RinseReuseConfig
)


def build_domain_rule(config: DomainRuleConfig) -> Rule:
    """The rule of an energy or water rule config."""
    if isinstance(config, PeakShavingConfig):
        return PeakShaving(config)
    if isinstance(config, CompressedAirConfig):
        return CompressedAir(config)
    if isinstance(config, ChillerResetConfig):
        return ChillerReset(config)
    if isinstance(config, IdleStandbyConfig):
        return IdleStandby(config)
    if isinstance(config, WaterLeakConfig):
        return WaterLeak(config)
    if isinstance(config, BlowdownConfig):
        return CoolingTowerBlowdown(config)
    return RinseReuse(config)

"""PV self-consumption with the battery, as OpenEMS' Controller.Ess.Balancing does it: charge
from the PV surplus, discharge to cover the import, so the grid reads `target_kw`; above the SoC
reserve only. docs/rules.md, "pv_self_consumption", gives the method, sources and parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from controller.model import Sample
from controller.rules.energy.battery import (
    BatteryControlConfig,
    BatteryRule,
    read_battery,
    within_limits,
)
from controller.rules.rule import Now, Proposal


class PvSelfConsumptionConfig(BatteryControlConfig):
    """Hold the grid at `target_kw` with the battery: surplus PV in, import covered out."""

    kind: Literal["pv_self_consumption"]
    # The grid power aimed at (targetGridSetpoint): 0 is neither import nor export.
    target_kw: float = 0.0


class PvSelfConsumption(BatteryRule):
    """Self-consumption: the battery gives or takes what the grid would carry beyond target."""

    config: PvSelfConsumptionConfig

    def __init__(self, config: PvSelfConsumptionConfig) -> None:
        super().__init__(config, "pv_self_consumption")
        self.config = config

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        reading = self.reading = read_battery(cfg, snapshot)
        wanted = reading.load_kw - cfg.target_kw
        self.state = "discharging" if wanted > 0 else "charging" if wanted < 0 else "balanced"
        kw, self.cut = within_limits(cfg, wanted, reading.soc_pct)
        reason = (
            f"grid would read {reading.load_kw:.1f} kW without the battery, target"
            f" {cfg.target_kw:g} kW"
        )
        if self.cut:
            reason += f"; limited by {self.cut}"
        self.wanted_kw = kw
        return [self.propose_kw(kw, now, reason)]

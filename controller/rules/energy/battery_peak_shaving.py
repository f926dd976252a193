"""Battery peak shaving, as OpenEMS' Controller.Ess.PeakShaving does it: discharge what the site
would draw above `limit_kw`, recharge while it draws less than `recharge_kw`, keep the SoC
reserve. docs/rules.md, "battery_peak_shaving", gives the method, sources and parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from controller.model import Sample
from controller.rules.energy.battery import (
    BatteryControlConfig,
    BatteryRule,
    read_battery,
    within_limits,
)
from controller.rules.rule import Now, Proposal


class BatteryPeakShavingConfig(BatteryControlConfig):
    """Hold the site's grid import at `limit_kw` with the battery; recharge below `recharge_kw`."""

    kind: Literal["battery_peak_shaving"]
    # Grid import above this is a peak: the battery gives the difference (peakShavingPower).
    limit_kw: float = Field(gt=0)
    # Grid import below this recharges the battery by the difference (rechargePower).
    recharge_kw: float = Field(ge=0)
    # Between the two: `hold` proposes 0 (the battery rests), `yield` proposes nothing, so a
    # lower-priority rule on the same setpoint (pv_self_consumption) decides.
    between: Literal["hold", "yield"] = "hold"

    @model_validator(mode="after")
    def _thresholds(self) -> BatteryPeakShavingConfig:
        if self.recharge_kw >= self.limit_kw:
            raise ValueError(
                "recharge_kw must be below limit_kw: the battery would recharge into the peak"
            )
        return self


class BatteryPeakShaving(BatteryRule):
    """Peak shaving with the battery, every cycle on the site's load with the battery idle."""

    config: BatteryPeakShavingConfig

    def __init__(self, config: BatteryPeakShavingConfig) -> None:
        super().__init__(config, "battery_peak_shaving")
        self.config = config

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        reading = self.reading = read_battery(cfg, snapshot)
        load = reading.load_kw
        if load > cfg.limit_kw:
            self.state = "shaving"
            kw, self.cut = within_limits(cfg, load - cfg.limit_kw, reading.soc_pct)
            reason = f"load {load:.1f} kW above limit {cfg.limit_kw:g} kW"
        elif load < cfg.recharge_kw:
            self.state = "recharging"
            kw, self.cut = within_limits(cfg, load - cfg.recharge_kw, reading.soc_pct)
            reason = f"load {load:.1f} kW below recharge {cfg.recharge_kw:g} kW"
        else:
            self.state = "between"
            self.cut = ""
            if cfg.between == "yield":
                self.wanted_kw = None
                return []
            kw, reason = 0.0, f"load {load:.1f} kW between recharge and limit: battery rests"
        if self.cut:
            reason += f"; limited by {self.cut}"
        self.wanted_kw = kw
        return [self.propose_kw(kw, now, reason)]

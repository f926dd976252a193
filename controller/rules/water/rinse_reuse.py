"""Rinse water reuse: recirculate through the clean-up loop while it helps, fresh water only
between two conductivities held above what the mains water itself brings, an alarm over the
quality limit. docs/rules.md, "rinse_reuse", gives the method and its parameters.

Why the mains matter: fresh water can only dilute the rinse towards the mains' own conductivity.
On hard water (700 uS/cm) a fixed "close fresh at 600" is never reached and the valve stands
open all night; so the closing level is raised to the mains plus a margin, measured or
configured, and a config whose fresh water alone could never hold the limit is refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.alarms import DeclaredAlarm, Indicates, declare
from controller.model import Sample
from controller.rules.blocks import Hysteresis, HysteresisConfig
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    present_number,
    rounded,
    signal_inputs,
)
from controller.rules.rule import Now, Proposal, number


class RinseReuseConfig(RuleCommon):
    """Recirculate while it helps; fresh water between two conductivities over the mains'."""

    kind: Literal["rinse_reuse"]
    conductivity: TagKey  # rinse tank, uS/cm
    limit_us_cm: float = Field(gt=0)  # the quality spec: never above
    fresh_valve: TagKey
    fresh_open: OutputValue = 100.0
    fresh_closed: OutputValue = 0.0
    fresh_on_us_cm: float = Field(gt=0)  # open fresh water at ...
    fresh_off_us_cm: float = Field(gt=0)  # ... and close it at (both raised over the mains)
    # The fresh (mains) water's conductivity: measured by a tag, or from the supplier's analysis.
    mains_conductivity: TagKey | None = None
    mains_us_cm: float | None = Field(default=None, gt=0)
    # Fresh water closes no lower than the mains plus this share of it (dilution approaches the
    # mains' conductivity and never reaches it).
    mains_margin_pct: float = Field(10.0, ge=1, le=100)
    recirc_valve: TagKey | None = None
    recirc_on: OutputValue = 100.0
    recirc_off: OutputValue = 0.0
    # Recirculate only while the rinse is under this (null: the limit).
    reuse_below_us_cm: float | None = Field(default=None, gt=0)
    # Recirculation starts at `fresh_off_us_cm` and stops under this floor, where the rinse is
    # clean and the pump would run for nothing (null: half of `fresh_off_us_cm`).
    recirc_floor_us_cm: float | None = Field(default=None, gt=0)
    production: ProductionSignal | None = None  # while it is on, recirculate down to any level

    @model_validator(mode="after")
    def _levels(self) -> RinseReuseConfig:
        if not self.fresh_off_us_cm < self.fresh_on_us_cm < self.limit_us_cm:
            raise ValueError("need fresh_off_us_cm < fresh_on_us_cm < limit_us_cm")
        if self.recirc_floor_us_cm is not None and self.recirc_floor_us_cm >= self.fresh_off_us_cm:
            raise ValueError("need recirc_floor_us_cm < fresh_off_us_cm (it starts there)")
        if self.mains_us_cm is not None and self.recirc_valve is None:
            closes = self.mains_us_cm * (1.0 + self.mains_margin_pct / 100.0)
            if closes >= self.limit_us_cm:
                raise ValueError(
                    f"mains water at {self.mains_us_cm:g} uS/cm: fresh water alone cannot keep the "
                    f"rinse under limit_us_cm {self.limit_us_cm:g} (it closes at {closes:g}, the "
                    "mains plus mains_margin_pct); add the recirculation (ion exchange) valve"
                )
        return self

    @property
    def recirc_floor(self) -> float:
        floor = self.recirc_floor_us_cm
        return floor if floor is not None else self.fresh_off_us_cm / 2.0

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("conductivity", self.conductivity)]
        if self.mains_conductivity is not None:
            tags.append(("mains_conductivity", self.mains_conductivity))
        return [*tags, *signal_inputs("production", self.production)]

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = [
            ("fresh_open", self.fresh_valve, self.fresh_open),
            ("fresh_closed", self.fresh_valve, self.fresh_closed),
        ]
        if self.recirc_valve is not None:
            values.append(("recirc_on", self.recirc_valve, self.recirc_on))
            values.append(("recirc_off", self.recirc_valve, self.recirc_off))
        return values


def fresh_levels(config: RinseReuseConfig, mains_us_cm: float | None) -> tuple[float, float]:
    """(open at, close at) for the fresh water. The closing level is at least the mains plus the
    margin; when it had to be raised, the opening level keeps the configured gap above it, but
    no more than half-way to the limit, so that fresh water still opens before the limit."""
    on, off = config.fresh_on_us_cm, config.fresh_off_us_cm
    if mains_us_cm is None:
        return on, off
    floor = mains_us_cm * (1.0 + config.mains_margin_pct / 100.0)
    if floor <= off:
        return on, off
    gap = on - off
    raised_on = max(on, min(floor + gap, (floor + config.limit_us_cm) / 2.0))
    if raised_on <= floor:  # the mains are at or over the limit: fresh water opens just above
        raised_on = floor + gap
    return raised_on, floor


class RinseReuse(DomainRule):
    """Fresh water between `fresh_on` and `fresh_off`, both raised over the mains (hysteresis);
    recirculation from `fresh_off` down to its floor, or all the time the line runs, while the
    rinse is under `reuse_below`; `quality` alarm over the limit."""

    config: RinseReuseConfig
    ALARMS = declare(quality=DeclaredAlarm(Indicates.PROCESS_LIMIT, "rinse"))

    def __init__(self, config: RinseReuseConfig) -> None:
        super().__init__(config, "rinse_reuse")
        self.config = config
        self._fresh = Hysteresis(
            HysteresisConfig(high=config.fresh_on_us_cm, low=config.fresh_off_us_cm)
        )
        self._recirc = Hysteresis(
            HysteresisConfig(high=config.fresh_off_us_cm, low=config.recirc_floor)
        )
        self._conductivity: float | None = None
        self._mains: float | None = config.mains_us_cm
        self._recirculating = False

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        cfg = self.config
        present = present_number(snapshot, cfg.fresh_valve)
        self._fresh.output = present is not None and present != float(cfg.fresh_closed)
        if cfg.recirc_valve is not None:
            present = present_number(snapshot, cfg.recirc_valve)
            self._recirc.output = present is not None and present != float(cfg.recirc_off)

    def _mains_us_cm(self, snapshot: Mapping[str, Sample]) -> float | None:
        if self.config.mains_conductivity is None:
            return self.config.mains_us_cm
        return number(snapshot, self.config.mains_conductivity)

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        conductivity = self._conductivity = number(snapshot, cfg.conductivity)
        self._mains = self._mains_us_cm(snapshot)
        on, off = fresh_levels(cfg, self._mains)
        self._fresh.config = HysteresisConfig(high=on, low=off)
        fresh = self._fresh.update(conductivity)
        reason = f"rinse {conductivity:.0f} uS/cm (limit {cfg.limit_us_cm:g})"
        out = [self.propose(cfg.fresh_valve, cfg.fresh_open if fresh else cfg.fresh_closed, reason)]
        if cfg.recirc_valve is not None:
            dirty = self._recirc.update(conductivity)
            running = cfg.production is not None and cfg.production.on(snapshot)
            reuse_below = cfg.reuse_below_us_cm or cfg.limit_us_cm
            self._recirculating = (dirty or running) and conductivity < reuse_below
            value = cfg.recirc_on if self._recirculating else cfg.recirc_off
            out.append(self.propose(cfg.recirc_valve, value, reason))
        if conductivity > cfg.limit_us_cm:
            self.set_alarm(
                "quality",
                True,
                f"rinse conductivity {conductivity:.0f} uS/cm over its limit {cfg.limit_us_cm:g}",
                {"conductivity_us_cm": round(conductivity, 1), "limit_us_cm": cfg.limit_us_cm},
            )
        else:
            self.set_alarm("quality", False)
        return out

    def detail(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "conductivity_us_cm": rounded(self._conductivity, 1),
            "headroom_us_cm": rounded(
                None if self._conductivity is None else cfg.limit_us_cm - self._conductivity, 1
            ),
            "mains_us_cm": rounded(self._mains, 1),
            "fresh_on_us_cm": rounded(self._fresh.config.high, 1),
            "fresh_off_us_cm": rounded(self._fresh.config.low, 1),
            "fresh_open": self._fresh.output,
            "recirculating": self._recirculating,
        }

"""Rinse water reuse: recirculate while the rinse is clean enough, fresh water only between two
conductivities, an alarm over the quality limit. docs/rules.md, "rinse_reuse", gives the
method and its parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.model import Sample
from controller.rules.blocks import Hysteresis, HysteresisConfig
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    present_number,
    rounded,
    signal_inputs,
)
from controller.rules.rule import Now, Proposal, number


class RinseReuseConfig(RuleCommon):
    """Recirculate while the rinse is clean enough; fresh water between two conductivities."""

    kind: Literal["rinse_reuse"]
    conductivity: TagKey  # rinse tank, uS/cm
    limit_us_cm: float = Field(gt=0)  # the quality spec: never above
    fresh_valve: TagKey
    fresh_open: OutputValue = 100.0
    fresh_closed: OutputValue = 0.0
    fresh_on_us_cm: float = Field(gt=0)  # open fresh water at ...
    fresh_off_us_cm: float = Field(gt=0)  # ... and close it at
    recirc_valve: TagKey | None = None
    recirc_on: OutputValue = 100.0
    recirc_off: OutputValue = 0.0
    # Recirculate only while the rinse is under this (null: the limit).
    reuse_below_us_cm: float | None = Field(default=None, gt=0)
    production: ProductionSignal | None = None  # recirculate only while the line runs

    @model_validator(mode="after")
    def _levels(self) -> RinseReuseConfig:
        if not self.fresh_off_us_cm < self.fresh_on_us_cm < self.limit_us_cm:
            raise ValueError("need fresh_off_us_cm < fresh_on_us_cm < limit_us_cm")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        return [("conductivity", self.conductivity), *signal_inputs("production", self.production)]

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = [
            ("fresh_open", self.fresh_valve, self.fresh_open),
            ("fresh_closed", self.fresh_valve, self.fresh_closed),
        ]
        if self.recirc_valve is not None:
            values.append(("recirc_on", self.recirc_valve, self.recirc_on))
            values.append(("recirc_off", self.recirc_valve, self.recirc_off))
        return values


class RinseReuse(DomainRule):
    """Fresh water only between `fresh_on` and `fresh_off` (hysteresis), recirculation while
    the rinse is under `reuse_below` and the line runs; `quality` alarm over the limit."""

    config: RinseReuseConfig

    def __init__(self, config: RinseReuseConfig) -> None:
        super().__init__(config, "rinse_reuse")
        self.config = config
        self._fresh = Hysteresis(
            HysteresisConfig(high=config.fresh_on_us_cm, low=config.fresh_off_us_cm)
        )
        self._conductivity: float | None = None
        self._recirculating = False

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        present = present_number(snapshot, self.config.fresh_valve)
        closed = self.config.fresh_closed
        self._fresh.output = present is not None and present != float(closed)

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        conductivity = self._conductivity = number(snapshot, cfg.conductivity)
        fresh = self._fresh.update(conductivity)
        reason = f"rinse {conductivity:.0f} uS/cm (limit {cfg.limit_us_cm:g})"
        out = [self.propose(cfg.fresh_valve, cfg.fresh_open if fresh else cfg.fresh_closed, reason)]
        if cfg.recirc_valve is not None:
            running = cfg.production is None or cfg.production.on(snapshot)
            reuse_below = cfg.reuse_below_us_cm or cfg.limit_us_cm
            self._recirculating = running and conductivity < reuse_below
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
            "fresh_open": self._fresh.output,
            "recirculating": self._recirculating,
        }

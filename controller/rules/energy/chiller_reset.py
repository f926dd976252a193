"""Chilled-water setpoint reset: the warmest supply that keeps every process requirement, by
trim and respond. docs/rules.md, "chiller_reset", gives the method and its parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.model import Sample
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    present_number,
    rounded,
    signal_inputs,
)
from controller.rules.energy.requirement import Requirement, count_requests
from controller.rules.rule import Now, Proposal, number
from controller.rules.trimrespond import TrimRespond, TrimRespondConfig


class ChillerResetConfig(RuleCommon):
    """Trim and respond on the chilled-water supply setpoint against the process limits."""

    kind: Literal["chiller_reset"]
    setpoint: TagKey
    process: list[Requirement] = Field(min_length=1)
    reset: TrimRespondConfig
    production: ProductionSignal | None = None
    # Outside production the setpoint goes here (the warmest the idle loop may run).
    outside_production_c: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChillerResetConfig:
        if self.reset.trim <= 0:
            raise ValueError("reset.trim raises the chilled-water setpoint: it must be positive")
        if self.outside_production_c is not None and self.production is None:
            raise ValueError("outside_production_c needs a production: signal")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [(f"process[{i}].tag", req.tag) for i, req in enumerate(self.process)]
        return tags + signal_inputs("production", self.production)

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [("setpoint", self.setpoint, self.outside_production_c)]


class ChillerReset(DomainRule):
    """The warmest chilled water that keeps every process requirement: trims the setpoint up
    every period, responds down to each request."""

    config: ChillerResetConfig

    def __init__(self, config: ChillerResetConfig) -> None:
        super().__init__(config, "chiller_reset")
        self.config = config
        self.reset = TrimRespond(config.reset)
        self._producing: bool | None = None
        self._requests = 0

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self.reset.reset(now.monotonic, present_number(snapshot, self.config.setpoint))
        self._producing = None

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        producing = True if cfg.production is None else cfg.production.on(snapshot)
        if producing and self._producing is False and self.reset.started:
            self.reset.reset(t, self.reset.value)
        self._producing = producing
        self._requests = count_requests(cfg.process, snapshot)
        if not producing and cfg.outside_production_c is not None:
            return [self.propose(cfg.setpoint, cfg.outside_production_c, "no production")]
        setpoint = self.reset.update(t, self._requests)
        worst = max(
            number(snapshot, req.tag) - (req.max if req.max is not None else 0.0)
            for req in cfg.process
        )
        reason = (
            f"trim and respond: process {worst:+.2f} K from its limit, {self._requests}"
            f" request(s), last step {self.reset.last_step:+g} K"
        )
        return [self.propose(cfg.setpoint, round(setpoint, 4), reason)]

    def detail(self) -> dict[str, Any]:
        return {
            "setpoint_c": rounded(self.reset.value if self.reset.started else None),
            "requests": self._requests,
            "last_requests": self.reset.last_requests,
            "last_step_k": self.reset.last_step,
            "producing": self._producing,
        }

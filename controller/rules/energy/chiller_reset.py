"""Chilled-water setpoint reset: the warmest supply that keeps every process requirement, by
trim and respond. docs/rules.md, "chiller_reset", gives the method and its parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, StrictModel
from controller.model import Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import (
    DomainRule,
    ProductionSignal,
    present_number,
    rounded,
    signal_inputs,
)
from controller.rules.energy.requirement import (
    Requirement,
    Trend,
    count_requests,
    first_endangered,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.trimrespond import TrimRespond, TrimRespondConfig


class Headroom(StrictModel):
    """The chiller's spare capacity. A warmer supply spends the cold stored in the loop; a
    chiller running near its capacity cannot win it back, so when the afternoon's heat goes
    past its capacity the return crosses its limit sooner than at the design supply. While
    `tag` (the cooling delivered, kW) reads `hold_above` of `capacity_kw` or more, and for
    `hold_for` after, the setpoint is held at the safe setpoint, never trimmed above it."""

    tag: TagKey
    capacity_kw: float = Field(gt=0)
    hold_above: float = Field(0.9, gt=0, le=1)
    hold_for: Duration = 900.0


class ChillerResetConfig(RuleCommon):
    """Trim and respond on the chilled-water supply setpoint against the process limits."""

    kind: Literal["chiller_reset"]
    setpoint: TagKey
    process: list[Requirement] = Field(min_length=1)
    reset: TrimRespondConfig
    production: ProductionSignal | None = None
    # Outside production the setpoint goes here (the warmest the idle loop may run).
    outside_production_c: float | None = None
    # Off by default: the reset trims whatever the chiller's load.
    headroom: Headroom | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChillerResetConfig:
        if self.reset.trim <= 0:
            raise ValueError("reset.trim raises the chilled-water setpoint: it must be positive")
        if self.outside_production_c is not None and self.production is None:
            raise ValueError("outside_production_c needs a production: signal")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [(f"process[{i}].tag", req.tag) for i, req in enumerate(self.process)]
        if self.headroom is not None:
            tags.append(("headroom.tag", self.headroom.tag))
        return tags + signal_inputs("production", self.production)

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [("setpoint", self.setpoint, self.outside_production_c)]


class ChillerReset(DomainRule):
    """The warmest chilled water that keeps every process requirement: trims the setpoint up
    every period, responds down to each request; goes at once to its safe setpoint when
    production starts or a requirement is endangered (its fast path)."""

    config: ChillerResetConfig

    def __init__(self, config: ChillerResetConfig) -> None:
        super().__init__(config, "chiller_reset")
        self.config = config
        self.reset = TrimRespond(config.reset)
        self._producing: bool | None = None
        self._requests = 0
        self._trends = [Trend() for _ in config.process]
        # The setpoint the reset held when the last production ended: what production needs.
        self._learned: float | None = None
        self._fast_at: float | None = None
        self._endangered: str | None = None
        self._last_fast: str | None = None
        self._held_until: float | None = None

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        self.reset.reset(now.monotonic, present_number(snapshot, self.config.setpoint))
        self._producing = None
        self._fast_at = None
        for trend in self._trends:
            trend.clear()

    def safe_setpoint(self) -> float:
        """Where the fast path and a production start take the setpoint: the one held at the
        end of the last production, else `reset.initial` (the design supply), else `min`."""
        reset = self.config.reset
        if self._learned is not None:
            return self._learned
        return reset.initial if reset.initial is not None else reset.min

    def _go_down_to(self, t: float, target: float, why: str) -> None:
        """The setpoint at once to `target` when that is lower (trim-and-respond restarts from
        there, its `delay` before the next trim)."""
        target = max(self.config.reset.min, target)
        if target < self.reset.value:
            self.reset.reset(t, target)
            self._last_fast = why

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        producing = True if cfg.production is None else cfg.production.on(snapshot)
        if self.reset.started and self._producing is not None and producing != self._producing:
            if producing:
                # Feed-forward: the heat arrives with production; do not wait for the return.
                self.reset.reset(t, self.reset.value)
                self._go_down_to(t, self.safe_setpoint(), "production start")
            else:
                self._learned = self.reset.value
        self._producing = producing
        self._requests = count_requests(cfg.process, snapshot)
        if not producing and cfg.outside_production_c is not None:
            return [self.propose(cfg.setpoint, cfg.outside_production_c, "no production")]
        self._fast_path(snapshot, t)
        held = self._held(snapshot, t)
        if held:
            self._go_down_to(t, self.safe_setpoint(), "no headroom")
        setpoint = self.reset.update(t, self._requests)
        if held and setpoint > self.safe_setpoint():
            # Trimmed past the safe setpoint within the hold: back (never lower than a respond).
            self.reset.reset(t, self.safe_setpoint())
            setpoint = self.reset.value
        worst = max(
            number(snapshot, req.tag) - (req.max if req.max is not None else 0.0)
            for req in cfg.process
        )
        reason = (
            f"trim and respond: process {worst:+.2f} K from its limit, {self._requests}"
            f" request(s), last step {self.reset.last_step:+g} K"
        )
        if self._endangered is not None:
            reason = f"fast path: {self._endangered}; {reason}"
        if held:
            reason = f"held: the chiller near its capacity; {reason}"
        return [self.propose(cfg.setpoint, round(setpoint, 4), reason)]

    def _held(self, snapshot: Mapping[str, Sample], t: float) -> bool:
        """The chiller near its capacity now or within `hold_for`: no trim above safe."""
        headroom = self.config.headroom
        if headroom is None or not self.reset.started:
            return False
        if number(snapshot, headroom.tag) >= headroom.hold_above * headroom.capacity_kw:
            self._held_until = t + headroom.hold_for
        return self._held_until is not None and t < self._held_until

    def _fast_path(self, snapshot: Mapping[str, Sample], t: float) -> None:
        """A requirement endangered (within its guard, or reaching its limit within its lead):
        the setpoint goes at once to the safe setpoint, or, already there, one `max_response`
        lower; again after the requirement's `lead` while it stays endangered."""
        self._endangered, lead = first_endangered(self.config.process, self._trends, snapshot, t)
        if self._endangered is None or not self.reset.started:
            return
        if self._fast_at is not None and t - self._fast_at < lead:
            return
        self._fast_at = t
        safe = self.safe_setpoint()
        value = self.reset.value
        target = safe if value > safe else value + self.config.reset.max_response
        self._go_down_to(t, target, self._endangered)

    def detail(self) -> dict[str, Any]:
        return {
            "setpoint_c": rounded(self.reset.value if self.reset.started else None),
            "requests": self._requests,
            "last_requests": self.reset.last_requests,
            "last_step_k": self.reset.last_step,
            "producing": self._producing,
            "safe_setpoint_c": rounded(self.safe_setpoint()),
            "endangered": self._endangered,
            "last_fast": self._last_fast,
            "held_until": rounded(self._held_until),
        }

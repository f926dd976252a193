"""Cooling tower blowdown: conductivity held just under the chemistry limit by an on/off bleed
valve, with the bleed time limit and conductivity alarms. docs/rules.md,
"cooling_tower_blowdown", gives the method, source and parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.alarms import DeclaredAlarm, Indicates, declare
from controller.configtypes import Duration, PositiveDuration, format_duration
from controller.model import Sample
from controller.rules.blocks import Hysteresis, HysteresisConfig
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes
from controller.rules.domain import (
    DomainRule,
    present_number,
    rounded,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.water.tower_chemistry import (
    blowdown_for_cycles,
    cycles_of_concentration,
    makeup_for_cycles,
)


class BlowdownConfig(RuleCommon):
    """Bleed when conductivity reaches `limit - margin`, stop `deadband` lower."""

    kind: Literal["cooling_tower_blowdown"]
    conductivity: TagKey  # tower water, uS/cm
    valve: TagKey
    open_value: OutputValue = 100.0
    closed_value: OutputValue = 0.0
    limit_us_cm: float = Field(gt=0)  # the water chemistry's maximum
    margin_us_cm: float = Field(default=0.0, ge=0)
    deadband_us_cm: float = Field(gt=0)
    min_open: Duration = 0.0
    min_closed: Duration = 0.0
    max_open: PositiveDuration  # bleed time limit: open longer than this is a fault
    makeup_us_cm: float | None = Field(default=None, gt=0)  # for the cycles estimate
    makeup_flow: TagKey | None = None  # m3/h, for the evaporation and blowdown estimates
    blowdown_flow: TagKey | None = None  # m3/h: evaporation = makeup - blowdown when given

    @model_validator(mode="after")
    def _band(self) -> BlowdownConfig:
        if self.margin_us_cm + self.deadband_us_cm >= self.limit_us_cm:
            raise ValueError("margin_us_cm + deadband_us_cm must be below limit_us_cm")
        return self

    @property
    def open_at(self) -> float:
        return self.limit_us_cm - self.margin_us_cm

    @property
    def close_at(self) -> float:
        return self.open_at - self.deadband_us_cm

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("conductivity", self.conductivity)]
        if self.makeup_flow is not None:
            tags.append(("makeup_flow", self.makeup_flow))
        if self.blowdown_flow is not None:
            tags.append(("blowdown_flow", self.blowdown_flow))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [
            ("open_value", self.valve, self.open_value),
            ("closed_value", self.valve, self.closed_value),
        ]


class CoolingTowerBlowdown(DomainRule):
    """Conductivity held in a band just under the chemistry limit by an on/off bleed valve
    with minimum open and closed times; a valve open longer than `max_open` raises
    `bleed_time_limit`, conductivity over the limit raises `conductivity_high`."""

    config: BlowdownConfig
    ALARMS = declare(
        bleed_time_limit=DeclaredAlarm(Indicates.EQUIPMENT, "cooling_tower"),
        conductivity_high=DeclaredAlarm(Indicates.PROCESS_LIMIT, "cooling_tower"),
    )

    def __init__(self, config: BlowdownConfig) -> None:
        super().__init__(config, "cooling_tower_blowdown")
        self.config = config
        self._band = Hysteresis(HysteresisConfig(high=config.open_at, low=config.close_at))
        self._over = Hysteresis(
            HysteresisConfig(high=config.limit_us_cm, low=config.close_at, initial=False)
        )
        self.valve = MinOnOffTimes(self._cycling(), state=False, since=0.0)
        self._conductivity: float | None = None
        self._makeup: float | None = None
        self._blowdown: float | None = None
        self._t = 0.0

    def _cycling(self) -> MinOnOffConfig:
        return MinOnOffConfig(
            min_on=format_duration(self.config.min_open),
            min_off=format_duration(self.config.min_closed),
        )

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        present = present_number(snapshot, self.config.valve)
        closed = self.config.closed_value
        is_open = present is not None and present != float(closed)
        self.valve = MinOnOffTimes(self._cycling(), state=is_open, since=now.monotonic)
        self._band.output = is_open

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = self._t = now.monotonic
        conductivity = self._conductivity = number(snapshot, cfg.conductivity)
        if cfg.makeup_flow is not None:
            self._makeup = number(snapshot, cfg.makeup_flow)
        if cfg.blowdown_flow is not None:
            self._blowdown = number(snapshot, cfg.blowdown_flow)
        want = self._band.update(conductivity)
        decision = self.valve.request(t, want)
        reason = f"conductivity {conductivity:.0f} uS/cm, band {cfg.close_at:g}-{cfg.open_at:g}" + (
            f", {decision.reason}" if decision.deferred else ""
        )
        open_s = t - self.valve.since if self.valve.state else 0.0
        if self.valve.state and open_s >= cfg.max_open:
            self.set_alarm(
                "bleed_time_limit",
                True,
                f"bleed valve open for {format_duration(round(open_s))}, over its limit of"
                f" {format_duration(cfg.max_open)}: a stuck valve or sensor, or a fault",
                {"open_s": round(open_s), "conductivity_us_cm": round(conductivity, 1)},
            )
        else:
            self.set_alarm("bleed_time_limit", False)
        if self._over.update(conductivity):
            self.set_alarm(
                "conductivity_high",
                True,
                f"tower conductivity {conductivity:.0f} uS/cm over its limit {cfg.limit_us_cm:g}",
                {"conductivity_us_cm": round(conductivity, 1), "limit_us_cm": cfg.limit_us_cm},
            )
        else:
            self.set_alarm("conductivity_high", False)
        value = cfg.open_value if self.valve.state else cfg.closed_value
        return [self.propose(cfg.valve, value, reason)]

    def estimates(self) -> dict[str, float | None]:
        """Cycles of concentration and, with a makeup flow, the mass balance at them."""
        cfg = self.config
        if self._conductivity is None or cfg.makeup_us_cm is None:
            return {"cycles": None}
        cycles = cycles_of_concentration(self._conductivity, cfg.makeup_us_cm)
        out: dict[str, float | None] = {"cycles": round(cycles, 3)}
        if self._makeup is not None and cycles > 1:
            # Makeup = evaporation + blowdown (+ drift, leaks); without a blowdown meter, at
            # steady state blowdown + drift = makeup / C and the rest evaporates.
            if self._blowdown is not None:
                evaporation = max(0.0, self._makeup - self._blowdown)
            else:
                evaporation = self._makeup * (1 - 1 / cycles)
            out["evaporation_m3_h"] = round(evaporation, 4)
            out["blowdown_m3_h"] = round(blowdown_for_cycles(evaporation, cycles), 4)
            limit_cycles = cycles_of_concentration(cfg.open_at, cfg.makeup_us_cm)
            if limit_cycles > 1:
                out["makeup_at_band_m3_h"] = round(makeup_for_cycles(evaporation, limit_cycles), 4)
        return out

    def detail(self) -> dict[str, Any]:
        return {
            "conductivity_us_cm": rounded(self._conductivity, 1),
            "open_at_us_cm": self.config.open_at,
            "close_at_us_cm": self.config.close_at,
            "valve_open": self.valve.state,
            "open_s": round(self._t - self.valve.since) if self.valve.state else 0,
            **self.estimates(),
        }

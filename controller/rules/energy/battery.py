"""What the battery rules share (battery_peak_shaving, pv_self_consumption, battery_schedule): the
battery's inputs and its one output, the load the site would draw with the battery idle, the
kW-to-rate conversion of a SunSpec model 124 setpoint. The device's revert timer is kept from
handing the battery back to its local program by the actuator's refresh of the setpoint
(actuation.outputs), not here. docs/rules.md, "Battery rules", gives the method and the sources
(OpenEMS' ESS controllers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from controller.model import Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import DomainRule, rounded
from controller.rules.rule import Now, Proposal, number

# A setpoint in % of the power limit, as SunSpec 124's OutWRte holds it (InOutWRte_SF -1).
RATE_DIGITS = 1


class BatteryControlConfig(RuleCommon):
    """The battery a rule drives: what it reads, what it writes and the limits it keeps."""

    # The site's grid power in kW, + import, with the battery's own power in it (the meter).
    power: TagKey
    # The battery's AC power in kW, + discharging into the site (SunSpec 103 W).
    battery_power: TagKey
    # State of charge in % (SunSpec 124 ChaState).
    soc: TagKey
    # The rate written: % of max_discharge_kw, + discharge; below 0 % of max_charge_kw, charge
    # (SunSpec 124 OutWRte). Its min/max/max_step (the ramp) and fallback are the tag's.
    setpoint: TagKey
    max_discharge_kw: float = Field(gt=0)
    max_charge_kw: float = Field(gt=0)
    # Never discharges at or below this SoC.
    reserve_pct: float = Field(ge=0, lt=100)
    # Never charges at or above this SoC.
    soc_max_pct: float = Field(95.0, gt=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _refresh_moved(cls, data: Any) -> Any:
        # The rule's own refresh (a nudge of the rate) gave way to the actuator's: say where.
        if isinstance(data, Mapping):
            for key in ("refresh", "refresh_step_pct"):
                if key in data:
                    raise ValueError(
                        f"{key}: a held rate is written again by the actuator now: set "
                        f"actuation.outputs.<setpoint tag>.refresh (e.g. 10s) instead"
                    )
        return data

    @model_validator(mode="after")
    def _battery_consistent(self) -> BatteryControlConfig:
        if self.reserve_pct >= self.soc_max_pct:
            raise ValueError("reserve_pct must be below soc_max_pct: the battery could never move")
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        return [("power", self.power), ("battery_power", self.battery_power), ("soc", self.soc)]

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [("setpoint", self.setpoint, None)]


@dataclass
class BatteryReading:
    """One cycle's view: the site's load with the battery idle (`load_kw`, + import) and SoC."""

    load_kw: float
    soc_pct: float


def read_battery(config: BatteryControlConfig, snapshot: Mapping[str, Sample]) -> BatteryReading:
    """The load the site would draw with the battery idle: the meter plus the battery's own
    discharge. Deciding on it, never on the meter alone, keeps the battery's effect out of its
    own decision (no oscillation)."""
    return BatteryReading(
        load_kw=number(snapshot, config.power) + number(snapshot, config.battery_power),
        soc_pct=number(snapshot, config.soc),
    )


def within_limits(config: BatteryControlConfig, kw: float, soc_pct: float) -> tuple[float, str]:
    """`kw` (+ discharge) cut to the power limits and the SoC window, and what cut it."""
    if kw > 0 and soc_pct <= config.reserve_pct:
        return 0.0, f"SoC {soc_pct:.1f} % at the reserve {config.reserve_pct:g} %"
    if kw < 0 and soc_pct >= config.soc_max_pct:
        return 0.0, f"SoC {soc_pct:.1f} % at soc_max {config.soc_max_pct:g} %"
    if kw > config.max_discharge_kw:
        return config.max_discharge_kw, f"max_discharge_kw {config.max_discharge_kw:g}"
    if kw < -config.max_charge_kw:
        return -config.max_charge_kw, f"max_charge_kw {config.max_charge_kw:g}"
    return kw, ""


def rate_pct(config: BatteryControlConfig, kw: float) -> float:
    """The setpoint for `kw` (+ discharge): % of the discharge limit, or of the charge limit."""
    limit = config.max_discharge_kw if kw >= 0 else config.max_charge_kw
    return round(100.0 * kw / limit, RATE_DIGITS)


class BatteryRule(DomainRule):
    """A rule that drives the battery's rate: the proposal in % and the state it publishes."""

    config: BatteryControlConfig

    def __init__(self, config: BatteryControlConfig, kind: str) -> None:
        super().__init__(config, kind)
        self.config = config
        self.state = "waiting"
        self.reading: BatteryReading | None = None
        self.wanted_kw: float | None = None
        self.cut = ""

    def propose_kw(self, kw: float, now: Now, reason: str) -> Proposal:
        """The rate for `kw`. A rate held unchanged is renewed on the device by the actuator
        (`actuation.outputs.<setpoint>.refresh`), not by the rule."""
        del now  # kept in the signature: subclasses and callers pass the cycle's time
        return self.propose(self.config.setpoint, rate_pct(self.config, kw), reason)

    def detail(self) -> dict[str, Any]:
        reading = self.reading
        return {
            "state": self.state,
            "load_kw": None if reading is None else rounded(reading.load_kw, 2),
            "soc_pct": None if reading is None else rounded(reading.soc_pct, 2),
            "battery_kw": rounded(self.wanted_kw, 2),
            "limited_by": self.cut,
        }

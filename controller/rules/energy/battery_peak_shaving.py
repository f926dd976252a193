"""Battery peak shaving, as OpenEMS' Controller.Ess.PeakShaving does it: discharge what the site
would draw above `limit_kw`, recharge while it draws less than `recharge_kw`, keep the SoC
reserve. Optionally (decided, issue 15) shaving the billing window's average instead of every
instant, and running the inverter only in its efficient region (a least discharge and a least
recharge power), because the part-load losses of a C&I inverter otherwise eat the saving.
Its prices are the config's top-level `tariff:` (the scheduler's and the bill's), handed to it
when rules are built. docs/rules.md, "battery_peak_shaving", gives the method, sources and
parameters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from controller.configtypes import PositiveDuration
from controller.model import Sample
from controller.rules.demand import DemandWindow, DemandWindowConfig, metered_power_window
from controller.rules.domain import rounded
from controller.rules.energy.battery import (
    BatteryControlConfig,
    BatteryRule,
    read_battery,
    within_limits,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.schedule import TimeZoneName

if TYPE_CHECKING:
    # Its module imports the rules' config (tag keys); the rule only reads the tariff handed.
    from controller.scheduler.config import TariffConfig


class TariffMissingError(ValueError):
    """dear_recharge_soc_pct set, and no tariff handed to the rule (the config check refuses
    such a config first: rules[i].dear_recharge_soc_pct)."""


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
    # The billing window whose average is kept at limit_kw (fixed, on the clock of `timezone`);
    # None: every instant above limit_kw is shaved (OpenEMS).
    window: PositiveDuration | None = None
    timezone: TimeZoneName = "UTC"
    # The least discharge: a smaller need is met by this much (in a window, in pulses), so the
    # inverter is not run where its part-load losses take most of what it gives. 0: any.
    shave_min_kw: float = Field(0.0, ge=0)
    # The least recharge: below recharge_kw the battery charges at least this much (never
    # taking the site's import above limit_kw), in the inverter's efficient region. 0: the
    # difference to recharge_kw only (OpenEMS).
    recharge_min_kw: float = Field(0.0, ge=0)
    # While the price now (the config's top-level tariff:) is above the tariff's lowest, the
    # grid recharges the battery only up to this SoC (what the next peak needs); above it only
    # the PV surplus charges it. The rest is bought in the cheapest window. None: the price
    # makes no difference.
    dear_recharge_soc_pct: float | None = Field(None, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _tariff_moved(cls, data: Any) -> Any:
        # The rule's own price windows (session 5) gave way to the config's one tariff: say
        # where, rather than "extra inputs are not permitted".
        if isinstance(data, Mapping) and "tariff" in data:
            raise ValueError(
                "tariff: the rule's price windows moved to the config's top-level tariff:"
                " (docs/configuration.md, `tariff` and `scheduler`), which the scheduler and"
                " cellcheck read too: give each period its price_per_kwh there, remove it here"
            )
        return data

    @model_validator(mode="after")
    def _thresholds(self) -> BatteryPeakShavingConfig:
        if self.recharge_kw >= self.limit_kw:
            raise ValueError(
                "recharge_kw must be below limit_kw: the battery would recharge into the peak"
            )
        if self.shave_min_kw > self.max_discharge_kw:
            raise ValueError("shave_min_kw must not be above max_discharge_kw")
        if self.recharge_min_kw > self.max_charge_kw:
            raise ValueError("recharge_min_kw must not be above max_charge_kw")
        if self.window is not None:
            self.demand_config()  # a window that does not divide the hour is refused here
        return self

    def demand_config(self) -> DemandWindowConfig:
        """The billing window the battery keeps, fed with the meter's power."""
        return metered_power_window(self.window, self.timezone)


class BatteryPeakShaving(BatteryRule):
    """Peak shaving with the battery, every cycle on the site's load with the battery idle."""

    config: BatteryPeakShavingConfig

    def __init__(
        self, config: BatteryPeakShavingConfig, tariff: TariffConfig | None = None
    ) -> None:
        """`tariff`: the config's top-level one, for dear_recharge_soc_pct (required with it)."""
        super().__init__(config, "battery_peak_shaving")
        self.config = config
        self.demand = None if config.window is None else DemandWindow(config.demand_config())
        self.window_kw: float | None = None  # the window's average if the battery rests now
        if config.dear_recharge_soc_pct is not None and tariff is None:
            raise TariffMissingError(
                f"rule {config.name}: dear_recharge_soc_pct needs the config's tariff:"
            )
        self.tariff = tariff
        self._zone = ZoneInfo(tariff.timezone if tariff is not None else "UTC")
        self.price: float | None = None  # the price now (with a tariff)

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        reading = self.reading = read_battery(cfg, snapshot)
        load = reading.load_kw
        if self.tariff is not None:
            local = datetime.fromtimestamp(now.wall_ms / 1000, UTC).astimezone(self._zone)
            self.price = self.tariff.price_at(local)[0]
        excess = self._excess(load, number(snapshot, cfg.power), now)
        if excess > 0:
            self.state = "shaving"
            kw, self.cut = within_limits(cfg, max(excess, cfg.shave_min_kw), reading.soc_pct)
            reason = f"load {load:.1f} kW above limit {cfg.limit_kw:g} kW"
            if self.window_kw is not None:
                reason += f" (window average {self.window_kw:.1f} kW if the battery rests)"
        elif load < cfg.recharge_kw:
            self.state = "recharging"
            wanted = load - cfg.recharge_kw
            if cfg.recharge_min_kw > -wanted:
                wanted = -min(cfg.recharge_min_kw, cfg.limit_kw - load)
            reason = f"load {load:.1f} kW below recharge {cfg.recharge_kw:g} kW"
            if self._dear(reading.soc_pct):
                wanted = max(wanted, min(0.0, load))  # the PV surplus only
                reason += f"; price {self.price:g} above the lowest: PV surplus only"
            kw, self.cut = within_limits(cfg, wanted, reading.soc_pct)
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

    def _dear(self, soc_pct: float) -> bool:
        """Whether grid recharge waits for a cheaper window: the price now is above the
        tariff's lowest and the SoC is at or above dear_recharge_soc_pct."""
        floor = self.config.dear_recharge_soc_pct
        if floor is None or self.price is None or self.tariff is None:
            return False
        return soc_pct >= floor and self.price > self.tariff.lowest_price_per_kwh

    def _excess(self, load: float, meter: float, now: Now) -> float:
        """The discharge that keeps the limit: what the load is above it now, or with a window
        the constant discharge over the rest of the window that brings its average to the
        limit (the energy used so far, the present load for the rest). <= 0: none needed."""
        if self.demand is None:
            return load - self.config.limit_kw
        self.demand.add_power(now.wall_ms, meter)
        window = self.demand.reading(now.wall_ms, power_kw=load)
        self.window_kw = window.predicted_kw
        if window.remaining_s <= 0:
            return load - self.config.limit_kw
        length = window.elapsed_s + window.remaining_s
        return (window.predicted_kw - self.config.limit_kw) * length / window.remaining_s

    def detail(self) -> dict[str, Any]:
        detail = super().detail()
        if self.demand is not None:
            detail["window_kw"] = rounded(self.window_kw, 2)
        if self.tariff is not None:
            detail["price"] = self.price
        return detail

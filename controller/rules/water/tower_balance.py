"""A cooling tower's water balance: water that leaves the tower unmetered (a basin or
tower-side leak) is found from the makeup meter, the bleed and the conductivities, with its
estimate in the alarm. docs/rules.md, "tower_balance", gives the method, source and parameters.

The relations (FEMP Best Management Practice #10; CTI): makeup M = evaporation E + bleed B +
drift D + leak L. Evaporation leaves the solids behind; everything else leaves at the tower's
concentration. With C_t the tower's and C_m the makeup's conductivity and V the system volume:

    V dC_t/dt = M C_m - (B + D + L) C_t                         (solids balance)

At steady state the cycles of concentration N = C_t / C_m = M / (B + D + L), so without a leak
M = (B + D) N and M = E N / (N - 1) (blowdown B + D = E / (N - 1)). Integrated over a window:

    L = (C_m * integral(M) - integral((B + D) C_t) - V * delta C_t) / integral(C_t)

which needs no evaporation estimate and holds while the conductivity moves (a bleed closed
and the conductivity falling is the signature of a leak: with B = 0, dC_t/dt < 0 means water
leaves at tower concentration faster than M / N).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.alarms import DeclaredAlarm, Indicates, declare
from controller.configtypes import Duration, PositiveDuration, format_duration
from controller.model import Sample
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.domain import DomainRule, rounded
from controller.rules.rule import Now, Proposal, number
from controller.rules.steps import EstimateSteps
from controller.rules.water.tower_chemistry import cycles_of_concentration

_HOUR = 3600.0


class TowerBalanceConfig(RuleCommon):
    """Alarm when the tower loses more water at tower concentration than bleed and drift."""

    kind: Literal["tower_balance"]
    makeup_flow: TagKey  # m3/h
    conductivity: TagKey  # tower water, uS/cm
    makeup_us_cm: float = Field(gt=0)  # makeup water conductivity
    blowdown_flow: TagKey | None = None  # bleed meter, m3/h
    # Without a bleed meter: the bleed valve's position (percent, or a boolean: open is 100 %)
    # times the flow it passes fully open.
    bleed_valve: TagKey | None = None
    bleed_full_m3_h: float | None = Field(default=None, gt=0)
    drift_m3_h: float = Field(default=0.0, ge=0)  # drift losses (CTI: 0.002-0.2 % of circulation)
    volume_m3: float = Field(gt=0)  # system water: basin, piping, condenser
    window: PositiveDuration = 1200.0  # the balance is integrated over it
    threshold_m3_h: float = Field(gt=0)  # unaccounted loss that counts as a leak
    duration: Duration = 300.0

    @model_validator(mode="after")
    def _one_bleed(self) -> TowerBalanceConfig:
        valve = self.bleed_valve is not None and self.bleed_full_m3_h is not None
        if (self.blowdown_flow is not None) == valve:
            raise ValueError(
                "give the bleed as blowdown_flow (a meter) or as bleed_valve with"
                " bleed_full_m3_h, exactly one of them"
            )
        return self

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("makeup_flow", self.makeup_flow), ("conductivity", self.conductivity)]
        if self.blowdown_flow is not None:
            tags.append(("blowdown_flow", self.blowdown_flow))
        if self.bleed_valve is not None:
            tags.append(("bleed_valve", self.bleed_valve))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return []


@dataclass
class _Minute:
    """Integrals over one stretch (hours): makeup, (bleed + drift) x conductivity,
    conductivity; the mean conductivity for the slope."""

    end: float
    hours: float
    makeup: float
    out_conductivity: float
    conductivity: float


@dataclass(frozen=True, slots=True)
class Balance:
    """The window's balance, m3/h: the unaccounted loss and what it rests on."""

    leak_m3_h: float
    makeup_m3_h: float
    bleed_m3_h: float
    evaporation_m3_h: float
    cycles: float
    conductivity_trend_us_cm_h: float


class TowerBalance(DomainRule):
    """The tower's solids balance over `window`; an unaccounted loss of `threshold_m3_h` or
    more for `duration` raises `{rule}.leak` with its estimate."""

    config: TowerBalanceConfig
    STEP = 60.0
    # Water leaving the tower unmetered: the basin, the tower side (not the main's pipes).
    ALARMS = declare(leak=DeclaredAlarm(Indicates.WATER_LEAK, "cooling_tower"))

    def __init__(self, config: TowerBalanceConfig) -> None:
        super().__init__(config, "tower_balance")
        self.config = config
        self._minutes: deque[_Minute] = deque()
        self._open: _Minute | None = None
        self._last: tuple[float, float, float, float] | None = None  # t, makeup, out, cond
        self._above_since: float | None = None
        self._alarm = False
        self.balance: Balance | None = None
        self._steps = EstimateSteps(config.threshold_m3_h, config.duration, config.window)

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # A gap in the readings: the integrals start again; the alarm stays latched.
        self._minutes.clear()
        self._open = None
        self._last = None
        self._above_since = None

    def bleed(self, snapshot: Mapping[str, Sample]) -> float:
        cfg = self.config
        if cfg.blowdown_flow is not None:
            return max(0.0, number(snapshot, cfg.blowdown_flow))
        if cfg.bleed_valve is None or cfg.bleed_full_m3_h is None:  # refused at validate
            return 0.0
        position = number(snapshot, cfg.bleed_valve)
        sample = snapshot.get(cfg.bleed_valve)
        boolean = sample is not None and isinstance(sample.value, bool)
        fraction = position if boolean else position / 100
        return min(1.0, max(0.0, fraction)) * cfg.bleed_full_m3_h

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        t = now.monotonic
        makeup = max(0.0, number(snapshot, cfg.makeup_flow))
        conductivity = number(snapshot, cfg.conductivity)
        out = self.bleed(snapshot) + cfg.drift_m3_h
        self._integrate(t, makeup, out, conductivity)
        self.balance = balance = self._balance()
        if balance is not None and balance.leak_m3_h >= cfg.threshold_m3_h:
            if self._above_since is None:
                self._above_since = t
            if t - self._above_since >= cfg.duration:
                self._alarm = True
        else:
            self._above_since = None
            if balance is not None and balance.leak_m3_h < cfg.threshold_m3_h / 2:
                self._alarm = False
        if self._alarm and balance is not None:
            steps = self._steps.update(t, True, balance.leak_m3_h)
            self.set_alarm(
                "leak",
                True,
                f"cooling tower loses {balance.leak_m3_h:.2f} m3/h that bleed and drift do not"
                f" explain (makeup {balance.makeup_m3_h:.2f} m3/h, bleed"
                f" {balance.bleed_m3_h:.2f} m3/h, {balance.cycles:.1f} cycles, conductivity"
                f" {balance.conductivity_trend_us_cm_h:+.0f} uS/cm per h): probable basin or"
                " tower-side leak",
                {
                    "leak_m3_h": round(balance.leak_m3_h, 3),
                    "makeup_m3_h": round(balance.makeup_m3_h, 3),
                    "bleed_m3_h": round(balance.bleed_m3_h, 3),
                    "drift_m3_h": cfg.drift_m3_h,
                    "evaporation_m3_h": round(balance.evaporation_m3_h, 3),
                    "cycles": round(balance.cycles, 2),
                    "conductivity_trend_us_cm_h": round(balance.conductivity_trend_us_cm_h, 1),
                    "basis": f"solids balance over {format_duration(cfg.window)}: makeup x"
                    " makeup conductivity = (bleed + drift + leak) x tower conductivity"
                    " + volume x conductivity change",
                },
                steps=steps,
            )
        elif not self._alarm:
            self._steps.update(t, False, None)
            self.set_alarm("leak", False)
        return []

    def _integrate(self, t: float, makeup: float, out: float, conductivity: float) -> None:
        last = self._last
        self._last = (t, makeup, out, conductivity)
        if last is None:
            return
        last_t, last_makeup, last_out, last_conductivity = last
        hours = (t - last_t) / _HOUR
        minute = self._open
        if minute is None:
            minute = self._open = _Minute(last_t, 0.0, 0.0, 0.0, 0.0)
        minute.hours += hours
        minute.makeup += last_makeup * hours
        minute.out_conductivity += last_out * last_conductivity * hours
        minute.conductivity += last_conductivity * hours
        minute.end = t
        if minute.hours * _HOUR >= self.STEP:
            self._minutes.append(minute)
            self._open = None
        while self._minutes and self._minutes[0].end <= t - self.config.window:
            self._minutes.popleft()

    def _balance(self) -> Balance | None:
        """The balance over the window, once the window is covered."""
        minutes = self._minutes
        if len(minutes) < 3:
            return None
        hours = sum(m.hours for m in minutes)
        if hours * _HOUR < self.config.window - 2 * self.STEP:
            return None
        cfg = self.config
        makeup = sum(m.makeup for m in minutes)
        out_conductivity = sum(m.out_conductivity for m in minutes)
        conductivity = sum(m.conductivity for m in minutes)
        if conductivity <= 0:
            return None
        trend = _slope([(m.end / _HOUR, m.conductivity / m.hours) for m in minutes])
        stored = cfg.volume_m3 * trend * hours  # V x change of conductivity over the window
        leak = (cfg.makeup_us_cm * makeup - out_conductivity - stored) / conductivity
        mean_conductivity = conductivity / hours
        bleed = out_conductivity / conductivity - cfg.drift_m3_h
        return Balance(
            leak_m3_h=leak,
            makeup_m3_h=makeup / hours,
            bleed_m3_h=bleed,
            evaporation_m3_h=makeup / hours - bleed - cfg.drift_m3_h - leak,
            cycles=cycles_of_concentration(mean_conductivity, cfg.makeup_us_cm),
            conductivity_trend_us_cm_h=trend,
        )

    def detail(self) -> dict[str, Any]:
        balance = self.balance
        return {
            "leak_m3_h": rounded(None if balance is None else balance.leak_m3_h),
            "makeup_m3_h": rounded(None if balance is None else balance.makeup_m3_h),
            "bleed_m3_h": rounded(None if balance is None else balance.bleed_m3_h),
            "evaporation_m3_h": rounded(None if balance is None else balance.evaporation_m3_h),
            "cycles": rounded(None if balance is None else balance.cycles, 2),
            "conductivity_trend_us_cm_h": rounded(
                None if balance is None else balance.conductivity_trend_us_cm_h, 1
            ),
            "leak": self._alarm,
        }


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (per hour here): a trend robust to sensor noise."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread

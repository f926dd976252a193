"""Peak shaving: keep the billing window's average demand under a limit by shedding loads in
order and restoring them last-shed-first. docs/rules.md, "peak_shaving", gives the method and
its parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, Name, PositiveDuration, StrictModel, format_duration
from controller.model import Sample
from controller.rules.blocks import NoSampleError
from controller.rules.config import OutputValue, RuleCommon, TagKey
from controller.rules.demand import DemandReading, DemandWindow, DemandWindowConfig
from controller.rules.domain import (
    DomainRule,
    rounded,
)
from controller.rules.rule import Now, Proposal, number
from controller.rules.schedule import TimeZoneName

_HOUR = 3600.0


class ShedLoad(StrictModel):
    """One load the rule may shed: a tag it writes `shed_value` to (false: switch off; a
    number: a setpoint that draws less, e.g. a chiller setpoint raised), and the kW that
    saves."""

    name: Name
    tag: TagKey
    kw: float = Field(gt=0)
    shed_value: OutputValue
    # Proposed while the load is not shed; null: nothing is proposed (the tag goes back to
    # the rule or PLC that normally drives it).
    restore_value: OutputValue | None = None
    min_shed: Duration = 0.0
    max_shed: PositiveDuration | None = None
    min_between: Duration = 0.0


class PeakShavingConfig(RuleCommon):
    """Keep the billing window's average demand under `limit_kw` - `margin_kw`."""

    kind: Literal["peak_shaving"]
    power: TagKey  # present site load, kW
    energy: TagKey | None = None  # import counter, kWh (else the window integrates `power`)
    limit_kw: float = Field(gt=0)
    margin_kw: float = Field(default=0.0, ge=0)
    hysteresis_kw: float = Field(default=0.0, ge=0)
    window: PositiveDuration = 900.0
    alignment: Literal["fixed", "sliding"] = "fixed"
    horizon: Duration = 0.0  # sliding: how far ahead the window's end is predicted
    timezone: TimeZoneName = "UTC"
    loads: list[ShedLoad] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PeakShavingConfig:
        if self.margin_kw >= self.limit_kw:
            raise ValueError("margin_kw must be smaller than limit_kw")
        if self.alignment == "sliding" and self.horizon <= 0:
            raise ValueError(
                "a sliding window needs a horizon (e.g. 5min): the rule predicts the average"
                " of the window ending that far ahead"
            )
        names = [load.name for load in self.loads]
        if len(set(names)) != len(names):
            raise ValueError(f"loads: names repeat: {names}")
        tags = [load.tag for load in self.loads]
        if len(set(tags)) != len(tags):
            raise ValueError(f"loads: two loads write the same tag: {tags}")
        for load in self.loads:
            if load.max_shed is not None and load.max_shed < load.min_shed:
                raise ValueError(f"loads.{load.name}: max_shed is shorter than min_shed")
        self.demand_config()
        return self

    @property
    def target_kw(self) -> float:
        return self.limit_kw - self.margin_kw

    def demand_config(self) -> DemandWindowConfig:
        settings: dict[str, Any] = {
            "source": "energy" if self.energy is not None else "power",
            "window": format_duration(self.window),
            "alignment": self.alignment,
            "timezone": self.timezone,
        }
        if self.alignment == "sliding":
            settings["horizon"] = format_duration(self.horizon)
        return DemandWindowConfig.model_validate(settings)

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("power", self.power)]
        if self.energy is not None:
            tags.append(("energy", self.energy))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = []
        for i, load in enumerate(self.loads):
            values.append((f"loads[{i}].shed_value", load.tag, load.shed_value))
            if load.restore_value is not None:
                values.append((f"loads[{i}].restore_value", load.tag, load.restore_value))
        return values


@dataclass
class _Shed:
    load: ShedLoad
    since: float | None = None  # monotonic time it was shed; None: not shed
    restored_at: float = -math.inf
    sheds: int = 0


class PeakShaving(DomainRule):
    """Each cycle: the window's average predicted from the energy used so far plus the
    uncontrolled load (measured + what is shed now) for the rest of the window; loads shed in
    list order until what is shed covers the excess, restored last-shed-first when the rest
    still covers it with `hysteresis_kw` to spare."""

    config: PeakShavingConfig

    def __init__(self, config: PeakShavingConfig) -> None:
        super().__init__(config, "peak_shaving")
        self.config = config
        self._restart()

    def _restart(self) -> None:
        self.window = DemandWindow(self.config.demand_config())
        self._loads = [_Shed(load) for load in self.config.loads]
        self._order: list[_Shed] = []  # shed loads, in the order they were shed
        self._last_ts: int | None = None
        self._reading: DemandReading | None = None
        self._measured_kw: float | None = None
        self._needed_kw: float | None = None
        self._uncontrolled_kw: float | None = None

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:
        # After a stop every load went back to its fallback: nothing is shed any more.
        self._restart()

    @property
    def shed_loads(self) -> list[str]:
        return [shed.load.name for shed in self._order]

    @property
    def shed_kw(self) -> float:
        return sum(shed.load.kw for shed in self._order)

    def _feed(self, snapshot: Mapping[str, Sample], power_kw: float) -> None:
        cfg = self.config
        if cfg.energy is not None:
            ts = snapshot[cfg.energy].source_ts
            if self._last_ts is None or ts > self._last_ts:
                self.window.add_energy(ts, number(snapshot, cfg.energy))
                self._last_ts = ts
            return
        ts = snapshot[cfg.power].source_ts
        if self._last_ts is None or ts > self._last_ts:
            self.window.add_power(ts, power_kw)
            self._last_ts = ts

    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        cfg = self.config
        measured = number(snapshot, cfg.power)
        self._measured_kw = measured
        self._feed(snapshot, measured)
        t = now.monotonic
        # The measurement saw the loads shed until now. In shadow mode nothing is really shed:
        # the measurement is the uncontrolled load.
        counted = self.shed_kw if self.mode == "auto" else 0.0
        uncontrolled = measured + counted
        for shed in list(reversed(self._order)):
            limit = shed.load.max_shed
            if limit is not None and shed.since is not None and t - shed.since >= limit:
                self._restore(shed, t)
        self._uncontrolled_kw = uncontrolled
        try:
            reading = self.window.reading(now.wall_ms, power_kw=uncontrolled)
        except NoSampleError:
            return self._proposals("waiting for a second energy reading")
        self._reading = reading
        # The window ends at the target when E + (P_u - S) * R + target * U = target * W, with E
        # the energy over the covered time C, R the time left and U = W - C - R the past the
        # data does not cover (a controller started mid-window), taken at the target itself:
        # filled with the measured (controlled) average, it would feed the sheds back into the
        # prediction and make them chatter. So the shed S needed is:
        remaining = max(reading.remaining_s, 1.0)
        needed = (
            uncontrolled
            - cfg.target_kw
            + (reading.energy_kwh * _HOUR - cfg.target_kw * reading.covered_s) / remaining
        )
        self._needed_kw = needed
        if needed > self.shed_kw:
            for shed in self._loads:
                if self.shed_kw >= needed:
                    break
                if shed.since is None and t - shed.restored_at >= shed.load.min_between:
                    shed.since = t
                    shed.sheds += 1
                    self._order.append(shed)
        elif self._order:
            last = self._order[-1]
            held = t - (last.since or t) < last.load.min_shed
            if not held and self.shed_kw - last.load.kw >= needed + cfg.hysteresis_kw:
                self._restore(last, t)
        return self._proposals(
            f"predicted {reading.predicted_kw:.1f} kW uncontrolled against {cfg.target_kw:g} kW:"
            f" {needed:.1f} kW to shed, {self.shed_kw:g} kW shed"
        )

    def _restore(self, shed: _Shed, t: float) -> None:
        shed.since = None
        shed.restored_at = t
        self._order.remove(shed)

    def _proposals(self, reason: str) -> list[Proposal]:
        out: list[Proposal] = []
        for shed in self._loads:
            load = shed.load
            if shed.since is not None:
                out.append(self.propose(load.tag, load.shed_value, f"shed {load.name}: {reason}"))
            elif load.restore_value is not None:
                out.append(self.propose(load.tag, load.restore_value, reason))
        return out

    def detail(self) -> dict[str, Any]:
        reading = self._reading
        remaining_share = 0.0 if reading is None else reading.remaining_s / self.config.window
        predicted_u = None if reading is None else reading.predicted_kw
        counted = self.shed_kw if self.mode == "auto" else 0.0
        return {
            "window_start": None if reading is None else reading.window_start_ms,
            "window_end": None if reading is None else reading.window_end_ms,
            "energy_kwh": rounded(None if reading is None else reading.energy_kwh),
            "average_kw": rounded(None if reading is None else reading.average_kw),
            "measured_kw": rounded(self._measured_kw),
            "uncontrolled_kw": rounded(self._uncontrolled_kw),
            "predicted_uncontrolled_kw": rounded(predicted_u),
            "predicted_kw": rounded(
                None if predicted_u is None else predicted_u - counted * remaining_share
            ),
            "target_kw": self.config.target_kw,
            "needed_kw": rounded(self._needed_kw),
            "shed_kw": self.shed_kw,
            "shed": self.shed_loads,
        }

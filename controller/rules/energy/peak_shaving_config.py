"""Peak shaving's configuration: the loads it may shed, the process variables each shed
endangers, and the window, limit and verdict settings (docs/rules.md, "peak_shaving"). Apart
from the rule so that the config's checks read on their own and other modules (cellcheck, the
cell generator's tests) take the config without the rule."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from controller.configtypes import Duration, Name, PositiveDuration, StrictModel, format_duration
from controller.rules.common import OutputValue, RuleCommon, TagKey
from controller.rules.demand import DemandWindowConfig
from controller.rules.energy.requirement import OneSidedLimit
from controller.rules.schedule import TimeZoneName


class ProcessLimit(OneSidedLimit):
    """A process variable a shed endangers: `tag` must stay under `max` (a process return
    temperature) or over `min` (a tank's minimum, a far-end pressure). The shed is released
    once the variable is within `guard` of its limit, or when its present rate would take it
    to the limit within `lead`; the load is not shed while either holds."""

    guard: float = Field(gt=0)

    def endangered(self, value: float, rate: float) -> str | None:
        """Why the variable is too near its limit for a shed, or None. `rate`: per second."""
        return self.near(value, rate, self.guard)


class ShedLoad(StrictModel):
    """One load the rule may shed: a tag it writes `shed_value` to (false: switch off; a
    number: a setpoint that draws less, e.g. a chiller setpoint raised), and the kW that
    saves."""

    name: Name
    tag: TagKey
    kw: float = Field(gt=0)
    shed_value: OutputValue
    # The load's own draw, kW (a charger's power, a heater's): a shed saves what the load drew
    # when it was shed (at most `kw`), and a load drawing next to nothing (a charger without a
    # car, a heater whose thermostat is satisfied) is not shed. None: a shed saves `kw`.
    power: TagKey | None = None
    # Proposed while the load is not shed; null: nothing is proposed (the tag goes back to
    # the rule or PLC that normally drives it).
    restore_value: OutputValue | None = None
    min_shed: Duration = 0.0
    max_shed: PositiveDuration | None = None
    min_between: Duration = 0.0
    # The process variables this shed endangers; the shed is released before any reaches its
    # limit.
    limits: list[ProcessLimit] = Field(default_factory=list)


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
    # Least time between two restores: loads come back one at a time, so that the site's load
    # ramps up instead of jumping.
    restore_gap: Duration = 60.0
    # When all loads together cannot keep the limit: `release` the sheds (they cannot keep it),
    # or `shed` anyway to lower the peak the window sets (a penalty per kW over the limit).
    when_unreachable: Literal["release", "shed"] = "release"
    # Least time the limit stays unreachable once said (None: one window): the site's load
    # swings with the machines' cycles, and a verdict on each swing would flap.
    unreachable_dwell: Duration | None = None
    # `month`: a window average above the limit already set this calendar month is what the
    # bill charges; later windows are kept under that peak, not under the limit (fixed windows
    # only). `ignore`: every window is kept under the limit (a connection capacity).
    peak_already_set: Literal["month", "ignore"] = "month"
    # A load with `limits` is shed only when it can stay shed to the window's end (its
    # `max_shed` and the time its last shed held before its process ended it both cover the
    # window's remaining time: a shed released within its window pays its debt back in it),
    # and while no other load with limits is shed (their releases, at a window's end, would
    # come back together). False: shed whenever it helps now (the rule before).
    hold_through_window: bool = True
    # A restore whose load could not be shed again from the next window's start (its
    # `min_between` outlasts this window) also needs room in the next window at the last window
    # length's mean load, for as long as it draws there unopposed. False (the default): the
    # present window's room alone (the rule before; docs/rules.md says why it is not the
    # default).
    judge_next_window: bool = False
    # What the unreachable verdict counts as sheddable: every load (`all`, the default) or only
    # those that can be shed `now` (not waiting out `min_between`, not held by a process limit).
    # docs/rules.md says why `now` is not the default.
    sheddable: Literal["all", "now"] = "all"
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

    @property
    def dwell_s(self) -> float:
        return self.window if self.unreachable_dwell is None else self.unreachable_dwell

    @property
    def counts_peak_set(self) -> bool:
        return self.peak_already_set == "month" and self.alignment == "fixed"

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
        for i, load in enumerate(self.loads):
            if load.power is not None:
                tags.append((f"loads[{i}].power", load.power))
            for j, limit in enumerate(load.limits):
                tags.append((f"loads[{i}].limits[{j}].tag", limit.tag))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = []
        for i, load in enumerate(self.loads):
            values.append((f"loads[{i}].shed_value", load.tag, load.shed_value))
            if load.restore_value is not None:
                values.append((f"loads[{i}].restore_value", load.tag, load.restore_value))
        return values

    def handed_back(self) -> list[tuple[str, str]]:
        # A load released for a process limit without a restore value is only released if
        # another rule (the chilled-water reset) takes its tag back.
        return [
            (f"loads[{i}].restore_value", load.tag)
            for i, load in enumerate(self.loads)
            if load.limits and load.restore_value is None
        ]

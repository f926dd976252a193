"""The `rules:` and `actuation:` sections of the config: the generic rule kinds (threshold, pid,
schedule), the write path's settings, and the check that every rule names tags that exist and
writes only tags declared writable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from controller.configtypes import (
    Duration,
    Name,
    PositiveDuration,
    StrictModel,
    WriteLimits,
    format_duration,
)
from controller.rules.catalog import DomainRuleConfig
from controller.rules.common import (
    OutputValue,
    RuleCommon,
    TagKey,
)
from controller.rules.cycling import MinOnOffConfig
from controller.rules.pid import PIDConfig
from controller.rules.schedule import ScheduleConfig


class Condition(StrictModel):
    """`tag` above (or below) a level; released with hysteresis at `release`."""

    tag: TagKey
    above: float | None = None
    below: float | None = None
    release: float

    @model_validator(mode="after")
    def _one_direction(self) -> Condition:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above: or below:")
        if self.above is not None and not self.release < self.above:
            raise ValueError(
                f"release ({self.release}) must be below above ({self.above}): "
                "the gap is the hysteresis"
            )
        if self.below is not None and not self.release > self.below:
            raise ValueError(
                f"release ({self.release}) must be above below ({self.below}): "
                "the gap is the hysteresis"
            )
        return self


class ThresholdRuleConfig(RuleCommon):
    """When `when` has held for `for`, propose `set`; when it has been released for
    `release_after`, propose `otherwise` (or nothing: the outputs are released)."""

    kind: Literal["threshold"]
    when: Condition
    hold: Duration = Field(default=0.0, alias="for")
    release_after: Duration = 0.0
    set: dict[TagKey, OutputValue] = Field(min_length=1)
    otherwise: dict[TagKey, OutputValue] = Field(default_factory=dict)

    def input_tags(self) -> list[tuple[str, str]]:
        return [("when.tag", self.when.tag)]

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        values: list[tuple[str, str, OutputValue | None]] = [
            ("set", tag, value) for tag, value in self.set.items()
        ]
        return values + [("otherwise", tag, value) for tag, value in self.otherwise.items()]


class PidRuleConfig(RuleCommon):
    """Hold `measurement` at `setpoint` (a number or a tag) by writing `output`."""

    kind: Literal["pid"]
    measurement: TagKey
    setpoint: float | TagKey
    output: TagKey
    pid: PIDConfig

    def input_tags(self) -> list[tuple[str, str]]:
        tags = [("measurement", self.measurement)]
        if isinstance(self.setpoint, str):
            tags.append(("setpoint", self.setpoint))
        return tags

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [("output", self.output, None)]


class ScheduleRuleConfig(RuleCommon):
    """Per period of `schedule`, the values to propose; a period not listed proposes nothing."""

    kind: Literal["schedule"]
    schedule: ScheduleConfig
    set: dict[Name, dict[TagKey, OutputValue]] = Field(min_length=1)

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        return [
            (f"set.{period}", tag, value)
            for period, values in self.set.items()
            for tag, value in values.items()
        ]


RuleConfig = Annotated[
    ThresholdRuleConfig | PidRuleConfig | ScheduleRuleConfig | DomainRuleConfig,
    Field(discriminator="kind"),
]


class HeartbeatConfig(StrictModel):
    """A counter written to `tag` every `period`, so the PLC can tell the controller is alive
    and fall back to local control when it stops changing."""

    tag: TagKey
    period: PositiveDuration = 1.0
    # The counter wraps to 0 here; 32768 fits int16 and uint16 registers alike.
    modulo: int = Field(default=32768, ge=2)


def _heartbeats(value: Any) -> Any:
    """`heartbeat:` takes one mapping, a list of them (one per PLC), or null."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    return value


class OutputConfig(MinOnOffConfig):
    """Protection of one written tag beyond its WriteLimits: the minimum on and off times (and
    starts per hour) of equipment switched by a boolean tag, the read-back tolerance of a
    numeric one."""

    # Read-back may differ from the written value by this much (scaled integer registers round).
    tolerance: float = Field(default=0.0, ge=0)
    # A value held unchanged is written again at least this often (None: only changes are
    # written), for devices that drop a setpoint not renewed within a timeout (SunSpec 124
    # InOutWRte_RvrtTms). The rewrite passes the same checks as any write; a fallback is not
    # rewritten, so the device's own timeout still takes over when the rule stops.
    refresh: PositiveDuration | None = None

    @property
    def is_equipment(self) -> bool:
        return self.min_on > 0 or self.min_off > 0 or self.max_starts_per_hour is not None


class ActuationConfig(StrictModel):
    """How the one writer of the gateway behaves (docs/rules.md, "Safety of writes")."""

    cycle: PositiveDuration = 1.0
    heartbeat: Annotated[list[HeartbeatConfig], BeforeValidator(_heartbeats)] = Field(
        default_factory=list
    )
    # Operators may write tags over MQTT (cmd/write) only when this is true.
    manual_writes: bool = False
    # The longest override a manual write may ask for.
    manual_max_ttl: PositiveDuration = 3600.0
    # After a write, a sample of the tag must show the value within this time.
    verify_timeout: PositiveDuration = 5.0
    # Bound on one write to a device.
    write_timeout: PositiveDuration = 5.0
    outputs: dict[TagKey, OutputConfig] = Field(default_factory=dict)


# --- the check against the devices ------------------------------------------------------------


def tag_index(devices: Sequence[Any]) -> dict[str, WriteLimits]:
    """Every tag of every device by `device.tag`, with its write limits."""
    return {f"{device.name}.{tag.name}": tag for device in devices for tag in device.tags}


def _unknown(tag: str, devices: Sequence[Any]) -> str:
    device_name = tag.split(".", 1)[0]
    if not any(device.name == device_name for device in devices):
        return f"unknown tag {tag!r}: there is no device {device_name!r}"
    return f"unknown tag {tag!r}: device {device_name!r} has no such tag"


def _value_problem(tag: str, limits: WriteLimits, value: OutputValue) -> str | None:
    if isinstance(value, bool):
        return None
    if limits.min is not None and value < limits.min:
        return f"{value:g} for {tag} is below its min {limits.min:g}"
    if limits.max is not None and value > limits.max:
        return f"{value:g} for {tag} is above its max {limits.max:g}"
    return None


def check_closed_loop(
    rules: Sequence[RuleConfig], actuation: ActuationConfig, devices: Sequence[Any]
) -> str | None:
    """The first problem of the rules and actuation sections against the devices, as
    `path: message` (the loader turns the path into the item's line), or None."""
    tags = tag_index(devices)

    def output_problem(path: str, tag: str) -> str | None:
        limits = tags.get(tag)
        if limits is None:
            return f"{path}: {_unknown(tag, devices)}"
        if not limits.writable:
            return f"{path}: {tag} is not declared writable: add 'writable: true' to the tag"
        return None

    names: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in names:
            return f"rules[{i}].name: duplicate rule name {rule.name!r}"
        names.add(rule.name)
        if isinstance(rule, ScheduleRuleConfig):
            known = rule.schedule.period_names
            for period in rule.set:
                if period not in known:
                    return (
                        f"rules[{i}].set: the schedule has no period {period!r}; "
                        f"it has {sorted(known)}"
                    )
        for field, tag in rule.input_tags():
            if tag not in tags:
                return f"rules[{i}].{field}: {_unknown(tag, devices)}"
        for field, tag, value in rule.output_values():
            problem = output_problem(f"rules[{i}].{field}", tag)
            if problem is None and value is not None:
                value_problem = _value_problem(tag, tags[tag], value)
                problem = f"rules[{i}].{field}: {value_problem}" if value_problem else None
            if problem is not None:
                return problem
        if isinstance(rule, PidRuleConfig):
            limits = tags[rule.output]
            if limits.min is not None and rule.pid.out_min < limits.min:
                return (
                    f"rules[{i}].pid.out_min: {rule.pid.out_min:g} is below the min "
                    f"{limits.min:g} of {rule.output}: keep out_min/out_max inside its limits"
                )
            if limits.max is not None and rule.pid.out_max > limits.max:
                return (
                    f"rules[{i}].pid.out_max: {rule.pid.out_max:g} is above the max "
                    f"{limits.max:g} of {rule.output}: keep out_min/out_max inside its limits"
                )
    for j, heartbeat in enumerate(actuation.heartbeat):
        problem = output_problem(f"actuation.heartbeat[{j}].tag", heartbeat.tag)
        if problem is not None:
            return problem
    for tag in actuation.outputs:
        problem = output_problem("actuation.outputs", tag)
        if problem is not None:
            return problem
    for i, rule in enumerate(rules):
        for field, tag in rule.handed_back():
            if not any(
                other is not rule and any(t == tag for _, t, _ in other.output_values())
                for other in rules
            ):
                return (
                    f"rules[{i}].{field}: no other rule drives {tag}: released, it would keep"
                    f" the value last written; give it a restore value"
                )
    written = {tag for rule in rules for _, tag, _ in rule.output_values()}
    for device in devices:
        interval = getattr(device, "poll_interval", None)
        device_writes = any(tag.split(".", 1)[0] == device.name for tag in written)
        if device_writes and interval is not None and actuation.verify_timeout <= interval:
            return (
                f"actuation.verify_timeout: {format_duration(actuation.verify_timeout)} is not "
                f"longer than the poll_interval {format_duration(interval)} of device "
                f"{device.name!r}: a write could never be read back in time"
            )
    return None

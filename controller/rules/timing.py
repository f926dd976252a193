"""How long after the moment a rule decides its write can take effect on the plant: up to one
engine cycle until the rule runs and sees that the moment has come, the bound on the write
itself, and the poll of the written device that reads the value back. A rule that must act
*before* a known time (idle_standby waking a machine ahead of a scheduled start) adds this lag
to its lead; without it the machine is woken a cycle and a write too late, and production is
lost for those seconds (issue #14). The figures come from the gateway's config, so they hold
for any cycle and poll period a user sets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config module builds rules, so it cannot be imported here at run time
    from controller.rules.config import ActuationConfig


@dataclass(frozen=True)
class ControlTiming:
    """The engine's cycle, the bound on one write and each device's poll period, in seconds."""

    cycle_s: float = 1.0  # ActuationConfig's default cycle
    write_s: float = 5.0  # and write_timeout (tests/rules/test_timing.py keeps them in step)
    poll_s: Mapping[str, float] = field(default_factory=dict)  # by device name

    @classmethod
    def of(
        cls, actuation: ActuationConfig, devices: Iterable[Any], *, cycle_s: float | None = None
    ) -> ControlTiming:
        """From the config: `actuation.cycle` (or the `cycle_s` the engine really runs at),
        `actuation.write_timeout`, and every device's `poll_interval`."""
        polls = {
            device.name: float(interval)
            for device in devices
            if (interval := getattr(device, "poll_interval", None)) is not None
        }
        cycle = actuation.cycle if cycle_s is None else cycle_s
        return cls(cycle_s=cycle, write_s=actuation.write_timeout, poll_s=polls)

    def poll_of(self, tag: str) -> float:
        """The poll period of the device of `tag` (`device.name`); a device with no poll
        period known is taken as polled every cycle."""
        return self.poll_s.get(tag.split(".", 1)[0], self.cycle_s)

    def write_lag_s(self, tag: str) -> float:
        """The longest a write to `tag` decided at a time can take to be seen in effect: a
        cycle, the write's bound and the read-back poll of its device."""
        return self.cycle_s + self.write_s + self.poll_of(tag)

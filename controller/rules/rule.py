"""The one small interface every rule implements, and the proposals rules make.

A rule never writes: each cycle it reads a snapshot of tags and proposes values; the engine
arbitrates and the actuator (controller/actuation/) decides what is written.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.model import Sample
from controller.rules.common import OutputValue, RuleMode


@dataclass(frozen=True, slots=True)
class Now:
    """The instant of one cycle: `monotonic` seconds for timers, `wall_ms` for schedules."""

    monotonic: float
    wall_ms: int


@dataclass(frozen=True, slots=True)
class Proposal:
    """A value a rule wants a tag (`device.tag`) to have. The engine fills `rule` and `mode`;
    `fallback` marks the value a stopped rule's output returns to."""

    tag: str
    value: OutputValue
    priority: int
    reason: str
    rule: str = ""
    mode: RuleMode = "auto"
    fallback: bool = False


class RuleInputError(Exception):
    """An input holds something the rule cannot use (text where a number is needed); the
    engine treats it like a bad-quality input."""


class Rule(ABC):
    """A closed-loop rule.

    `inputs` maps every tag the rule reads to the age (seconds) beyond which it is stale, or
    None for a quality check only; the engine checks them before `evaluate` and does not call it
    when one is stale or bad. `outputs` are the tags it may propose values for.
    """

    name: str
    kind: str
    mode: RuleMode
    priority: int
    inputs: Mapping[str, float | None]
    outputs: tuple[str, ...]
    accept_uncertain: bool = False

    @abstractmethod
    def evaluate(self, snapshot: Mapping[str, Sample], now: Now) -> list[Proposal]:
        """The values this rule wants now; its inputs are fresh and of usable quality."""

    def restart(self, snapshot: Mapping[str, Sample], now: Now) -> None:  # noqa: B027
        """The rule takes control (again): after being off, or after its inputs were stale.
        Timers restart; a PID starts from the output's present value (bumpless)."""

    def settle(self, applied: Mapping[str, OutputValue]) -> None:  # noqa: B027
        """After the cycle: the value each of its outputs holds now (written by this rule,
        another rule or an operator); tags written by nobody are missing."""

    def detail(self) -> dict[str, Any]:
        """Rule-specific state for the retained `{base}/rules/{rule}/state` topic."""
        return {}


def number(snapshot: Mapping[str, Sample], tag: str) -> float:
    """The value of `tag` as a finite number, else `RuleInputError`."""
    sample = snapshot.get(tag)
    value = sample.value if sample is not None else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise RuleInputError(f"{tag} is {value!r}, not a number")

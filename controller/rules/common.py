"""What every rule's config has, whatever its kind: its name, mode, priority and input freshness,
the `device.tag` key, and what a rule may write. Apart from controller/rules/config.py so the rule
kinds can build on it without importing the section that lists them (config -> catalog -> kinds)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

from controller.configtypes import Name, PositiveDuration, StrictModel

_TAG_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$")


def check_tag_key(value: str) -> str:
    if not _TAG_KEY.match(value):
        raise ValueError(f"{value!r} is not a tag: write device.tag (e.g. compressor.pressure_bar)")
    return value


# A tag gateway-wide: `device.tag`.
TagKey = Annotated[str, AfterValidator(check_tag_key)]
# What a rule may write: a number or an on/off state. `bool` first: YAML `true` stays a bool.
OutputValue = bool | float
RuleMode = Literal["auto", "shadow", "off"]
RULE_MODES: tuple[RuleMode, ...] = ("auto", "shadow", "off")


class RuleCommon(StrictModel):
    """What every rule has: its name, mode, priority and how fresh its inputs must be."""

    name: Name
    # auto: writes; shadow: computes, publishes and logs what it would write, writes nothing;
    # off: does nothing (its outputs are released).
    mode: RuleMode = "auto"
    # Where two rules propose a value for one tag, the higher priority wins; on a tie the rule
    # listed first wins.
    priority: int = 0
    # An input whose last reading is older than this is stale and the rule stops; null: only
    # quality is checked (OPC UA tags subscribed on change, whose driver marks them bad when the
    # subscription falls silent).
    max_age: PositiveDuration | None = 10.0
    # Uncertain-quality inputs stop the rule too unless this is set.
    accept_uncertain: bool = False

    def input_tags(self) -> list[tuple[str, str]]:
        """(field path, tag) of every input, for the config check."""
        return []

    def output_values(self) -> list[tuple[str, str, OutputValue | None]]:
        """(field path, tag, fixed value or None) of every output, for the config check."""
        return []

    def handed_back(self) -> list[tuple[str, str]]:
        """(field path, tag) of outputs this rule stops proposing when safety needs the tag
        back (a shed released for a process limit): another rule must drive the tag then,
        else it keeps the value last written."""
        return []

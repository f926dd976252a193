"""The `sparkplug:` section of the config: whether this gateway is also a Sparkplug B edge node,
its group and edge node ids, the primary host it waits for, and how DCMD writes hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator

from controller.configtypes import PositiveDuration, StrictModel

_NOT_IN_A_LEVEL = frozenset("/+#\x00")


def check_level(value: str | None) -> str | None:
    """A Sparkplug id is one topic level: UTF-8, not empty, without '/', '+', '#' (spec 3.0,
    tck-id-topic-structure-namespace-valid-group-id and its edge node / device siblings)."""
    if value is not None and (not value or set(value) & _NOT_IN_A_LEVEL):
        raise ValueError(f"{value!r} cannot be a Sparkplug id: it is one topic level, "
                         "without '/', '+' or '#'")
    return value


class SparkplugConfig(StrictModel):
    """Off by default; the JSON contract of `mqtt:` runs either way."""

    enabled: bool = False
    group_id: str | None = Field(default=None, max_length=128)
    edge_node_id: str | None = Field(default=None, max_length=128)  # default gateway.id
    # With a primary host, births wait for its STATE online and its offline ends the session.
    primary_host_id: str | None = Field(default=None, max_length=128)
    client_id: str | None = Field(default=None, max_length=128)  # default edgecell-{id}-spb
    # A DCMD write holds over the rules this long, as cmd/write's `ttl` does (at most
    # actuation.manual_max_ttl; the actuator checks it like any manual write).
    write_ttl: PositiveDuration = 600.0
    # DDATA made while there is no session (broker away, primary host offline) is kept in
    # {state_dir}/sparkplug-history.sqlite3 and replayed after the births, is_historical.
    history: bool = True

    @field_validator("group_id", "edge_node_id", "primary_host_id")
    @classmethod
    def _one_level(cls, value: str | None) -> str | None:
        return check_level(value)

    @model_validator(mode="after")
    def _group_when_enabled(self) -> SparkplugConfig:
        if self.enabled and self.group_id is None:
            raise ValueError("group_id is required when sparkplug is enabled")
        return self

    def resolve_edge_node_id(self, gateway_id: str) -> str:
        return self.edge_node_id or gateway_id

    def resolve_client_id(self, gateway_id: str) -> str:
        """Another client id than the JSON session's: a broker would end one for the other."""
        return self.client_id or f"edgecell-{gateway_id}-spb"


def metric_name_clash(devices: Sequence[Any]) -> str | None:
    """A device whose tag names differ only in case: Sparkplug hosts may fold case, so an edge
    node SHOULD NOT publish such names (tck-id-case-sensitivity-metric-names)."""
    for device in devices:
        seen: dict[str, str] = {}
        for tag in device.tags:
            folded = tag.name.lower()
            if folded in seen:
                return (
                    f"sparkplug: device {device.name!r} has tags {seen[folded]!r} and "
                    f"{tag.name!r}, which differ only in case; Sparkplug hosts may not tell "
                    "them apart: rename one"
                )
            seen[folded] = tag.name
    return None

"""The docs' `| key | default | meaning |` tables stay true: every default a table names as a
literal (`1s`, `false`, `15min`, `none`, `required`) is the config model's own. An operator
reads these tables instead of the code; a default that changed in one place and not the other
is a wrong setting on a gateway. A default the table gives in words (`the section's`,
`kwp/1.2`) is not checked here; a key the model does not have is a failure."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, get_args

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from controller.config import Config, GatewayConfig
from controller.configtypes import WriteLimits
from controller.mqtt.config import BufferConfig, MqttConfig
from controller.rules.average import MovingAverageConfig
from controller.rules.blocks import DeadbandConfig, HysteresisConfig, RateLimiterConfig
from controller.rules.catalog import DomainRuleConfig
from controller.rules.config import (
    ActuationConfig,
    PidRuleConfig,
    ScheduleRuleConfig,
    ThresholdRuleConfig,
)
from controller.rules.cycling import MinOnOffConfig
from controller.rules.demand import DemandWindowConfig
from controller.rules.domain import ProductionSignal
from controller.rules.energy.battery import BatteryControlConfig
from controller.rules.energy.requirement import Requirement
from controller.rules.pid import PIDConfig
from controller.rules.schedule import ScheduleConfig
from controller.rules.trimrespond import TrimRespondConfig
from controller.scheduler.config import SchedulerConfig, TariffConfig
from controller.sparkplug.config import SparkplugConfig
from drivers.modbus.config import ModbusDevice, ModbusTag
from drivers.opcua.config import OpcUaDevice, OpcUaEvents, OpcUaTag

DOCS = Path(__file__).parents[1] / "docs"
_KEY = re.compile(r"`([\w.\[\]]+)`")
_LITERAL = re.compile(r"`([^`]+)`")


def tables(doc: str, heading: str) -> list[list[tuple[str, str]]]:
    """The (key cell, default cell) rows of each `| key | default |` table under `heading`
    (up to the next heading of its level or above)."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    part = text.split(f"\n{heading}\n", 1)[1]
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", part)]
    part = part[: ends[0]] if ends else part
    found = []
    for block in re.findall(r"^\| key[^|]*\| default \|.*\n\|[-|]+\|\n((?:\|.*\n)+)", part, re.M):
        rows = []
        for line in block.splitlines():
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows.append((cells[0], cells[1]))
        found.append(rows)
    assert found, f"{doc}: no key/default table under {heading!r}"
    return found


def keys_of(cell: str) -> list[str]:
    """`a.b` / `c`: `a.b` and `a.c` (a later key without a dot shares the first's prefix)."""
    keys = _KEY.findall(cell)
    if keys and "." in keys[0]:
        prefix = keys[0].rsplit(".", 1)[0] + "."
        keys = [k if "." in k else prefix + k for k in keys]
    return [k.replace("[]", "") for k in keys]


def field_of(model: type[BaseModel], path: str) -> FieldInfo:
    """The field at a dotted path (`battery.reserve_pct`), through nested models."""
    head, _, rest = path.partition(".")
    by_alias = {info.alias or name: info for name, info in model.model_fields.items()}
    assert head in by_alias, f"{model.__name__} has no key {head!r}"
    info = by_alias[head]
    if not rest:
        return info
    nested = [
        inner
        for candidate in [info.annotation, *get_args(info.annotation)]
        for inner in [candidate, *get_args(candidate)]
        if isinstance(inner, type) and issubclass(inner, BaseModel)
    ]
    assert nested, f"{model.__name__}.{head} holds no keys"
    return field_of(nested[0], rest)


def parsed(info: FieldInfo, literal: str) -> Any:
    """The doc's literal as the field reads it from YAML."""
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[annotation, *info.metadata]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    return adapter.validate_python(yaml.safe_load(literal))


def readable(info: FieldInfo, literal: str) -> Any:
    """`parsed`, or PydanticUndefined where the literal is no value of the field (a default
    computed from others: `edgecell-{gateway.id}`, `kwp/1.2`)."""
    try:
        return parsed(info, literal)
    except (ValidationError, yaml.YAMLError):
        return PydanticUndefined


def parts(cell: str, count: int) -> list[str]:
    """A default cell per key: `none` / `UTC`, `500ms`, `30s` (split where the keys are);
    else the whole cell for each."""
    pieces = [p.strip() for p in re.split(r" / |, (?=`|none|required)", cell)]
    return pieces if count > 1 and len(pieces) == count else [cell] * count


def contradiction(model: type[BaseModel], key: str, cell: str) -> str | None:
    """What the default cell says of `key` against the model, if it is not so."""
    info = field_of(model, key)
    required = info.default is PydanticUndefined and info.default_factory is None
    default = PydanticUndefined if required else info.get_default(call_default_factory=True)
    said = cell.lower()
    literals = _LITERAL.findall(cell)
    if not said:
        return None  # no default named (a key every entry gives, or an optional one)
    if said.startswith("required"):
        if required or default in [readable(info, x) for x in literals]:
            return None
        return f"{key}: docs say required, the model defaults to {default!r}"
    if required:
        return f"{key}: docs give a default ({cell}), the model requires it"
    if said.startswith("none"):
        if default in (None, [], {}):
            return None
        return f"{key}: docs say none, the model defaults to {default!r}"
    if len(literals) != 1 or re.search(r"\w", _LITERAL.sub("", cell)) or default is None:
        return None  # a default in words, or resolved at start (`edgecell-{gateway.id}`)
    value = readable(info, literals[0])
    if value is PydanticUndefined or value == default:
        return None
    return f"{key}: docs say {literals[0]}, the model defaults to {default!r}"


def contradictions(model: type[BaseModel], rows: list[tuple[str, str]]) -> list[str]:
    wrong = []
    for key_cell, default_cell in rows:
        keys = keys_of(key_cell)
        for key, cell in zip(keys, parts(default_cell, len(keys)), strict=True):
            found = contradiction(model, key, cell)
            if found is not None:
                wrong.append(found)
    return wrong


RULE_KINDS = {
    get_args(model.model_fields["kind"].annotation)[0]: model
    for model in get_args(DomainRuleConfig)
}

CASES: list[tuple[str, str, int, type[BaseModel]]] = [
    ("configuration.md", "## `gateway`", 0, GatewayConfig),
    ("configuration.md", "## `mqtt`", 0, MqttConfig),
    ("configuration.md", "## `sparkplug`", 0, SparkplugConfig),
    ("configuration.md", "### Modbus devices", 0, ModbusDevice),
    ("configuration.md", "### Modbus devices", 1, ModbusTag),
    ("configuration.md", "## `tariff` and `scheduler`", 0, TariffConfig),
    ("configuration.md", "## `tariff` and `scheduler`", 1, SchedulerConfig),
    ("mqtt-topics.md", "### `mqtt.buffer` settings", 0, BufferConfig),
    ("opcua.md", "## Device keys", 0, OpcUaDevice),
    ("opcua.md", "## Tag keys", 0, OpcUaTag),
    ("opcua.md", "## Events and alarm conditions", 0, OpcUaEvents),
    ("rules.md", "### Hysteresis (on/off with two thresholds)", 0, HysteresisConfig),
    ("rules.md", "### Deadband", 0, DeadbandConfig),
    ("rules.md", "### Ramp (rate limiter)", 0, RateLimiterConfig),
    ("rules.md", "### Minimum on and off times (anti short-cycling)", 0, MinOnOffConfig),
    ("rules.md", "### PID", 0, PIDConfig),
    ("rules.md", "### Moving average", 0, MovingAverageConfig),
    ("rules.md", "### Demand window (electricity)", 0, DemandWindowConfig),
    ("rules.md", "### Schedule (time-of-use periods and shifts)", 0, ScheduleConfig),
    ("rules.md", "## Rule kinds", 0, ThresholdRuleConfig),  # the keys every kind has
    ("rules.md", "### threshold", 0, ThresholdRuleConfig),
    ("rules.md", "### pid", 0, PidRuleConfig),
    ("rules.md", "### schedule", 0, ScheduleRuleConfig),
    ("rules.md", "### Values the tag's type can hold", 0, WriteLimits),
    ("rules.md", "### Values the tag's type can hold", 1, ActuationConfig),
    ("rules.md", "### Shared settings", 0, ProductionSignal),
    ("rules.md", "### Shared settings", 1, Requirement),
    ("rules.md", "### Shared settings", 2, TrimRespondConfig),
    (
        "rules.md",
        "### Battery rules: the battery first, then the deferrable loads, never production",
        0,
        BatteryControlConfig,
    ),
    *[("rules.md", f"### {kind}", -1, model) for kind, model in sorted(RULE_KINDS.items())],
]


@pytest.mark.parametrize(
    ("doc", "heading", "index", "model"),
    CASES,
    ids=[f"{doc}:{model.__name__}" for doc, _, _, model in CASES],
)
def test_a_table_s_defaults_are_the_model_s(
    doc: str, heading: str, index: int, model: type[BaseModel]
) -> None:
    found = tables(doc, heading)
    chosen = found if index == -1 else [found[index]]  # -1: every table under the heading
    assert [wrong for rows in chosen for wrong in contradictions(model, rows)] == []


def test_the_defaults_made_from_the_gateway_id_are_the_code_s() -> None:
    """The keys whose default is built from `gateway.id` (None in the model): the docs write
    `{gateway.id}` where the code puts the id."""
    mqtt = dict(tables("configuration.md", "## `mqtt`")[0])
    sparkplug = dict(tables("configuration.md", "## `sparkplug`")[0])
    config = Config.model_validate({"gateway": {"id": "GW"}})

    def shown(value: str) -> str:
        return f"`{value.replace('GW', '{gateway.id}')}`"

    assert mqtt["`client_id`"] == shown(config.mqtt.resolve_client_id("GW"))
    assert mqtt["`base_topic`"] == shown(config.base_topic)
    assert sparkplug["`client_id`"] == shown(config.sparkplug.resolve_client_id("GW"))
    assert sparkplug["`edge_node_id`"] == "`gateway.id`"
    assert config.sparkplug.resolve_edge_node_id("GW") == "GW"

"""docs/rules.md "Energy and water rules" stays true: every rule kind has a section whose YAML
example loads into the rules union, and every key of every kind is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter

from controller.rules.catalog import DomainRuleConfig
from controller.rules.common import RuleCommon
from controller.rules.config import RuleConfig
from controller.rules.schedule import ScheduleConfig

RULES_MD = Path(__file__).parents[2] / "docs" / "rules.md"
KINDS = {
    model.model_fields["kind"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in get_args(DomainRuleConfig)
}


def section() -> str:
    text = RULES_MD.read_text(encoding="utf-8")
    return text.split("\n## Energy and water rules\n", 1)[1].split("\n## ", 1)[0]


def rule_section(kind: str) -> str:
    return section().split(f"\n### {kind}\n", 1)[1].split("\n### ", 1)[0]


def keys(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """Every key of a config model and of the models nested in it (the schedule and the
    common keys are documented elsewhere)."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        # A schedule's own keys (also in a model built on it, as a tariff's price periods).
        if issubclass(model, ScheduleConfig) and name in ScheduleConfig.model_fields:
            continue
        if name not in RuleCommon.model_fields:
            out.add(field.alias or name)
        for nested in _models(field.annotation):
            if nested not in seen:
                seen.add(nested)
                out |= keys(nested, seen)
    return out - {"kind"}


def _models(annotation: Any) -> list[type[BaseModel]]:
    found = []
    for candidate in [annotation, *get_args(annotation)]:
        for inner in [candidate, *get_args(candidate)]:
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found.append(inner)
    return found


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_an_example_that_loads(kind: str) -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", rule_section(kind), flags=re.DOTALL)
    (settings,) = yaml.safe_load(example)
    parsed = TypeAdapter(RuleConfig).validate_python(settings)
    assert isinstance(parsed, KINDS[kind])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_key_is_documented(kind: str) -> None:
    text = section()
    missing = [
        key
        for key in sorted(keys(KINDS[kind], set()))
        if not re.search(rf"`([\w\[\]]+\.)?{key}`", text)
    ]
    assert missing == []

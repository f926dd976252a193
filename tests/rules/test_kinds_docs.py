"""The YAML examples of docs/rules.md "Rule kinds" and "Safety of writes" load: each rule into
its config model, the complete example through the config loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from controller.config import parse_config
from controller.rules.config import RuleConfig

RULES_MD = Path(__file__).parents[2] / "docs" / "rules.md"
RULES = TypeAdapter(list[RuleConfig])


def examples(section: str) -> list[str]:
    text = RULES_MD.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", body, flags=re.DOTALL)


def test_every_rule_kind_has_an_example():
    kinds = set()
    for example in examples("Rule kinds"):
        kinds |= {rule.kind for rule in RULES.validate_python(yaml.safe_load(example))}
    assert kinds == {"threshold", "pid", "schedule"}


@pytest.mark.parametrize("example", examples("Rule kinds"), ids=lambda e: e.split("#")[0])
def test_rule_example_loads_into_its_config_model(example):
    RULES.validate_python(yaml.safe_load(example))


def test_complete_example_loads_through_the_config_loader():
    [example] = examples("Safety of writes")
    config = parse_config("gateway: {id: cell-1}\n" + example, "rules.md")
    assert [rule.name for rule in config.rules] == ["air-pressure"]
    assert config.actuation.heartbeat[0].tag == "compressor.heartbeat"

"""The YAML examples in docs/rules.md "Control blocks" load into the blocks' config models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from controller.rules.average import MovingAverageConfig
from controller.rules.blocks import DeadbandConfig, HysteresisConfig, RateLimiterConfig
from controller.rules.cycling import MinOnOffConfig
from controller.rules.demand import DemandWindowConfig
from controller.rules.pid import PIDConfig
from controller.rules.schedule import ScheduleConfig

MODELS: dict[str, type[BaseModel]] = {
    "hysteresis": HysteresisConfig,
    "deadband": DeadbandConfig,
    "rate_limit": RateLimiterConfig,
    "min_on_off": MinOnOffConfig,
    "pid": PIDConfig,
    "moving_average": MovingAverageConfig,
    "demand_window": DemandWindowConfig,
    "schedule": ScheduleConfig,
}

RULES_MD = Path(__file__).parents[2] / "docs" / "rules.md"


def control_block_examples() -> list[str]:
    text = RULES_MD.read_text(encoding="utf-8")
    section = text.split("\n## Control blocks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)


def test_every_block_has_an_example() -> None:
    keys = {key for example in control_block_examples() for key in yaml.safe_load(example)}
    assert keys == set(MODELS)


@pytest.mark.parametrize(
    "example", control_block_examples(), ids=lambda example: example.split(":", 1)[0]
)
def test_example_loads_into_its_config_model(example: str) -> None:
    for key, settings in yaml.safe_load(example).items():
        MODELS[key].model_validate(settings)

"""Building blocks shared by every config model: strict base model, durations, names, secrets,
and the write-safety fields every writable tag carries whatever its driver."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """`250ms`, `5s`, `15min`, `1h`, `1d` -> seconds. Bare numbers are refused: units are
    explicit. (ValueError, not TypeError: pydantic reports ValueErrors as validation errors.)"""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(  # noqa: TRY004
            f"a duration is a string with a unit such as '500ms', '5s' or '15min', not {value!r}"
        )
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration: write a number and one of ms, s, min, h, d ('15min')"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration`, for messages and generated YAML."""
    if seconds < 1 and seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{int(seconds // 60)}min"
    return f"{seconds:g}s"


# Seconds, written in YAML with a unit.
Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-64 letters, digits, '_' or '-' "
            "(names become MQTT topic levels)"
        )
    return value


# Names that become MQTT topic levels: no wildcards, separators or spaces.
Name = Annotated[str, AfterValidator(check_name)]


class StrictModel(BaseModel):
    """Every config model (and command payload): unknown keys are errors, instances never change
    after loading, and every number is finite. NaN passes every comparison (`nan < min` is
    false), so a NaN limit is no limit and an infinite one a typo; YAML spells them `.nan` and
    `.inf`, and a duration of 400 digits is infinite too. A field that needs another rule says
    so with its own type."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _within_budget(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # The config loader passes an ErrorBudget: a file in which everything is wrong stops
        # being validated once it has given enough errors, instead of collecting millions.
        try:
            return handler(data)
        except ValidationError as exc:
            budget = (info.context or {}).get("budget")
            if isinstance(budget, ErrorBudget):
                budget.spend(exc.error_count())
            raise


class TooManyProblemsError(Exception):
    """Validation stopped: the data has more problems than an ErrorBudget allows."""


class ErrorBudget:
    """How many validation errors (counted at every model they pass through, so an error deep
    down counts several times) a validation may collect before it stops."""

    def __init__(self, errors: int) -> None:
        self.left = errors

    def spend(self, errors: int) -> None:
        self.left -= errors
        if self.left < 0:
            raise TooManyProblemsError


class WriteLimits(StrictModel):
    """The write-safety fields of a tag (DESIGN.md, "Safety of writes"): only tags declared
    writable can be written; values are clamped to min/max and limited per step and per minute."""

    writable: bool = False
    min: float | None = None
    max: float | None = None
    max_step: float | None = Field(default=None, gt=0)
    max_rate: float | None = Field(default=None, gt=0, description="units per minute")
    fallback: float | bool | None = None

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> WriteLimits:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        fallback = self.fallback
        if isinstance(fallback, bool) or fallback is None:
            return self
        # The fallback is written when nothing else drives the tag: it must pass the limits.
        if self.min is not None and fallback < self.min:
            raise ValueError(f"fallback: {fallback:g} is below min ({self.min:g})")
        if self.max is not None and fallback > self.max:
            raise ValueError(f"fallback: {fallback:g} is above max ({self.max:g})")
        return self

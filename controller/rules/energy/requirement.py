"""A load's requirement that a trim-and-respond reset must keep (a far-end pressure, a process
temperature), and the requests it makes: shared by the compressed-air and chilled-water
resets."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, model_validator

from controller.configtypes import StrictModel
from controller.model import Sample
from controller.rules.config import TagKey
from controller.rules.rule import number


class Requirement(StrictModel):
    """A load's need the reset must keep: `tag` at least `min` (a far-end pressure) or at
    most `max` (a process temperature, a valve position). Within `margin` of it the load makes
    one request; past it, two."""

    tag: TagKey
    min: float | None = None
    max: float | None = None
    margin: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_side(self) -> Requirement:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min: or max:")
        return self

    def requests(self, value: float) -> int:
        if self.min is not None:
            return 2 if value < self.min else 1 if value < self.min + self.margin else 0
        if self.max is not None:
            return 2 if value > self.max else 1 if value > self.max - self.margin else 0
        return 0

    def violated(self, value: float) -> bool:
        return self.requests(value) == 2


def count_requests(requirements: list[Requirement], snapshot: Mapping[str, Sample]) -> int:
    return sum(req.requests(number(snapshot, req.tag)) for req in requirements)

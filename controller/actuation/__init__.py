"""The only code in edgecell that writes to a device. Every value a rule or an operator wants
passes the checks of DESIGN.md "Safety of writes" here, and every attempt is published on
`{base}/events/writes` and logged with its outcome.

Checks apart from state and I/O: `checks` holds the limit checks as plain functions of (limits,
tag state, request, present value, time) -> plan or refusal, testable without a device;
`state` what is remembered between cycles (overrides, pending verifications, first readings,
published events); `actuator` the `Actuator`, which writes through the drivers and publishes;
`outcomes` the words they share (outcomes, results, refusals).
"""

from controller.actuation.actuator import Actuator, EventSink, Writers, write_limits
from controller.actuation.outcomes import (
    ActuationRefusedError,
    ManualWritesDisabledError,
    NotEncodableError,
    NotReadYetError,
    NotWritableError,
    Outcome,
    OutOfRangeError,
    TagDecision,
    UnknownTagError,
    WriteResult,
)
from controller.actuation.state import REPEAT_SUMMARY, ActuatorStats, Override

__all__ = [
    "REPEAT_SUMMARY",
    "ActuationRefusedError",
    "Actuator",
    "ActuatorStats",
    "EventSink",
    "ManualWritesDisabledError",
    "NotEncodableError",
    "NotReadYetError",
    "NotWritableError",
    "OutOfRangeError",
    "Outcome",
    "Override",
    "TagDecision",
    "UnknownTagError",
    "WriteResult",
    "Writers",
    "write_limits",
]

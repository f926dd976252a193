"""The safety checks of one write, as plain functions: (limits, tag state, request, present
value, time) -> a plan to write or why not. No I/O and no clock: tests/controller/actuation
runs them without a device; the actuator (actuator.py) supplies the state and does the writing.

Order for one tag and one cycle: the tag must be declared writable and have been read since the
start; numbers are clamped to min/max and moved no more than max_step per write and max_rate
per minute; the value must be one the tag's type can hold (integer tags take whole steps);
equipment switched by a boolean tag keeps its minimum on/off times; a value already in place
is not written again, unless the tag's `refresh` is due (its last write that old).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Protocol

from controller.actuation.outcomes import (
    ManualWritesDisabledError,
    NotEncodableError,
    NotWritableError,
    Outcome,
    OutOfRangeError,
    UnknownTagError,
)
from controller.actuation.state import TagState, as_number, same
from controller.configtypes import WriteLimits, format_duration
from controller.model import Value
from controller.rules.blocks import RateLimiter, RateLimiterConfig
from controller.rules.common import OutputValue
from controller.rules.config import ActuationConfig
from controller.rules.cycling import MinOnOffConfig, MinOnOffTimes
from controller.rules.rule import Proposal
from drivers.base import UnencodableValueError, WholeSteps


class ValueType(Protocol):
    """What a tag's driver says about the tag's type, without I/O."""

    def check(self, value: OutputValue) -> None:
        """Raise `UnencodableValueError` when the type cannot hold `value`."""

    def steps(self) -> WholeSteps | None:
        """The whole steps of an integer tag; None for any other."""


@dataclass(frozen=True, slots=True)
class TagSetup:
    """What the checks know of one tag besides the request: its limits, its equipment
    protection, its read-back tolerance, the engine's cycle, its type (None when the device is
    not running: the write will fail and say so) and whether it has been read since the start."""

    limits: WriteLimits | None
    equipment: MinOnOffConfig | None = None
    tolerance: float = 0.0
    cycle: float = 1.0
    value_type: ValueType | None = None
    read: bool = True
    # A value held unchanged is written again this often (actuation.outputs.<tag>.refresh).
    refresh: float | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """A value someone wants for a tag: a rule's winning proposal or an operator's override."""

    tag: str
    value: OutputValue
    source: str
    rule: str | None = None
    mode: str = "auto"
    reason: str = ""
    shadow: bool = False


@dataclass(slots=True)
class Plan:
    """A write the checks allowed, about to be sent."""

    tag: str
    value: OutputValue
    requested: OutputValue
    old: Value | None
    source: str
    rule: str | None
    mode: str
    reason: str
    clamps: tuple[str, ...]
    checks: dict[str, str]
    overruled: tuple[Proposal, ...] = ()
    # The equipment protection as it was before this switch was granted: restored when the
    # write fails, so a switch that did not happen neither counts as a start nor resets timers.
    equipment_before: MinOnOffTimes | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """A request not written now: refused, deferred, or unchanged (already in place)."""

    outcome: Outcome
    reason: str
    checks: dict[str, str] = field(default_factory=dict)
    value: OutputValue | None = None
    clamps: tuple[str, ...] = ()


def plan(
    request: Request, setup: TagSetup, state: TagState, old: Value | None, now: float
) -> Plan | Held:
    """The value the checks allow for `request`, or why it is held. `old` is the tag's present
    value (None when not read good). The only state changed is the equipment protection of a
    switch granted (the plan carries what to put back if the write fails)."""
    tag, requested = request.tag, request.value
    checks: dict[str, str] = {}
    limits = setup.limits
    if limits is None:
        return Held(Outcome.REFUSED, f"unknown tag {tag}", {"writable": "unknown tag"})
    if not limits.writable:
        return Held(Outcome.REFUSED, f"{tag} is not declared writable", {"writable": "no"})
    checks["writable"] = "ok"
    if not setup.read:
        checks["read"] = "no reading yet"
        return Held(
            Outcome.DEFERRED,
            f"{tag} has not been read since the start: written once it has a good reading",
            checks,
        )
    checks["read"] = "ok"
    before: MinOnOffTimes | None = None
    if isinstance(requested, bool):
        value: OutputValue = requested
        clamps: tuple[str, ...] = ()
        typed = fit_type(
            tag, value, limits, window=None, value_type=setup.value_type, checks=checks
        )
        if isinstance(typed, str):
            return Held(Outcome.REFUSED, typed, checks)
        if setup.equipment is not None:
            block = equipment_block(setup.equipment, requested, old, state, now)
            before = copy.deepcopy(block)
            held = equipment_check(block, requested, now, shadow=request.shadow)
            if held:
                checks["min_on_off"] = "deferred"
                return Held(
                    Outcome.DEFERRED, f"{held} (wanted {requested})", checks,
                    value=old if isinstance(old, bool) else None,
                )
            checks["min_on_off"] = "ok"
    else:
        if setup.equipment is not None:
            return Held(Outcome.REFUSED, f"{tag} switches equipment: needs true/false", checks)
        if not math.isfinite(requested):
            checks["range"] = "not a number"
            return Held(Outcome.REFUSED, f"{requested!r} is not a finite number", checks)
        limited = limit_move(
            tag, float(requested), limits, old, state, now=now, setup=setup, checks=checks
        )
        if isinstance(limited, str):
            return Held(Outcome.REFUSED, limited, checks)
        number, clamps, window = limited
        typed = fit_type(
            tag, number, limits, window=window, value_type=setup.value_type, checks=checks
        )
        if isinstance(typed, str):
            return Held(Outcome.REFUSED, typed, checks)
        value = typed
        if checks.get("type") == "rounded":
            clamps = (*clamps, "integer")
    pending = state.pending
    if (pending is not None and same(pending.value, value, setup.tolerance)) or (
        pending is None and old is not None and same(old, value, setup.tolerance)
    ):
        if not refresh_due(request, setup, state, now):
            return Held(Outcome.UNCHANGED, request.reason, checks, value=value, clamps=clamps)
        checks["refresh"] = "due"
    if not request.shadow:
        checks["verify"] = "pending"
    return Plan(
        tag, value, requested, old, request.source, request.rule, request.mode, request.reason,
        clamps, checks, equipment_before=before,
    )


def refresh_due(request: Request, setup: TagSetup, state: TagState, now: float) -> bool:
    """Whether a value already in place is written again now: the tag has a `refresh`, the
    last write of it (ours) is at least that old, or there was none, within half a cycle (the
    heartbeat's slack), and nothing waits for its read-back. Never in shadow, never for a
    fallback: a rule that stopped leaves the device's own timeout to take it back."""
    if setup.refresh is None or request.shadow or request.source.startswith("fallback:"):
        return False
    if state.pending is not None:
        return False
    if state.last_time is None:
        return True
    return now + setup.cycle / 2 >= state.last_time + setup.refresh


def limit_move(
    tag: str,
    value: float,
    limits: WriteLimits,
    old: Value | None,
    state: TagState,
    *,
    now: float,
    setup: TagSetup,
    checks: dict[str, str],
) -> tuple[float, tuple[str, ...], tuple[float, float] | None] | str:
    """Clamp to min/max, then limit the move from the present value by max_step and
    max_rate. min/max always win: a device left outside them is brought back inside.
    Returns the value, the clamps, and the move allowed (where it starts, how far it may
    go) when max_step or max_rate holds; or why nothing may be written."""
    clamps: list[str] = []
    if limits.min is not None or limits.max is not None:
        checks["range"] = "ok"
    if limits.min is not None and value < limits.min:
        value, checks["range"] = limits.min, "clamped"
        clamps.append(f"min {limits.min:g}")
    if limits.max is not None and value > limits.max:
        value, checks["range"] = limits.max, "clamped"
        clamps.append(f"max {limits.max:g}")
    if limits.max_step is None and limits.max_rate is None:
        return value, tuple(clamps), None
    start_since = reference(old, state, now, cycle=setup.cycle, tolerance=setup.tolerance)
    if start_since is None:
        checks["max_step" if limits.max_step is not None else "max_rate"] = "no present value"
        return (
            f"the present value of {tag} is unknown: its max_step/max_rate cannot be "
            "kept (no good reading yet)"
        )
    start, since = start_since
    limiter = RateLimiter(
        RateLimiterConfig(
            max_step=limits.max_step,
            max_rate_per_s=None if limits.max_rate is None else limits.max_rate / 60.0,
        )
    )
    limiter.reset(since, start)
    limited = limiter.update(now, value)
    allowed = min(
        math.inf if limits.max_step is None else limits.max_step,
        math.inf if limits.max_rate is None else limits.max_rate / 60.0 * (now - since),
    )
    if limits.max_step is not None:
        checks["max_step"] = "ok"
    if limits.max_rate is not None:
        checks["max_rate"] = "ok"
    if limited != value:
        by_rate = math.inf if limits.max_rate is None else limits.max_rate / 60.0 * (now - since)
        if limits.max_step is not None and limits.max_step <= by_rate:
            checks["max_step"] = "limited"
            clamps.append(f"max_step {limits.max_step:g}")
        else:
            checks["max_rate"] = "limited"
            clamps.append(f"max_rate {limits.max_rate:g}/min")
        value = limited
    if limits.min is not None and value < limits.min:
        value = limits.min
    if limits.max is not None and value > limits.max:
        value = limits.max
    return value, tuple(clamps), (start, allowed)


def reference(
    old: Value | None, state: TagState, now: float, *, cycle: float, tolerance: float
) -> tuple[float, float] | None:
    """Where a move starts from, and since when: our last write while the device shows it
    (or has not been read since), else the device's present value one cycle ago."""
    present = as_number(old)
    last = as_number(state.last_value)
    if last is not None and state.last_time is not None and (
        state.pending is not None or present is None or same(present, last, tolerance)
    ):
        return last, state.last_time
    if present is not None:
        return present, now - cycle
    return None


def fit_type(
    tag: str,
    value: OutputValue,
    limits: WriteLimits,
    *,
    window: tuple[float, float] | None,
    value_type: ValueType | None,
    checks: dict[str, str],
) -> OutputValue | str:
    """The value as the tag's type holds it, or why the type cannot hold it. A number for
    an integer tag is rounded to the nearest whole step inside min/max (and inside the
    move `window` allows); an operator's value was checked whole before (`check_manual`),
    so only the steps of a ramp towards it are ever rounded. Nothing is checked without a
    `value_type` (the device is not running: the write fails and says so)."""
    if value_type is None:
        return value
    rounded = False
    if not isinstance(value, bool):
        steps = value_type.steps()
        if steps is not None:
            snapped = snap_to_steps(value, steps, low=limits.min, high=limits.max, move=window)
            cut = "limited" in (checks.get("max_step"), checks.get("max_rate"))
            if snapped is None or (
                # The move was cut short and rounding takes it back to where it started: a
                # max_step (or max_rate per cycle) below one step, the tag could never move.
                cut and window is not None and snapped == window[0] and window[1] < steps.step
            ):
                checks["type"] = "no whole step"
                return no_whole_step(tag, steps, window)
            rounded = snapped != value
            value = snapped
    try:
        value_type.check(value)
    except UnencodableValueError as exc:
        checks["type"] = "refused"
        return str(exc)
    checks["type"] = "rounded" if rounded else "ok"
    return value


def snap_to_steps(
    value: float,
    steps: WholeSteps,
    *,
    low: float | None,
    high: float | None,
    move: tuple[float, float] | None = None,
) -> float | None:
    """The whole step nearest to `value` (halves go towards the start of the move, else down)
    that lies within low..high and, when `move` = (start, allowed) is given, no further than
    `allowed` from start. From a start outside low..high, min/max win over the move (as in
    `limit_move`). None when no step fits."""
    origin, step = steps.origin, steps.step
    index = (value - origin) / step
    slack = 1e-9 * max(1.0, abs(value))

    def at(n: int) -> float:
        return float(f"{origin + n * step:.12g}")  # 0.1 * 3 is 0.30000000000000004

    candidates = {at(n) for n in (math.floor(index), math.ceil(index))}
    inside = [
        c for c in candidates
        if (low is None or c >= low - slack) and (high is None or c <= high + slack)
    ]
    start = move[0] if move is not None else None
    inside.sort(key=lambda c: (abs(c - value), abs(c - start) if start is not None else c))
    if move is None or not inside:
        return inside[0] if inside else None
    gentle = [c for c in inside if abs(c - move[0]) <= move[1] + slack]
    if gentle:
        return gentle[0]
    outside = (low is not None and move[0] < low) or (high is not None and move[0] > high)
    return inside[0] if outside else None


def no_whole_step(tag: str, steps: WholeSteps, window: tuple[float, float] | None) -> str:
    """Why no whole step of an integer tag may be written."""
    if window is not None and window[1] < steps.step:
        return (
            f"{tag} takes whole steps of {steps.step:g}: max_step/max_rate allow a move of "
            f"{window[1]:g} this cycle, less than one step"
        )
    return f"{tag} takes whole steps of {steps.step:g}: none lies within its min and max"


def equipment_block(
    config: MinOnOffConfig, want: bool, old: Value | None, state: TagState, now: float
) -> MinOnOffTimes:
    """The tag's equipment protection, brought up to date with the state read back."""
    present_state = old if isinstance(old, bool) else None
    block = state.equipment
    if block is None:
        # Not known how long it has been in this state: the protection times run from now.
        start = present_state if present_state is not None else not want
        block = state.equipment = MinOnOffTimes(config, state=start, since=now)
    elif present_state is not None and state.pending is None and present_state != block.state:
        block.observe(now, present_state)  # switched by someone else (the PLC, the panel)
    return block


def equipment_check(block: MinOnOffTimes, want: bool, now: float, *, shadow: bool) -> str:
    """'' when equipment may be switched to `want` now, else what holds it and until when.
    A granted switch is recorded in the block (not in shadow)."""
    if shadow:
        at, held_by = block.allowed_at(want)
        return "" if now >= at else f"{held_by}: allowed in {format_duration(at - now)}"
    decision = block.request(now, want)
    if decision.deferred_until is None:
        return ""
    return f"{decision.reason}: allowed in {format_duration(decision.deferred_until - now)}"


def check_manual(
    tag: str,
    value: OutputValue,
    ttl: float,
    *,
    config: ActuationConfig,
    setup: TagSetup,
) -> None:
    """Raise `ActuationRefusedError` (a subclass saying which check) unless an operator may
    write `value` to `tag` for `ttl` seconds."""
    if not config.manual_writes:
        raise ManualWritesDisabledError(
            "manual writes are disabled: set actuation.manual_writes: true to allow them"
        )
    limits = setup.limits
    if limits is None:
        raise UnknownTagError(f"unknown tag {tag!r}")
    if not limits.writable:
        raise NotWritableError(f"{tag} is not declared writable")
    if not isinstance(value, bool):
        if not math.isfinite(value):
            raise OutOfRangeError(f"{value!r} is not a finite number")
        if limits.min is not None and value < limits.min:
            raise OutOfRangeError(f"{value:g} is below the min {limits.min:g} of {tag}")
        if limits.max is not None and value > limits.max:
            raise OutOfRangeError(f"{value:g} is above the max {limits.max:g} of {tag}")
    elif setup.equipment is None and (limits.min is not None or limits.max is not None):
        raise OutOfRangeError(f"{tag} takes a number between its min and max, not {value}")
    if setup.equipment is not None and not isinstance(value, bool):
        raise OutOfRangeError(f"{tag} switches equipment: write true or false")
    if setup.value_type is not None:
        try:
            setup.value_type.check(value)
        except UnencodableValueError as exc:
            raise NotEncodableError(str(exc)) from None
    if ttl > config.manual_max_ttl:
        raise OutOfRangeError(
            f"ttl {format_duration(ttl)} is longer than actuation.manual_max_ttl "
            f"{format_duration(config.manual_max_ttl)}"
        )

"""Properties of the write path, checked on what a real Modbus device received: no sequence of
proposals ever makes the actuator write outside min/max, move a tag more than max_step in one
write or faster than max_rate, or switch equipment sooner than its minimum on/off times. The
device may start outside min/max (left there by the PLC or a panel): then the first write
brings it back inside at once, min/max winning over max_step and max_rate."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from closedloop import ModbusPlant, SteppedClock, coil_tag, float_tag, register_tag, start_plant
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.actuation import Actuator, TagDecision
from controller.configtypes import WriteLimits
from controller.rules.config import ActuationConfig
from controller.rules.rule import Proposal

# One fixture for all examples of a test: each example resets the device and builds a new
# actuator, so nothing carries over but the server and its connection.
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CYCLE = 1.0


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def plant(clock: SteppedClock, tmp_path: Path) -> AsyncIterator[ModbusPlant]:
    plant = await start_plant(
        [
            float_tag("setpoint", 0, writable=True),
            coil_tag("run", 0, writable=True),
            register_tag("speed", 4, writable=True),  # uint16: whole numbers only
        ],
        clock,
        tmp_path,
    )
    yield plant
    await plant.stop()


@st.composite
def limits(draw: st.DrawFn) -> tuple[WriteLimits, float]:
    """Write limits with at least a step or a rate limit, and a start value inside min/max or
    outside them on either side."""
    low = draw(st.floats(-500, 400, allow_nan=False))
    high = low + draw(st.floats(1, 500))
    step = draw(st.one_of(st.none(), st.floats(0.01, 50)))
    rate = draw(st.floats(0.5, 600) if step is None else st.one_of(st.none(), st.floats(0.5, 600)))
    start = draw(
        st.one_of(st.floats(low, high), st.floats(high, high + 200), st.floats(low - 200, low))
    )
    return WriteLimits(writable=True, min=low, max=high, max_step=step, max_rate=rate), start


proposals = st.lists(
    st.tuples(
        st.sampled_from([0.2, 0.5, 1.0, 1.0, 1.0, 3.0, 30.0]),  # seconds to the next cycle
        st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([math.inf, -math.inf, math.nan]),
        ),
    ),
    min_size=1,
    max_size=15,
)


def decision(tag: str, value: float | bool) -> TagDecision:
    return TagDecision(tag, winner=Proposal(tag, value, 0, "property", rule="p"))


def slack(value: float) -> float:
    """float32 registers: the device keeps about 7 significant digits."""
    return 1e-5 * max(1.0, abs(value))


@EXAMPLES
@given(limits=limits(), sequence=proposals)
# Issue 13: a device at 12 with max 10 and max_step 0.5 must be written 10, not 11.5.
@example(
    limits=(WriteLimits(writable=True, min=0.0, max=10.0, max_step=0.5), 12.0),
    sequence=[(1.0, 5.0)],
)
async def test_no_proposals_make_a_write_outside_min_max_or_too_fast(
    plant, clock, limits, sequence
):
    tag_limits, start = limits
    await plant.set("setpoint", start)
    await plant.poll()
    actuator = Actuator(
        {"comp.setpoint": tag_limits},
        ActuationConfig.model_validate({"cycle": "1s"}),
        writers=plant.writers,
        table=plant.table,
        clock=clock,
    )
    held, held_at = await plant.value("setpoint"), clock.monotonic() - CYCLE
    for seconds, value in sequence:
        await actuator.apply([decision("comp.setpoint", value)], plant.table.snapshot(), clock.now)
        now_value = await plant.value("setpoint")
        if abs(now_value - held) > slack(held):  # a write happened
            low, high = tag_limits.min, tag_limits.max
            assert low - slack(low) <= now_value <= high + slack(high)
            move = abs(now_value - held)
            # From outside min/max the write may go further, but only to the nearest limit.
            nearest = (
                high if held > high + slack(high) else low if held < low - slack(low) else None
            )
            brought_back = nearest is not None and abs(now_value - nearest) <= slack(nearest)
            if tag_limits.max_step is not None:
                assert move <= tag_limits.max_step + slack(held) or brought_back
            if tag_limits.max_rate is not None:
                allowed = tag_limits.max_rate / 60 * (clock.now - held_at)
                assert move <= allowed + slack(held) or brought_back
            held, held_at = now_value, clock.now
        clock.advance(seconds)
        await plant.poll()


@st.composite
def integer_limits(draw: st.DrawFn) -> tuple[WriteLimits, int]:
    """Limits of a uint16 tag (not always on whole numbers, a max_step maybe below one step)
    and a whole start value inside or outside them."""
    low = draw(st.floats(100, 400))
    high = low + draw(st.floats(0.5, 300))
    step = draw(st.one_of(st.none(), st.floats(0.3, 40)))
    rate = draw(st.floats(20, 900) if step is None else st.one_of(st.none(), st.floats(20, 900)))
    start = draw(st.integers(0, round(high) + 200))
    return WriteLimits(writable=True, min=low, max=high, max_step=step, max_rate=rate), start


@EXAMPLES
@given(
    limits=integer_limits(),
    sequence=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 1.0, 3.0, 30.0]), st.floats(-100, 1000)),
        min_size=1,
        max_size=15,
    ),
)
async def test_integer_tag_gets_whole_values_inside_its_limits_and_no_faster(
    plant, clock, limits, sequence
):
    tag_limits, start = limits
    low, high = tag_limits.min, tag_limits.max
    await plant.set("speed", start)
    await plant.poll()
    actuator = Actuator(
        {"comp.speed": tag_limits},
        ActuationConfig.model_validate({"cycle": "1s"}),
        writers=plant.writers,
        table=plant.table,
        clock=clock,
    )
    held, held_at = start, clock.monotonic() - CYCLE
    for seconds, value in sequence:
        await actuator.apply([decision("comp.speed", value)], plant.table.snapshot(), clock.now)
        now_value = await plant.value("speed")
        if now_value != held:  # a write happened: a whole number, by construction of uint16
            assert low <= now_value <= high
            move = abs(now_value - held)
            nearest = high if held > high else low if held < low else None
            # From outside min/max: the whole value inside, nearest to the limit.
            brought_back = nearest is not None and abs(now_value - nearest) < 1
            # The actuator's float tolerance (checks.snap_to_steps): a max_rate of 40/min over
            # 1.5 s allows 0.9999999999999998, which is a whole step of 1, not a refusal.
            slack = 1e-9 * max(1.0, abs(held))
            if tag_limits.max_step is not None:
                assert move <= tag_limits.max_step + slack or brought_back
            if tag_limits.max_rate is not None:
                allowed = tag_limits.max_rate / 60 * (clock.now - held_at)
                assert move <= allowed + slack or brought_back
            held, held_at = now_value, clock.now
        clock.advance(seconds)
        await plant.poll()


@EXAMPLES
@given(
    min_on=st.sampled_from([0, 5, 20, 60]),
    min_off=st.sampled_from([0, 5, 20, 60]),
    sequence=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 4.0, 15.0]), st.booleans()), min_size=1, max_size=25
    ),
)
async def test_no_requests_switch_equipment_sooner_than_its_minimum_times(
    plant, clock, min_on, min_off, sequence
):
    await plant.set("run", False)
    await plant.poll()
    actuator = Actuator(
        {"comp.run": WriteLimits(writable=True)},
        ActuationConfig.model_validate(
            {"outputs": {"comp.run": {"min_on": f"{min_on}s", "min_off": f"{min_off}s"}}}
        ),
        writers=plant.writers,
        table=plant.table,
        clock=clock,
    )
    # Unknown how long it has been off: the protection runs from the actuator's first sight.
    state, since = False, clock.now
    for seconds, want in sequence:
        await actuator.apply([decision("comp.run", want)], plant.table.snapshot(), clock.now)
        now_state = await plant.value("run")
        if now_state != state:
            assert clock.now - since >= (min_on if state else min_off)
            state, since = now_state, clock.now
        clock.advance(seconds)
        await plant.poll()

"""PID: known answers, a closed loop on a simulated first-order plant, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.rules.blocks import InvalidInputError, TimeWentBackwardsError
from controller.rules.pid import PID, PIDConfig


class FirstOrderPlant:
    """tau * dy/dt = gain * u - y, integrated in small sub-steps (exact enough for the tests)."""

    def __init__(self, gain: float, tau: float, y: float = 0.0) -> None:
        self.gain, self.tau, self.y = gain, tau, y

    def run(self, u: float, seconds: float) -> float:
        steps = 10
        for _ in range(steps):
            self.y += (self.gain * u - self.y) / self.tau * (seconds / steps)
        return self.y


def config(**overrides: object) -> PIDConfig:
    return PIDConfig.model_validate({"kp": 1.0, **overrides})


def test_p_only_output_is_gain_times_error_plus_bias() -> None:
    pid = PID(config(kp=2.0, bias=50.0))
    assert pid.update(0.0, setpoint=10.0, measurement=8.0) == 54.0


def test_integral_grows_by_kp_over_ti_times_error_times_time() -> None:
    pid = PID(config(kp=2.0, ti="10s"))
    pid.update(0.0, setpoint=10.0, measurement=9.0)
    for t in range(1, 6):
        pid.update(float(t), setpoint=10.0, measurement=9.0)
    assert pid.integral == pytest.approx(2.0 / 10.0 * 1.0 * 5.0)


def test_direct_action_raises_output_when_measurement_is_above_setpoint() -> None:
    pid = PID(config(kp=3.0, action="direct", bias=10.0))
    assert pid.update(0.0, setpoint=20.0, measurement=25.0) == 25.0


def test_output_is_clamped_to_its_limits() -> None:
    pid = PID(config(kp=10.0, out_min=0.0, out_max=100.0))
    assert pid.update(0.0, setpoint=100.0, measurement=0.0) == 100.0
    assert pid.update(1.0, setpoint=0.0, measurement=100.0) == 0.0


def test_step_response_settles_on_a_first_order_plant() -> None:
    plant = FirstOrderPlant(gain=2.0, tau=20.0)
    # Lambda tuning for a 10 s closed-loop time constant: kp = tau / (gain * lambda), ti = tau.
    pid = PID(config(kp=1.0, ti="20s"))
    dt, peak = 0.5, 0.0
    for step in range(int(120 / dt)):
        u = pid.update(step * dt, setpoint=50.0, measurement=plant.y)
        peak = max(peak, plant.run(u, dt))
    assert plant.y == pytest.approx(50.0, abs=0.1)
    assert peak < 50.5


def test_anti_windup_bounds_the_integrator_while_saturated() -> None:
    # The plant cannot reach the setpoint: 100 % output gives only 200 of 300.
    plant = FirstOrderPlant(gain=2.0, tau=20.0)
    pid = PID(config(kp=1.0, ti="20s", out_max=100.0))
    for t in range(1000):
        u = pid.update(float(t), setpoint=300.0, measurement=plant.y)
        plant.run(u, 1.0)
    proportional = 300.0 - plant.y
    assert pid.output == 100.0
    assert pid.integral <= 100.0 - proportional + 1e-9


def test_anti_windup_leaves_saturation_as_soon_as_the_error_reverses() -> None:
    pid = PID(config(kp=1.0, ti="20s", out_max=100.0))
    for t in range(1000):
        pid.update(float(t), setpoint=300.0, measurement=200.0)
    assert pid.update(1000.0, setpoint=150.0, measurement=200.0) < 100.0


def test_bumpless_transfer_from_manual_gives_the_manual_output() -> None:
    pid = PID(config(kp=2.0, ti="30s", td="5s"))
    for t in range(10):
        pid.track(float(t), output=40.0, setpoint=70.0, measurement=55.0 + t)
    assert pid.update(9.0, setpoint=70.0, measurement=64.0) == pytest.approx(40.0)


def test_bumpless_transfer_moves_only_by_integral_action_in_the_first_cycle() -> None:
    pid = PID(config(kp=2.0, ti="30s"))
    pid.track(0.0, output=40.0, setpoint=70.0, measurement=60.0)
    first = pid.update(1.0, setpoint=70.0, measurement=60.0)
    assert first == pytest.approx(40.0 + 2.0 / 30.0 * 10.0 * 1.0)


def test_setpoint_step_gives_no_derivative_kick() -> None:
    pid = PID(config(kp=2.0, td="10s", bias=50.0))
    pid.update(0.0, setpoint=20.0, measurement=20.0)
    assert pid.update(1.0, setpoint=25.0, measurement=20.0) == pytest.approx(60.0)


def test_derivative_acts_on_the_measurement_rate() -> None:
    pid = PID(config(kp=2.0, td="10s", bias=50.0))
    pid.update(0.0, setpoint=20.0, measurement=20.0)
    # Rising measurement at 0.5/s in reverse action: D = -kp * td * 0.5 = -10.
    assert pid.update(1.0, setpoint=20.0, measurement=20.5) == pytest.approx(50.0 - 1.0 - 10.0)


def test_derivative_filter_approaches_the_unfiltered_value() -> None:
    pid = PID(config(kp=2.0, td="10s", derivative_filter="2s"))
    pid.update(0.0, setpoint=0.0, measurement=0.0)
    pid.update(1.0, setpoint=0.0, measurement=0.5)
    first = pid.derivative
    for t in range(2, 30):
        pid.update(float(t), setpoint=0.0, measurement=0.5 * t)
    assert first == pytest.approx(-10.0 / 3.0)
    assert pid.derivative == pytest.approx(-10.0, rel=1e-3)


def test_dt_zero_neither_integrates_nor_differentiates() -> None:
    pid = PID(config(kp=1.0, ti="10s", td="5s", bias=50.0))
    pid.update(0.0, setpoint=10.0, measurement=8.0)
    first = pid.update(1.0, setpoint=10.0, measurement=9.0)
    integral, derivative = pid.integral, pid.derivative
    assert pid.update(1.0, setpoint=10.0, measurement=9.0) == first
    assert (pid.integral, pid.derivative) == (integral, derivative)


def test_dt_zero_lets_p_follow_a_new_setpoint_at_once() -> None:
    pid = PID(config(kp=1.0, ti="10s", bias=50.0))
    pid.update(1.0, setpoint=10.0, measurement=10.0)
    assert pid.update(1.0, setpoint=15.0, measurement=10.0) == 55.0


def test_stall_longer_than_max_interval_is_not_integrated() -> None:
    pid = PID(config(kp=1.0, ti="10s", max_interval="10s"))
    pid.update(0.0, setpoint=10.0, measurement=0.0)
    pid.update(1.0, setpoint=10.0, measurement=0.0)
    integral = pid.integral
    pid.update(3601.0, setpoint=10.0, measurement=0.0)
    assert pid.integral == integral
    assert pid.stalls == 1


def test_stall_restarts_the_derivative() -> None:
    pid = PID(config(kp=1.0, td="10s", max_interval="10s", bias=50.0))
    pid.update(0.0, setpoint=10.0, measurement=0.0)
    pid.update(3600.0, setpoint=10.0, measurement=5.0)
    assert pid.derivative == 0.0


def test_integration_resumes_after_a_stall() -> None:
    pid = PID(config(kp=1.0, ti="10s", max_interval="10s"))
    pid.update(0.0, setpoint=10.0, measurement=0.0)
    pid.update(3600.0, setpoint=10.0, measurement=0.0)
    pid.update(3601.0, setpoint=10.0, measurement=0.0)
    assert pid.integral == pytest.approx(1.0)


def test_setpoint_weight_zero_puts_p_on_the_measurement_only() -> None:
    pid = PID(config(kp=2.0, setpoint_weight=0.0, bias=50.0))
    before = pid.update(0.0, setpoint=20.0, measurement=10.0)
    assert pid.update(0.0, setpoint=30.0, measurement=10.0) == before


def test_pid_refuses_time_going_backwards() -> None:
    pid = PID(config())
    pid.update(5.0, setpoint=1.0, measurement=0.0)
    with pytest.raises(TimeWentBackwardsError):
        pid.update(4.0, setpoint=1.0, measurement=0.0)


def test_pid_refuses_nan_measurement() -> None:
    with pytest.raises(InvalidInputError, match="measurement"):
        PID(config()).update(0.0, setpoint=1.0, measurement=float("nan"))


def test_pid_config_needs_ordered_limits() -> None:
    with pytest.raises(ValidationError, match="out_min"):
        PIDConfig(kp=1.0, out_min=10.0, out_max=10.0)


def test_pid_config_takes_durations_with_units() -> None:
    cfg = PIDConfig.model_validate({"kp": 1.5, "ti": "2min", "td": "500ms"})
    assert (cfg.ti, cfg.td) == (120.0, 0.5)


@given(
    kp=st.floats(min_value=0.01, max_value=100),
    ti=st.floats(min_value=0.1, max_value=1000),
    td=st.floats(min_value=0, max_value=100),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=50),
            st.floats(min_value=-1e4, max_value=1e4),
            st.floats(min_value=-1e4, max_value=1e4),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_output_always_within_limits(
    kp: float, ti: float, td: float, steps: list[tuple[float, float, float, bool]]
) -> None:
    cfg = {"kp": kp, "ti": f"{ti:.6f}s", "td": f"{td:.6f}s", "out_min": -5.0, "out_max": 95.0}
    pid = PID(PIDConfig.model_validate(cfg))
    now = 0.0
    for dt, setpoint, measurement, manual in steps:
        now += dt
        if manual:
            pid.track(now, output=50.0, setpoint=setpoint, measurement=measurement)
        else:
            assert -5.0 <= pid.update(now, setpoint, measurement) <= 95.0

"""The gateway's write lag, read from its config: a rule acting ahead of a known time adds it."""

from __future__ import annotations

from pathlib import Path

from controller.config import load_config
from controller.rules.config import ActuationConfig
from controller.rules.timing import ControlTiming

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_actuation_defaults() -> None:
    defaults = ActuationConfig()
    assert ControlTiming().cycle_s == defaults.cycle
    assert ControlTiming().write_s == defaults.write_timeout


def test_lag_from_the_config_cycle_write_bound_and_the_written_devices_poll() -> None:
    config = load_config(ROOT / "configs" / "demo.yaml").config
    timing = ControlTiming.of(config.actuation, config.devices)
    [device] = [d for d in config.devices if d.name == "process-plc"]
    lag = timing.write_lag_s("process-plc.press_1_standby")
    assert lag == config.actuation.cycle + config.actuation.write_timeout + device.poll_interval


def test_an_engine_cycle_other_than_the_configs_and_an_unknown_device() -> None:
    timing = ControlTiming.of(ActuationConfig.model_validate({"cycle": "2s"}), [], cycle_s=5.0)
    assert timing.cycle_s == 5.0
    # A device with no known poll period is taken as read back every cycle.
    assert timing.write_lag_s("plc.standby") == 5.0 + 5.0 + 5.0

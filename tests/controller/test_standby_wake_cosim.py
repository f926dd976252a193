"""idle_standby against the simulated cell through the real Modbus servers: machines whose
wake-up times are not a multiple of the controller's cycle, put to standby before the shift
and woken ahead of it, are ready when the shift starts (issue #14: production was lost in every
generated cell, the wake sent up to a cycle too late)."""

from __future__ import annotations

from pathlib import Path

from controller.config import Config, load_config
from controller.cosim import CoSimulation
from controller.rules.energy.idle_standby import IdleStandbyConfig
from drivers.sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
# Wake-up times (s) as a data sheet gives them: none a multiple of the 5 s cycle.
WAKE_UP = {"press-1": 68.0, "cnc-1": 183.0, "cnc-2": 121.0, "washer-1": 97.0}


def _scenario() -> Scenario:
    """normal-day from 05:40 (idle before the 06:00 shift), with the odd wake-up times."""
    scenario = load_scenario("normal-day")
    machines = [m.model_copy(update={"wake_up": WAKE_UP[m.name]}) for m in scenario.machines]
    start = scenario.start.replace(hour=5, minute=40)
    return scenario.model_copy(update={"start": start, "machines": machines})


def _config() -> Config:
    """configs/cosim.yaml with idle_standby alone, its machines' wake-up times the plant's and
    a pause of 10 min enough for a standby."""
    config = load_config(ROOT / "configs" / "cosim.yaml").config
    [standby] = [r for r in config.rules if isinstance(r, IdleStandbyConfig)]
    machines = [
        m.model_copy(update={"wake_up_time": WAKE_UP[m.name], "idle_for": 30.0, "min_pause": 600.0})
        for m in standby.machines
    ]
    return config.model_copy(update={"rules": [standby.model_copy(update={"machines": machines})]})


async def test_machines_woken_ahead_of_the_shift_lose_no_production() -> None:
    async with CoSimulation(_scenario(), _config(), cycle=5.0, opcua=False) as sim:
        await sim.advance(25 * 60)  # 05:40 to 06:05; the shift starts at 06:00
        truth = sim.plant.ground_truth()
    # Every machine really went to standby and came back (else the test proves nothing) ...
    assert truth.machine_restarts == dict.fromkeys(WAKE_UP, 1)
    # ... and each was awake when the shift started.
    assert truth.seconds_production_lost == dict.fromkeys(WAKE_UP, 0.0)

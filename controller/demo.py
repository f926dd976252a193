"""`edgecell demo` and `edgecell sim`: the whole product on one machine, no plant needed.

The demo starts the simulated cell, a private mosquitto on a free port (unless told to use the
config's broker) and the controller, with the config's device addresses pointed at the cell.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from controller.clock import ScaledClock
from controller.config import Config, LoadedConfig
from controller.localbroker import LocalMosquitto
from controller.runtime import Runtime

log = structlog.get_logger(__name__)

# Where a line for the person at the terminal goes (the CLI passes print).
Say = Callable[[str], None]


def _cell_endpoints(cell: Any) -> dict[str, Any]:
    endpoints: dict[str, Any] = dict(getattr(cell, "modbus_endpoints", {}))
    endpoints.update(getattr(cell, "opcua_endpoints", {}))
    return endpoints


async def run_demo(
    loaded: LoadedConfig,
    *,
    scenario: str,
    speed: float,
    duration: float | None,
    use_config_broker: bool,
    say: Say,
) -> int:
    from controller.cosim import point_config_at_cell  # noqa: PLC0415
    from drivers.sim.cell import SimCell  # noqa: PLC0415
    from drivers.sim.scenario import load_scenario  # noqa: PLC0415

    cell_scenario = load_scenario(scenario)
    # The controller's timers run at the cell's speed, so that demand windows, rule periods and
    # the PLCs' heartbeat timeouts agree with the plant's; its timestamps start from now, so
    # that what a watcher sees on MQTT looks like today (the demo has no time-of-day rules;
    # `edgecell report` runs on the scenario's own date).
    clock = ScaledClock(speed)
    with tempfile.TemporaryDirectory(prefix="edgecell-demo-") as state:
        async with SimCell(cell_scenario, speed=speed, ports=0) as cell:
            config = point_config_at_cell(loaded.config, cell, Path(state))
            if use_config_broker:
                return await _run_for(loaded, config, duration, clock, say)
            async with LocalMosquitto() as broker:
                mqtt = config.mqtt.model_copy(
                    update={"host": broker.host, "port": broker.port, "brokers": None}
                )
                config = config.model_copy(update={"mqtt": mqtt})
                return await _run_for(loaded, config, duration, clock, say)


async def _run_for(
    loaded: LoadedConfig, config: Config, duration: float | None, clock: ScaledClock, say: Say
) -> int:
    runtime = Runtime(
        LoadedConfig(config=config, path=loaded.path, digest=loaded.digest), clock=clock
    )
    runtime.install_signal_handlers()
    broker = config.mqtt.endpoints()[0]
    base = config.base_topic
    custom_base = "" if base == f"edgecell/{config.gateway.id}" else f" --base-topic '{base}'"
    sparkplug = ""
    if config.sparkplug.enabled:
        node = config.sparkplug.resolve_edge_node_id(config.gateway.id)
        sparkplug = (
            f"It is also Sparkplug B edge node {config.sparkplug.group_id}/{node}: "
            f"spBv1.0/{config.sparkplug.group_id}/# (docs/sparkplug.md).\n"
        )
    say(
        "edgecell demo is running. Watch it with:\n"
        f"  mosquitto_sub -h {broker.host} -p {broker.port} -t '{base}/#' -v\n"
        "or, in a live console (the console extra, in the dev install):\n"
        f"  edgecell watch --broker {broker.host}:{broker.port} --gateway {config.gateway.id}"
        f"{custom_base}\n"
        + sparkplug
        + (f"It stops after {duration:g} s." if duration else "Stop it with Ctrl-C.")
    )
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, runtime.request_stop)
    await runtime.run()
    return 0


async def run_sim(
    scenario: str,
    *,
    speed: float,
    seed: int | None,
    duration: float | None,
    base_port: int,
    say: Say,
) -> int:
    from drivers.sim.cell import SimCell  # noqa: PLC0415
    from drivers.sim.scenario import load_scenario  # noqa: PLC0415

    loaded = load_scenario(scenario)
    if seed is not None:
        loaded = loaded.model_copy(update={"seed": seed})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal  # noqa: PLC0415

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimCell(loaded, speed=speed, base_port=base_port or None) as cell:
        for name, endpoint in _cell_endpoints(cell).items():
            say(f"{name}: {endpoint}")
        log.info("sim_serving", scenario=scenario, speed=speed)
        if duration is not None:
            loop.call_later(duration, stop.set)
        await stop.wait()
    return 0

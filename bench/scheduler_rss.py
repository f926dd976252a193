"""What the scheduler costs the daemon in memory: `python -m bench.scheduler_rss` runs
`edgecell run` twice against one simulated site (a Modbus server in this process: meter,
battery, PV), once with the battery rules alone and once with a scheduler (a 24 h plan of 15-min
steps every 15 min, its PV forecast from a file), and reads the RSS of the daemon and of the
solver's process from /proc after `--seconds`. Figures: bench/README.md, "Scheduler runtime"."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procstat import process_tree, rss_bytes
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.points import DictPoints
from drivers.sim.site_plc import SITE_POINTS, SPEC, battery_rule, plc_device

RESULTS = Path(__file__).parent / "results" / "scheduler_runtime.json"

DEVICES = """
gateway: {{id: rss-bench, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: 1}}
devices:
{plc}actuation: {{cycle: 1s, verify_timeout: 3s, outputs: {{plc.rate_pct: {{refresh: 10s}}}}}}
rules:
{peak_shaving}"""

SCHEDULER = """{battery_schedule}tariff:
  default_price_per_kwh: 0.20
  periods: [{{name: peak, start: "08:00", end: "20:00", price_per_kwh: 0.30}}]
  demand_charge_per_kw_month: 10
  export_price_per_kwh: 0.05
scheduler:
  site: {{power: plc.power_kw}}
  battery: {{power: plc.battery_kw, soc: plc.soc_pct, capacity_kwh: 100, max_charge_kw: 50,
            max_discharge_kw: 50}}
  load:
    schedule: {{timezone: UTC, default: all}}
    prior_kw: {{all: 90}}
    pv_power: plc.pv_kw
  pv: {{latitude: 48.78, longitude: 9.18, kwp: 60, file: {forecast}}}
"""

# The site's process image, set by hand (the Modbus server in front of it is real): 10 kW of PV.
POINTS = {**SITE_POINTS, "site.pv_kw": 10.0}


def forecast(path: Path) -> None:
    now = int(time.time() * 1000)
    points = [{"at_ms": now + h * 3_600_000, "factor": 0.8} for h in range(37)]
    path.write_text(json.dumps({"issued_ms": now, "points": points}))


async def measure(config: str, seconds: float) -> dict[str, int | float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "edgecell.yaml"
        path.write_text(config.replace("STATE", str(Path(tmp) / "state")))
        daemon = subprocess.Popen(  # noqa: ASYNC220 (measured from outside, as a user runs it)
            [sys.executable, "-m", "controller", "run", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.sleep(seconds)
            pids = process_tree(daemon.pid)
            own, own_peak = rss_bytes(daemon.pid)
            workers = [pid for pid in pids if pid != daemon.pid]
            worker = sum(rss_bytes(pid)[0] for pid in workers)
            worker_peak = sum(rss_bytes(pid)[1] for pid in workers)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
    return {
        "daemon_rss_mib": round(own / 2**20, 1),
        "daemon_peak_rss_mib": round(own_peak / 2**20, 1),
        "worker_rss_mib": round(worker / 2**20, 1),
        "worker_peak_rss_mib": round(worker_peak / 2**20, 1),
        "processes": len(pids),
    }


async def main(seconds: float) -> dict[str, dict[str, int | float]]:
    async with SimModbusServer(DictPoints(POINTS), [SPEC], port=0) as server:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "forecast.json"
            forecast(file)
            base = DEVICES.format(
                state="STATE",
                plc=plc_device(server.port, "1s"),
                peak_shaving=battery_rule("battery_peak_shaving"),
            )
            scheduler = SCHEDULER.format(
                battery_schedule=battery_rule("battery_schedule"), forecast=file
            )
            without = await measure(base, seconds)
            with_scheduler = await measure(base + scheduler, seconds)
    return {"battery_rules_only": without, "with_scheduler": with_scheduler}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    figures = asyncio.run(main(args.seconds))
    figures_json = json.dumps(figures, indent=2)
    print(figures_json)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(figures_json + "\n")

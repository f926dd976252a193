"""A one-PLC site for the scheduler's runs: the site meter's kW, the battery's kW and SoC, the
PV's kW, a charger's connected flag and the battery's rate setpoint on one Modbus map, and the
daemon's device entry that reads it. No plant behind it: whoever serves it sets the values by
hand (the scheduler's daemon tests, tests/scheduler/site.py, and bench.scheduler_rss)."""

from __future__ import annotations

from drivers.sim.points import PointValue
from drivers.sim.scenario import ModbusDeviceSpec

# The process image at the start.
SITE_POINTS: dict[str, PointValue] = {
    "site.power_kw": 90.0,
    "site.battery_kw": 0.0,
    "site.soc_pct": 50.0,
    "site.pv_kw": 0.0,
    "site.ev_connected": 0.0,
    "site.rate_pct": 0.0,
}

# Every point a float32 (two registers); the rate setpoint apart, as a PLC's writable block.
SPEC = ModbusDeviceSpec(
    name="site",
    port=0,
    registers=[
        {"point": "site.power_kw", "address": 0},
        {"point": "site.battery_kw", "address": 2},
        {"point": "site.soc_pct", "address": 4},
        {"point": "site.pv_kw", "address": 6},
        {"point": "site.ev_connected", "address": 8},
        {"point": "site.rate_pct", "address": 100},
    ],
)


def plc_device(port: int, poll_interval: str) -> str:
    """The config's `devices:` entry `plc` for the map above (YAML, indented for `devices:`):
    a float32 tag per register, named as its point without `site.`, `rate_pct` writable within
    ±100 %."""
    writable = ", writable: true, min: -100, max: 100,\n         fallback: 0"
    tags = "".join(
        f"      - {{name: {name}, address: {register.address}, type: float32"
        f"{writable if name == 'rate_pct' else ''}}}\n"
        for register in SPEC.registers
        for name in [register.point.removeprefix("site.")]
    )
    return f"""\
  - name: plc
    driver: modbus
    link: {{transport: tcp, host: 127.0.0.1, port: {port}}}
    poll_interval: {poll_interval}
    timeout: 500ms
    tags:
{tags}"""


# The battery rules' keys on the PLC's tags: a 50 kW battery keeping a 10 % reserve.
_BATTERY = (
    "power: plc.power_kw, battery_power: plc.battery_kw, soc: plc.soc_pct,\n"
    "     setpoint: plc.rate_pct, max_discharge_kw: 50, max_charge_kw: 50, reserve_pct: 10"
)
_OWN = {
    "battery_schedule": "priority: 30",
    "battery_peak_shaving": "priority: 20, limit_kw: 80, recharge_kw: 20",
}


def battery_rule(kind: str) -> str:
    """The config's `rules:` entry of that kind on the PLC (YAML, indented for `rules:`):
    `battery_schedule` above `battery_peak_shaving`, which holds the import at 80 kW and
    recharges below 20 kW."""
    return f"  - {{name: {kind}, kind: {kind}, {_BATTERY},\n     {_OWN[kind]}}}\n"

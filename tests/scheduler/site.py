"""A site behind a real Modbus server (meter, battery, PV, a charger's connected flag) and the
daemon with a scheduler over a real mosquitto: what the scheduler's daemon tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.points import DictPoints
from drivers.sim.site_plc import SITE_POINTS, SPEC, battery_rule, plc_device
from tests.waiting import until

CONFIG = """
gateway: {{id: {gateway}, state_dir: {state}}}
mqtt: {{host: 127.0.0.1, port: {broker}}}
devices:
{plc}actuation:
  cycle: 200ms
  verify_timeout: 2s
  outputs: {{plc.rate_pct: {{refresh: 10s}}}}
tariff:
  timezone: UTC
  default_price_per_kwh: 0.20
  periods: [{{name: peak, days: [mon, tue, wed, thu, fri, sat, sun], start: "08:00", end: "20:00",
             price_per_kwh: 0.30}}]
  demand_charge_per_kw_month: 10
  export_price_per_kwh: 0.05
scheduler:
  solve_time_limit: 1s
  worker_timeout: {worker_timeout}
  retry: 1s
  input_max_age: 10s
  disturbance: {{soc_pct: 10, load_kw: 1000, hold: 1s, min_interval: 1s}}
  site: {{power: plc.power_kw}}
  battery: {{power: plc.battery_kw, soc: plc.soc_pct, capacity_kwh: 100, max_charge_kw: 50,
            max_discharge_kw: 50, reserve_pct: 10, soc_max_pct: 95}}
  load:
    schedule: {{timezone: UTC, default: all}}
    prior_kw: {{all: 90}}
    pv_power: plc.pv_kw
  pv: {{latitude: 48.78, longitude: 9.18, kwp: 60, max_age: {pv_max_age}}}
  evs:
    - {{name: car, connected: plc.ev_connected, max_kw: 11, arrive: "00:00", depart: "24:00",
       energy_kwh: 20, days: [mon, tue, wed, thu, fri, sat, sun]}}
rules:
{rules}"""


@dataclass
class Site:
    plc: DictPoints
    server: SimModbusServer
    runtime: Runtime
    client: aiomqtt.Client
    base: str
    messages: list[tuple[str, Any]]

    async def set(self, **points: float) -> None:
        for name, value in points.items():
            self.plc.points[f"site.{name}"] = value
        await self.server.refresh()

    async def publish_forecast(self, payload: bytes, *, retain: bool = False) -> None:
        await self.client.publish(f"{self.base}/forecast/pv", payload, qos=1, retain=retain)

    def on(self, suffix: str) -> list[Any]:
        return [body for topic, body in self.messages if topic == f"{self.base}/{suffix}"]

    def mark(self, suffix: str) -> int:
        """How many messages `{base}/{suffix}` has had: `wait_for(..., since=)` looks after."""
        return len(self.on(suffix))

    async def wait_for(
        self, suffix: str, test: Any = None, within: float = 20.0, since: int = 0
    ) -> Any:
        """The first message on `{base}/{suffix}` from the `since`-th on passing `test`."""
        found = await until(
            lambda: [b for b in self.on(suffix)[since:] if test is None or test(b)][:1],
            within=within,
            shown=lambda: self.on(suffix)[-5:],
        )
        return found[0]


@contextlib.asynccontextmanager
async def running_site(
    tmp_path: Path,
    broker: Any,
    gateway: str,
    *,
    worker_timeout: str = "20s",
    pv_max_age: str = "1h",
) -> AsyncIterator[Site]:
    plc = DictPoints(SITE_POINTS)
    async with SimModbusServer(plc, [SPEC], port=0) as server:
        text = CONFIG.format(
            gateway=gateway,
            state=tmp_path / "state",
            broker=broker.port,
            plc=plc_device(server.port, "200ms"),
            rules=battery_rule("battery_schedule") + battery_rule("battery_peak_shaving"),
            worker_timeout=worker_timeout,
            pv_max_age=pv_max_age,
        )
        path = tmp_path / "c.yaml"
        path.write_text(text, encoding="utf-8")  # a reload reads it again
        runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), path, "x"))
        base = f"edgecell/{gateway}"
        messages: list[tuple[str, Any]] = []
        async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
            for suffix in ("plan", "events/plan", "events/forecast", "alarms/#"):
                await client.subscribe(f"{base}/{suffix}", qos=1)

            async def collect() -> None:
                async for message in client.messages:
                    body = orjson.loads(message.payload) if message.payload else None
                    messages.append((message.topic.value, body))

            collector = asyncio.create_task(collect())
            daemon = asyncio.create_task(runtime.run())
            try:
                yield Site(plc, server, runtime, client, base, messages)
            finally:
                runtime.request_stop()
                await asyncio.wait_for(daemon, 15)
                collector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collector

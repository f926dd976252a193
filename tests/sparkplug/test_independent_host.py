"""An independent Sparkplug host reads our traffic: tests/sparkplug/host/host.js, on Eclipse
Tahu's JavaScript `sparkplug-payload` and MQTT.js (installed by scripts/setup), run by node.
It builds the node/device/metric tree from the births alone, sees DDATA values equal to the
JSON contract's, sends a DCMD write that reaches the simulated PLC over Modbus, and a Rebirth
that is answered."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from spb_peers import GROUP, NODE, chiller_points, chiller_spec, config_text

from controller.config import LoadedConfig, parse_config
from controller.runtime import Runtime
from drivers.sim.modbus_server import SimModbusServer
from tests.waiting import until

HOST = Path(__file__).parent / "host"


class Host:
    """The node process, its events as they arrive, commands to its stdin."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.events.append(orjson.loads(line))
            self._arrived.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for(
        self, condition: Callable[[], Any], within: float = 15.0
    ) -> Any:
        return await until(
            condition, within=within, arrived=self._arrived, shown=lambda: self.events[-10:]
        )

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        await self.process.stdin.drain()

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def start_host(broker: Any, json_base: str, group: str = GROUP) -> Host:
    node = shutil.which("node")
    assert node is not None, "node is needed: scripts/setup installs it"
    assert (HOST / "node_modules" / "sparkplug-payload").is_dir(), (
        "run scripts/setup: it installs tests/sparkplug/host's npm packages"
    )
    process = await asyncio.create_subprocess_exec(
        node, str(HOST / "host.js"), f"mqtt://{broker.host}:{broker.port}", group, json_base,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    host = Host(process)
    await host.wait_for(lambda: host.of("ready"))
    return host


def latest_ddata(host: Host, tag: str, value: float) -> dict[str, Any] | None:
    return next(
        (e for e in host.of("ddata")
         if e["values"].get(tag) == pytest.approx(value) and tag not in e["historical"]),
        None,
    )


async def test_an_independent_host_builds_the_tree_reads_data_writes_and_rebirths(
    tmp_path: Path, mosquitto: Any
) -> None:
    chiller = chiller_points()
    async with SimModbusServer(chiller, [chiller_spec()], port=0) as server:
        host = await start_host(mosquitto, "edgecell/spb-gw")
        text = config_text(tmp_path, mosquitto, server.port)
        runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))
        daemon = asyncio.create_task(runtime.run())
        try:
            # The tree, from the births alone.
            nbirth = (await host.wait_for(lambda: host.of("nbirth")))[0]
            assert nbirth["node"] == NODE
            assert nbirth["seq"] == 0
            names = {m["name"]: m for m in nbirth["metrics"]}
            assert names["Node Control/Rebirth"]["type"] == "Boolean"
            assert names["Node Control/Rebirth"]["value"] is False
            assert names["bdSeq"]["value"] == nbirth["bdSeq"]
            dbirth = await host.wait_for(lambda: next(
                (e for e in host.of("dbirth")
                 if all(m["properties"]["Quality"]["value"] == 192 for m in e["metrics"])),
                None,
            ))
            metrics = {m["name"]: m for m in dbirth["metrics"]}
            assert set(metrics) == {"supply_c", "setpoint_c", "starts"}
            assert (metrics["supply_c"]["type"], metrics["starts"]["type"]) == ("Float", "UInt16")
            assert metrics["supply_c"]["value"] == pytest.approx(7.5)
            assert metrics["starts"]["value"] == 3
            assert metrics["supply_c"]["properties"]["engUnit"]["value"] == "degC"
            assert metrics["supply_c"]["properties"]["Quality"]["type"] == "Int32"

            # DDATA, read through the tree's aliases and datatypes, equals the JSON contract.
            chiller.points["chiller.supply_c"] = 8.25
            chiller.points["chiller.starts"] = 4
            await server.refresh()
            await host.wait_for(lambda: latest_ddata(host, "starts", 4))
            await host.wait_for(lambda: any(
                e["values"].get("starts") == 4 for e in host.of("json")
            ))
            live = {}
            for event in host.of("ddata"):
                live.update({k: v for k, v in event["values"].items()
                             if k not in event["historical"]})
            json_values = {}
            for event in host.of("json"):
                json_values.update(event["values"])
            assert live["supply_c"] == pytest.approx(8.25)
            assert live["supply_c"] == pytest.approx(json_values["supply_c"])
            assert live["starts"] == json_values["starts"] == 4

            # A DCMD write reaches the simulated PLC (through the actuator), and is read back.
            await host.send({"cmd": "write", "node": NODE, "device": "chiller",
                             "metric": "setpoint_c", "value": 9.5})
            await host.wait_for(lambda: latest_ddata(host, "setpoint_c", 9.5))
            assert chiller.points["chiller.setpoint_c"] == pytest.approx(9.5)

            # A Rebirth is answered: NBIRTH (seq 0, same bdSeq) and the DBIRTH again.
            births = len(host.of("dbirth"))
            await host.send({"cmd": "rebirth", "node": NODE})
            again = (await host.wait_for(lambda: len(host.of("nbirth")) >= 2 and host.of("nbirth")))
            assert again[1]["seq"] == 0
            assert again[1]["bdSeq"] == nbirth["bdSeq"]
            await host.wait_for(lambda: len(host.of("dbirth")) > births)
            reborn = {m["name"]: m["value"] for m in host.of("dbirth")[-1]["metrics"]}
            assert reborn["setpoint_c"] == pytest.approx(9.5)
            assert not host.of("error"), host.of("error")
            assert not host.of("unborn"), host.of("unborn")  # it was there before the births
        finally:
            runtime.request_stop()
            await asyncio.wait_for(daemon, 10)
            ndeath = await host.wait_for(lambda: host.of("ndeath"))
            await host.close()
        assert ndeath[0]["bdSeq"] == nbirth["bdSeq"]
        assert ndeath[0]["hasSeq"] is False

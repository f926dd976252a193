"""The independent Sparkplug host (tests/sparkplug/host/host.js: node, Eclipse Tahu's
sparkplug-payload, MQTT.js) against a running `edgecell demo`, as a SCADA joining a live cell:
it asks a rebirth, builds the tree of every configured device from the births alone, sees every
DDATA value the JSON contract also published, and writes the OPC UA chiller setpoint by DCMD."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import yaml
from test_independent_host import start_host

ROOT = Path(__file__).resolve().parents[2]
HINT = re.compile(rb"mosquitto_sub -h (\S+) -p (\d+) -t '([^']+)'")
DEMO = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
GROUP = DEMO["sparkplug"]["group_id"]
NODE = DEMO["gateway"]["id"]
SETPOINT = ("utility-plc", "chiller_setpoint_c")  # OPC UA, writable 5-14, max_step 0.5


class Broker:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port


async def test_a_host_joining_the_running_demo_reads_and_writes_it() -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", "--log-format", "json", "demo",
        "--duration", "60", "--speed", "5",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert demo.stdout is not None
    host = None
    try:
        async with asyncio.timeout(30):
            match = None
            while match is None:
                line = await demo.stdout.readline()
                assert line, "the demo ended without printing how to watch it"
                match = HINT.search(line)
        broker = Broker(match.group(1).decode(), int(match.group(2)))
        base = match.group(3).decode().removesuffix("/#")
        host = await start_host(broker, base, GROUP)
        # Joining late, the host asks for the births (they went out before it subscribed).
        await host.send({"cmd": "rebirth", "node": NODE})
        devices = {d["name"]: d for d in DEMO["devices"]}
        await host.wait_for(lambda: set(devices) <= {e["device"] for e in host.of("dbirth")},
                            within=30)
        nbirth = host.of("nbirth")[0]
        assert nbirth["node"] == NODE
        assert nbirth["seq"] == 0
        for event in host.of("dbirth"):
            names = {m["name"] for m in event["metrics"]}
            assert names == {t["name"] for t in devices[event["device"]]["tags"]}
        opcua = next(e for e in host.of("dbirth") if e["device"] == SETPOINT[0])
        assert {m["type"] for m in opcua["metrics"]} <= {"Double", "Int64", "Boolean", "String"}

        # Every live DDATA value is one the JSON contract published for that tag too.
        await host.wait_for(lambda: len(host.of("ddata")) >= 10, within=30)
        json_values = {(e["device"], tag, value) for e in host.of("json")
                       for tag, value in e["values"].items()}
        ddata_values = {(e["device"], tag, value) for e in host.of("ddata")
                        for tag, value in e["values"].items() if tag not in e["historical"]}
        assert len(ddata_values) >= 10
        await host.wait_for(lambda: ddata_values <= {
            (e["device"], tag, value) for e in host.of("json")
            for tag, value in e["values"].items()
        } or None, within=10)
        assert json_values  # the JSON side was seen as well

        # A DCMD write of the OPC UA setpoint: through the actuator (written event, command:
        # sparkplug) to the simulated chiller, whose value comes back in DDATA.
        # The rules may have moved it since the births: start from the latest value seen.
        current = next(m["value"] for m in opcua["metrics"] if m["name"] == SETPOINT[1])
        for event in host.of("ddata"):
            if event["device"] == SETPOINT[0] and SETPOINT[1] in event["values"]:
                current = event["values"][SETPOINT[1]]
        target = round(min(13.5, max(5.5, current + 0.2)), 2)
        await host.send({"cmd": "write", "node": NODE, "device": SETPOINT[0],
                         "metric": SETPOINT[1], "value": target})
        written = await host.wait_for(lambda: next(
            (e["payload"] for e in host.of("write_event")
             if e["payload"]["source"] == "command:sparkplug"), None), within=20)
        assert written["tag"] == ".".join(SETPOINT)
        assert written["outcome"] == "written", written
        assert abs(written["requested"] - target) < 1e-9
        # Written as asked, or ramped by the tag's max_step when a rule moved it meanwhile.
        assert abs(written["new"] - target) < 1e-9 or any(
            c.startswith("max_step") for c in written["clamps"]), written
        await host.wait_for(lambda: any(
            e["device"] == SETPOINT[0]
            and abs(e["values"].get(SETPOINT[1], -1) - written["new"]) < 1e-6
            for e in host.of("ddata")), within=20)
        assert not host.of("error"), host.of("error")
    finally:
        if demo.returncode is None:
            demo.terminate()
            await asyncio.wait_for(demo.wait(), 20)
        if host is not None:
            await host.close()
    assert demo.returncode == 0



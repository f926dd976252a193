"""The README's demo command: simulated cell + private mosquitto + controller, as a user runs it.

A subscriber started from the printed `mosquitto_sub` hint sees data from every device of
configs/demo.yaml, the online birth, and device statuses; the demo exits 0 after --duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
HINT = re.compile(rb"mosquitto_sub -h (\S+) -p (\d+) -t '([^']+)'")
SETPOINT = "compressor.pressure_setpoint_bar"


def steers(state: dict[str, Any]) -> bool:
    """A published rule state saying compressed_air, in auto mode, has its setpoint on the
    compressor (not refused, not a shadow, not another rule's)."""
    result = state.get("results", {}).get(SETPOINT, {})
    return (
        state["rule"] == "compressed_air"
        and state["mode"] == "auto"
        and state["active"] is True
        and result.get("outcome") in ("written", "unchanged")
        and result.get("value") == state["outputs"][SETPOINT]
    )


async def test_demo_publishes_every_device_and_stops_by_itself() -> None:
    devices = {
        d["name"] for d in yaml.safe_load((ROOT / "configs/demo.yaml").read_text())["devices"]
    }
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        "--log-format",
        "json",
        "demo",
        "--duration",
        "30",  # generous on a loaded 2-core machine: the test stops watching once it has seen all
        "--speed",
        "5",  # five simulated seconds per second: the control loop moves within the test
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert demo.stdout is not None
    seen_data: set[str] = set()
    seen_status: dict[str, str] = {}
    rule_states: list[dict[str, Any]] = []
    writes: list[dict[str, Any]] = []
    birth = None
    try:
        async with asyncio.timeout(30):
            match = None
            while match is None:
                line = await demo.stdout.readline()
                assert line, "the demo ended without printing how to watch it"
                match = HINT.search(line)
        host, port = match.group(1).decode(), int(match.group(2))
        topic_filter = match.group(3).decode()
        assert host == "127.0.0.1"
        async with aiomqtt.Client(host, port, identifier="test-demo-watcher", timeout=5) as client:
            await client.subscribe(topic_filter, qos=1)
            # Watching ends when everything was seen, or after 28 s: the asserts below say what
            # was missing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(28):
                    async for message in client.messages:
                        levels = message.topic.value.split("/")
                        payload = orjson.loads(message.payload)  # type: ignore[arg-type]
                        if levels[2] == "data":
                            seen_data.add(levels[3])
                            assert all(v["q"] == "good" for v in payload["values"].values()), (
                                payload
                            )
                        elif levels[2] == "devices":
                            seen_status[levels[3]] = payload["state"]
                        elif levels[2] == "status":
                            birth = payload
                        elif levels[2] == "rules":
                            rule_states.append(payload)
                        elif (
                            levels[2:4] == ["events", "writes"] and payload["outcome"] == "written"
                        ):
                            writes.append(payload)
                        if seen_data >= devices and birth and any(map(steers, rule_states)):
                            break
        code = await asyncio.wait_for(demo.wait(), 40)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert seen_data == devices
    assert birth is not None
    assert birth["state"] == "online"
    assert set(seen_status.values()) == {"connected"}
    # The closed loop runs in auto mode: compressed_air's setpoint is on the compressor (written,
    # or already held: the rule starts from 7.5 bar, which may be what the PLC holds, and its
    # first trim comes only after delay + period, 4 simulated minutes).
    assert any(map(steers, rule_states)), [s for s in rule_states if s["rule"] == "compressed_air"]
    # Whatever it did write went to the compressor's setpoint, within the rule's reset range.
    for write in writes:
        if write["source"] == "rule:compressed_air":
            assert write["tag"] == SETPOINT
            assert write["mode"] == "auto"
            assert 6.0 <= write["new"] <= 8.0
    assert code == 0

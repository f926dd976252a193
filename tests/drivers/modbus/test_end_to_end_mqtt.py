"""End to end: a real Modbus server -> `edgecell run` (a real process) -> mosquitto -> a subscriber.

The values that arrive on MQTT equal what the server holds, for every type and byte/word order;
a change on the server is published; SIGTERM stops the daemon within 5 s with offline retained.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from drivers.modbus.codec import encode
from drivers.modbus.config import ByteOrder, DataType

ROOT = Path(__file__).resolve().parents[3]

# One value per type that exercises its full width and sign (and is exact in its type).
VALUES: dict[DataType, Any] = {
    DataType.INT16: -12345,
    DataType.UINT16: 54321,
    DataType.INT32: -123456789,
    DataType.UINT32: 3_000_000_001,
    DataType.INT64: -(2**40) - 5,
    DataType.UINT64: 2**63 + 7,
    DataType.FLOAT32: 3.5,
    DataType.FLOAT64: math.pi,
    DataType.STRING: "EDGE-CELL",
}
STRING_REGISTERS = 5
FC_WRITE_REGISTERS = 16
FC_WRITE_COILS = 15


def _register_map() -> tuple[list[dict[str, Any]], dict[int, list[int]], dict[str, Any]]:
    """Tags for every (type, order), the registers that hold them, and the expected values."""
    tags: list[dict[str, Any]] = []
    registers: dict[int, list[int]] = {}
    expected: dict[str, Any] = {}
    address = 0
    for order in ByteOrder:
        for dtype, value in VALUES.items():
            name = f"{dtype.value}_{order.value.lower()}"
            tag: dict[str, Any] = {
                "name": name,
                "address": address,
                "type": dtype.value,
                "order": order.value,
            }
            length = STRING_REGISTERS if dtype is DataType.STRING else None
            if length is not None:
                tag["length"] = length
            words = encode(value, dtype, order, length=length)
            registers[address] = words
            tags.append(tag)
            expected[name] = value
            address += len(words)
    # One bit of a register, a coil, and a scaled value.
    registers[address] = [0b0000_0000_0000_1000]
    tags.append({"name": "bit3", "address": address, "type": "bit", "bit": 3})
    expected["bit3"] = True
    address += 1
    registers[address] = [2345]
    tags.append(
        {"name": "scaled", "address": address, "type": "int16", "scale": 0.1, "unit": "bar"}
    )
    expected["scaled"] = 234.5
    tags.append({"name": "running", "table": "coil", "address": 5, "type": "bool"})
    expected["running"] = True
    return tags, registers, expected


def _write_config(tmp_path: Path, broker: Any, port: int, tags: list[dict[str, Any]]) -> Path:
    config = {
        "gateway": {"id": "e2e", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": broker.host, "port": broker.port, "health_interval": "1s"},
        "devices": [
            {
                "name": "plc",
                "driver": "modbus",
                "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                "poll_interval": "200ms",
                "timeout": "500ms",
                "tags": tags,
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _start_daemon(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller", "--log-format", "json", "run", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _latest_values(payloads: list[Any]) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for payload in payloads:
        for tag, entry in payload["values"].items():
            latest[tag] = entry
    return latest


async def test_every_type_and_order_arrives_on_mqtt_as_the_server_holds_it(
    tmp_path: Path, modbus_server: Any, mosquitto: Any, mqtt_collect: Any
) -> None:
    tags, registers, expected = _register_map()
    server = await modbus_server()
    for address, words in registers.items():
        await server.set(FC_WRITE_REGISTERS, address, words)
    await server.set(FC_WRITE_COILS, 5, [True])
    data = await mqtt_collect(mosquitto, "edgecell/e2e/data/plc")
    status = await mqtt_collect(mosquitto, "edgecell/e2e/status")
    daemon = _start_daemon(_write_config(tmp_path, mosquitto, server.port, tags))
    try:
        await data.wait_for(lambda _: expected.keys() <= _latest_values(data.payloads()).keys(), 20)
        latest = _latest_values(data.payloads())
        for name, value in expected.items():
            assert latest[name]["q"] == "good", (name, latest[name])
            if isinstance(value, float):
                assert math.isclose(latest[name]["v"], value, rel_tol=1e-12), (name, latest[name])
            else:
                assert latest[name]["v"] == value, (name, latest[name])
        seqs = [p["seq"] for p in data.payloads()]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)

        # A change on the server is published (report by exception), and only the change.
        before = len(data.messages)
        await server.set(FC_WRITE_REGISTERS, registers_address(tags, "int16_abcd"), [7])
        await data.wait_for(
            lambda m: any("int16_abcd" in p["values"] for p in data.payloads()[before:])
        )
        changed = next(p for p in data.payloads()[before:] if "int16_abcd" in p["values"])
        assert changed["values"]["int16_abcd"]["v"] == 7
        assert set(changed["values"]) == {"int16_abcd"}
    finally:
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(daemon.wait, 10)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        stopped_in = time.monotonic() - started
    stderr = daemon.stderr.read().decode() if daemon.stderr else ""
    assert code == 0, stderr[-2000:]
    assert stopped_in < 5.0
    await status.wait_for(lambda _: status.payloads()[-1]["state"] == "offline")


def registers_address(tags: list[dict[str, Any]], name: str) -> int:
    return next(int(t["address"]) for t in tags if t["name"] == name)


async def test_a_dead_device_is_reported_and_the_healthy_one_keeps_publishing(
    tmp_path: Path, modbus_server: Any, refused_port: int, mosquitto: Any, mqtt_collect: Any
) -> None:
    server = await modbus_server()
    await server.set(FC_WRITE_REGISTERS, 0, [42])
    config = {
        "gateway": {"id": "e2e2", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [
            {
                "name": name,
                "driver": "modbus",
                "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                "poll_interval": "200ms",
                "timeout": "300ms",
                "tags": [{"name": "counter", "address": 0, "type": "uint16"}],
            }
            for name, port in (("alive", server.port), ("dead", refused_port))
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    statuses = await mqtt_collect(mosquitto, "edgecell/e2e2/devices/+/status")
    data = await mqtt_collect(mosquitto, "edgecell/e2e2/data/+")
    daemon = _start_daemon(path)
    try:

        def state_of(device: str) -> str | None:
            states = [p["state"] for p in statuses.payloads() if p["device"] == device]
            return states[-1] if states else None

        await statuses.wait_for(lambda _: state_of("dead") in {"reconnecting", "failed"}, 15)
        dead = [p for p in statuses.payloads() if p["device"] == "dead"][-1]
        assert "refused" in dead["last_error"].lower()
        await data.wait_for(lambda m: any(m_.topic.value.endswith("/dead") for m_ in m), 10)
        bad = [
            p
            for m, p in zip(data.messages, data.payloads(), strict=True)
            if m.topic.value.endswith("/dead")
        ]
        assert bad[0]["values"]["counter"]["q"] == "bad"
        assert bad[0]["values"]["counter"]["v"] is None
        # The healthy device keeps publishing its changes while the other one is dead.
        for value in (43, 44, 45):
            await server.set(FC_WRITE_REGISTERS, 0, [value])
            await data.wait_for(
                lambda m, v=value: any(
                    p["values"].get("counter", {}).get("v") == v
                    for mm, p in zip(m, data.payloads(), strict=True)
                    if mm.topic.value.endswith("/alive")
                ),
                5,
            )
    finally:
        daemon.send_signal(signal.SIGTERM)
        await asyncio.to_thread(daemon.wait, 10)

"""The gateways under test, each as the files and the command that start it against the
benchmark's devices and broker, and how its messages are read back.

Rows: edgecell in both publishing modes, Node-RED 4 + node-red-contrib-modbus (raw arrays, and
a function node decoding named scaled values), the ThingsBoard IoT Gateway (range reads of 125
registers, and one entry per tag as its examples do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import subscriber
from bench.workload import SCALE, Workload, device_name, tag_name

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"
NODE_RED = PEERS / "nodered" / "node_modules" / "node-red" / "red.js"
TB_PYTHON = PEERS / "thingsboard" / "venv" / "bin" / "python"


def _tb_package_config() -> Path | None:
    """The config folder the ThingsBoard gateway package ships (its logs.json)."""
    lib = PEERS / "thingsboard" / "venv" / "lib"
    return next(lib.glob("python3*/site-packages/thingsboard_gateway/config"), None)


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Gateway:
    key: str
    label: str
    mode: str  # "every_poll" or "changes": what a complete delivery is
    topic_filter: str
    parser: subscriber.Parser | None  # None: raw register arrays
    peer: str | None = None  # which bench/install-peers package it needs
    answer_thingsboard: bool = False

    def values_per_poll(self, workload: Workload) -> int:
        """What one complete poll of every device delivers, counted as its messages count."""
        if self.parser is None:
            return workload.devices * workload.registers
        return workload.tags

    def prepare(self, workdir: Path, broker_port: int, ports: list[int],
                workload: Workload) -> Launch:
        workdir.mkdir(parents=True, exist_ok=True)
        return _PREPARE[self.key](self, workdir, broker_port, ports, workload)


GATEWAYS: dict[str, Gateway] = {
    g.key: g
    for g in (
        Gateway("edgecell", "edgecell, every value every poll", "every_poll",
                "edgecell/bench/data/#", subscriber.parse_edgecell),
        Gateway("edgecell-changes", "edgecell, report by exception", "changes",
                "edgecell/bench/data/#", subscriber.parse_edgecell),
        Gateway("nodered-raw", "Node-RED, raw arrays", "every_poll",
                "bench/nodered-raw/#", None, peer="nodered"),
        Gateway("nodered-decode", "Node-RED, function node decoding", "every_poll",
                "bench/nodered-decode/#", subscriber.parse_edgecell, peer="nodered"),
        Gateway("thingsboard", "ThingsBoard gateway, range reads", "every_poll",
                "v1/gateway/telemetry", subscriber.parse_thingsboard,
                peer="thingsboard", answer_thingsboard=True),
        Gateway("thingsboard-tags", "ThingsBoard gateway, one entry per tag", "every_poll",
                "v1/gateway/telemetry", subscriber.parse_thingsboard,
                peer="thingsboard", answer_thingsboard=True),
    )
}
DEFAULT_GATEWAYS = ("edgecell", "edgecell-changes", "nodered-raw", "nodered-decode", "thingsboard")


def ensure_installed(peer: str) -> None:
    """Install a peer into bench/peers/ on first use (bench/install-peers is idempotent)."""
    subprocess.run(["bash", str(ROOT / "bench" / "install-peers"), peer], check=True)


# --- edgecell -------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def edgecell_config(workdir: Path, broker_port: int, ports: list[int], workload: Workload,
                    publish: str) -> dict[str, Any]:
    tags = [
        {"name": tag_name(f.address), "address": f.address, "type": f.kind}
        | ({"scale": f.scale} if f.scale != 1 else {})
        for f in workload.fields
    ]
    return {
        "gateway": {"id": "bench", "state_dir": str(workdir / "state"), "log_level": "info"},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "qos": 1, "publish": publish},
        "devices": [
            {
                "driver": "modbus",
                "name": device_name(i),
                "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                "unit_id": 1,
                "poll_interval": _ms(workload.period),
                "timeout": "1s",
                "tags": tags,
            }
            for i, port in enumerate(ports)
        ],
    }


def _prepare_edgecell(gateway: Gateway, workdir: Path, broker_port: int, ports: list[int],
                      workload: Workload) -> Launch:
    publish = "every_poll" if gateway.mode == "every_poll" else "changes"
    config = workdir / "edgecell.yaml"
    config.write_text(yaml.safe_dump(
        edgecell_config(workdir, broker_port, ports, workload, publish), sort_keys=False))
    return Launch(
        [sys.executable, "-m", "controller", "--log-format", "json", "run", str(config)],
        ROOT, dict(os.environ),
    )


# --- Node-RED -------------------------------------------------------------------------------

# What a Node-RED user writes to publish what edgecell publishes: named values in engineering
# units, each with its quality and timestamp, decoded from the read's response buffer with a
# table per read of [name, byte offset, kind, scale] (READS is filled in per workload); the
# device and first address come in the topic the read node sets.
DECODE_FUNCTION = """\
const READS = %(reads)s;
const parts = msg.topic.split('/');
const buf = msg.responseBuffer.buffer;
const now = Date.now();
const values = {};
for (const [name, at, kind, scale] of READS[parts[3]]) {
    const raw = kind === 'f' ? buf.readFloatBE(at)
        : kind === 'i' ? buf.readInt16BE(at) : buf.readUInt16BE(at);
    values[name] = {v: raw * scale, q: 'good', ts: now};
}
msg.topic = 'bench/nodered-decode/' + parts[2];
msg.payload = {ts: now, values: values};
return msg;
"""


def _decode_table(workload: Workload) -> dict[str, list[list[Any]]]:
    kinds = {"float32": "f", "int16": "i", "uint16": "u"}
    table: dict[str, list[list[Any]]] = {}
    for first, count in workload.reads():
        table[str(first)] = [
            [tag_name(f.address), 2 * (f.address - first), kinds[f.kind], f.scale]
            for f in workload.fields
            if first <= f.address < first + count
        ]
    return table


def nodered_flows(broker_port: int, ports: list[int], workload: Workload,
                  decode: bool) -> list[dict[str, Any]]:
    tab = {"id": "bench-tab", "type": "tab", "label": "bench"}
    broker = {
        "id": "bench-broker", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1",
        "port": str(broker_port), "clientid": "", "autoConnect": True, "usetls": False,
        "protocolVersion": "4", "keepalive": "60", "cleansession": True,
    }
    out = {
        "id": "bench-out", "type": "mqtt out", "z": tab["id"], "name": "", "topic": "",
        "qos": "1", "retain": "false", "broker": broker["id"], "wires": [],
    }
    nodes: list[dict[str, Any]] = [tab, broker, out]
    target = out["id"]
    if decode:
        function = {
            "id": "bench-decode", "type": "function", "z": tab["id"], "name": "decode",
            "func": DECODE_FUNCTION % {"reads": json.dumps(_decode_table(workload))},
            "outputs": 1,
            "wires": [[out["id"]]],
        }
        nodes.append(function)
        target = function["id"]
    flow = "nodered-decode" if decode else "nodered-raw"
    for i, port in enumerate(ports):
        client_id = f"client-{i}"
        nodes.append({
            "id": client_id, "type": "modbus-client", "name": device_name(i),
            "clienttype": "tcp", "bufferCommands": True, "stateLogEnabled": False,
            "queueLogEnabled": False, "failureLogEnabled": True, "tcpHost": "127.0.0.1",
            "tcpPort": str(port), "tcpType": "DEFAULT", "serialPort": "/dev/ttyUSB",
            "serialType": "RTU-BUFFERD", "serialBaudrate": "9600", "serialDatabits": "8",
            "serialStopbits": "1", "serialParity": "none", "serialConnectionDelay": "100",
            "unit_id": "1", "commandDelay": "1", "clientTimeout": "1000",
            "reconnectOnTimeout": True, "reconnectTimeout": "2000",
            "parallelUnitIdsAllowed": True,
        })
        for first, count in workload.reads():
            nodes.append({
                "id": f"read-{i}-{first}", "type": "modbus-read", "z": tab["id"],
                "name": "", "topic": f"bench/{flow}/{device_name(i)}/{first}",
                "showStatusActivities": False, "logIOActivities": False, "showErrors": False,
                "unitid": "1", "dataType": "HoldingRegister", "adr": str(first),
                "quantity": str(count), "rate": str(round(workload.period * 1000)),
                "rateUnit": "ms", "delayOnStart": False, "startDelayTime": "",
                "server": client_id, "useIOFile": False, "ioFile": "",
                "useIOForPayload": False, "emptyMsgOnFail": False, "wires": [[target], []],
            })
    return nodes


NODE_RED_SETTINGS = """\
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: %(port)d,
    flowFile: "flows.json",
    credentialSecret: false,
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    logging: { console: { level: "warn", metrics: false, audit: false } },
};
"""


def _prepare_nodered(gateway: Gateway, workdir: Path, broker_port: int, ports: list[int],
                     workload: Workload) -> Launch:
    from controller.localbroker import free_port  # noqa: PLC0415

    flows = nodered_flows(broker_port, ports, workload, decode=gateway.key == "nodered-decode")
    (workdir / "flows.json").write_text(json.dumps(flows, indent=1))
    (workdir / "settings.js").write_text(NODE_RED_SETTINGS % {"port": free_port()})
    modules = workdir / "node_modules"
    if not modules.exists():
        modules.symlink_to(PEERS / "nodered" / "node_modules")
    return Launch(
        ["node", str(NODE_RED), "--userDir", str(workdir), "--settings",
         str(workdir / "settings.js")],
        workdir, dict(os.environ),
    )


# --- ThingsBoard IoT Gateway ----------------------------------------------------------------


def thingsboard_connector(ports: list[int], workload: Workload, per_tag: bool) -> dict[str, Any]:
    divider = round(1 / SCALE)
    types = {"float32": ("32float", 2), "int16": ("16int", 1), "uint16": ("16uint", 1)}
    timeseries: list[dict[str, Any]] = []
    if per_tag:
        for f in workload.fields:
            kind, objects = types[f.kind]
            entry = {"tag": tag_name(f.address), "type": kind, "functionCode": 3,
                     "objectsCount": objects, "address": f.address}
            timeseries.append(entry | ({"divider": divider} if f.scale != 1 else {}))
    else:
        # Wide-range entries, split by the gateway into reads of up to 125 registers: one per
        # run of same-kind tags. Entries must not share a key pattern: the gateway files
        # responses by it, and two entries named "r${address}" decode each other's registers.
        runs: list[list[Any]] = []
        for f in workload.fields:
            if runs and runs[-1][0] == f.kind and runs[-1][2] == f.address:
                runs[-1][2] = f.address + f.registers
            else:
                runs.append([f.kind, f.address, f.address + f.registers])
        for n, (kind_name, first, end) in enumerate(runs):
            kind, objects = types[kind_name]
            entry = {"tag": f"r${{address}}_{n}", "type": kind, "functionCode": 3,
                     "objectsCount": objects, "address": f"{first}-{end - 1}",
                     "maxRegistersPerRequest": 125}
            timeseries.append(entry | ({"divider": divider} if kind_name != "float32" else {}))
    slaves = [
        {
            "host": "127.0.0.1", "port": port, "type": "tcp", "method": "socket", "unitId": 1,
            "deviceName": device_name(i), "deviceType": "default", "timeout": 35,
            "byteOrder": "BIG", "wordOrder": "BIG", "retries": 0, "retryOnEmpty": False,
            "retryOnInvalid": False, "pollPeriod": round(workload.period * 1000),
            "connectAttemptTimeMs": 5000, "connectAttemptCount": 5,
            "waitAfterFailedAttemptsMs": 30000, "attributes": [], "timeseries": timeseries,
            "attributeUpdates": [], "rpc": [],
        }
        for i, port in enumerate(ports)
    ]
    return {"master": {"slaves": slaves}}


def thingsboard_service(broker_port: int) -> dict[str, Any]:
    return {
        "thingsboard": {
            "host": "127.0.0.1", "port": broker_port, "remoteShell": False,
            "remoteConfiguration": False, "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600,
                           "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False, "filterFile": "list.json"},
            "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60, "handleDeviceRenaming": True,
            "security": {"type": "accessToken", "accessToken": "bench"},
            "qos": 1, "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False,
                                       "inactivityTimeoutSeconds": 300,
                                       "inactivityCheckPeriodSeconds": 10},
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }


def _prepare_thingsboard(gateway: Gateway, workdir: Path, broker_port: int, ports: list[int],
                         workload: Workload) -> Launch:
    config = workdir / "config"
    config.mkdir(exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    (config / "tb_gateway.json").write_text(json.dumps(thingsboard_service(broker_port), indent=1))
    connector = thingsboard_connector(ports, workload, per_tag=gateway.key == "thingsboard-tags")
    (config / "modbus.json").write_text(json.dumps(connector, indent=1))
    # Its own logging config, at WARNING (its default INFO writes a line per connect and more).
    package_config = _tb_package_config()
    if package_config is not None:
        logs = json.loads((package_config / "logs.json").read_text())
        for logger in logs.get("loggers", {}).values():
            logger["level"] = "WARNING"
        if "root" in logs:
            logs["root"]["level"] = "WARNING"
        (config / "logs.json").write_text(json.dumps(logs, indent=1))
    env = dict(os.environ, TB_GW_CONFIG_DIR=str(config) + "/")
    return Launch(
        [str(TB_PYTHON), "-c", "from thingsboard_gateway.tb_gateway import daemon; daemon()"],
        workdir, env,
    )


_PREPARE = {
    "edgecell": _prepare_edgecell,
    "edgecell-changes": _prepare_edgecell,
    "nodered-raw": _prepare_nodered,
    "nodered-decode": _prepare_nodered,
    "thingsboard": _prepare_thingsboard,
    "thingsboard-tags": _prepare_thingsboard,
}


def installed(
    chosen: list[Gateway], *, no_install: bool, log: Any
) -> tuple[list[Gateway], list[str]]:
    """`chosen` without the gateways whose peer cannot be installed (each said with `log`), and
    those peers."""
    skipped: list[str] = []
    for peer in sorted({g.peer for g in chosen if g.peer}):
        if no_install:
            continue
        try:
            ensure_installed(peer)
        except (subprocess.CalledProcessError, OSError) as exc:
            log(f"cannot install {peer}: {exc}; its rows are skipped")
            skipped.append(peer)
    return [g for g in chosen if g.peer not in skipped], skipped

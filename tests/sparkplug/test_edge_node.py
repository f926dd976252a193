"""The Sparkplug B 3.0 edge node against a real mosquitto, with the real daemon polling a real
Modbus server: births, data by exception, rebirth, DCMD writes and refusals, device death and
rebirth, the Will, seq wrapping, the primary host's STATE and historical replay.

Payloads are read here with the generated Tahu classes; tests/sparkplug/test_independent_host.py
reads them with another implementation."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from spb_peers import (
    GROUP,
    NODE,
    Daemon,
    Watcher,
    chiller_points,
    chiller_spec,
    config_text,
    publish,
)

from controller.clock import SYSTEM_CLOCK
from controller.config import ConfigError, load_config, parse_config
from controller.model import DeviceStatus, LinkState, Quality, Sample
from controller.sparkplug.config import SparkplugConfig
from controller.sparkplug.edge_node import EdgeNode
from controller.sparkplug.sparkplug_b_pb2 import DataType, Payload
from drivers.sim.modbus_server import SimModbusServer

NODE_TOPIC = f"spBv1.0/{GROUP}/{{}}/{NODE}"
DEVICE_TOPIC = f"spBv1.0/{GROUP}/{{}}/{NODE}/chiller"


def quality(metric: Payload.Metric) -> int | None:
    keys = list(metric.properties.keys)
    if "Quality" not in keys:
        return None
    value = metric.properties.values[keys.index("Quality")]
    assert value.type == DataType.Int32
    return int(value.int_value)


def rebirth_request() -> bytes:
    payload = Payload(timestamp=SYSTEM_CLOCK.wall_ms())
    payload.metrics.add(name="Node Control/Rebirth", datatype=DataType.Boolean,
                        boolean_value=True)
    return payload.SerializeToString()


def write_request(*, alias: int | None = None, name: str | None = None,
                  value: float = 0.0) -> bytes:
    payload = Payload(timestamp=SYSTEM_CLOCK.wall_ms())
    metric = payload.metrics.add(datatype=DataType.Float, float_value=value)
    if alias is not None:
        metric.alias = alias
    if name is not None:
        metric.name = name
    return payload.SerializeToString()


async def born(watch: Watcher) -> tuple[Any, Any]:
    """The first NBIRTH and the chiller's first DBIRTH with good values."""
    nbirth = (await watch.wait_kind("NBIRTH"))[0]
    dbirth = await watch.wait_for(
        lambda _: next((m for m in watch.of("DBIRTH", "chiller")
                        if all(quality(x) == 192 for x in m.payload.metrics)), None)
    )
    return nbirth, dbirth


# --- births ---------------------------------------------------------------------------------


async def test_births_describe_every_metric(daemon: Daemon, sparkplug_watch: Watcher) -> None:
    nbirth, dbirth = await born(sparkplug_watch)
    assert nbirth.topic == NODE_TOPIC.format("NBIRTH")
    assert (nbirth.qos, nbirth.retain) == (0, False)
    assert nbirth.payload.HasField("seq")
    assert nbirth.payload.seq == 0
    assert nbirth.payload.HasField("timestamp")
    bdseq = nbirth.metric("bdSeq")
    assert bdseq.datatype == DataType.Int64
    assert 0 <= bdseq.long_value <= 255
    rebirth = nbirth.metric("Node Control/Rebirth")
    assert rebirth.datatype == DataType.Boolean
    assert rebirth.boolean_value is False
    assert not rebirth.HasField("alias")
    for metric in nbirth.payload.metrics:
        assert metric.name
        assert metric.HasField("datatype")
        assert metric.HasField("timestamp")

    assert dbirth.topic == DEVICE_TOPIC.format("DBIRTH")
    assert (dbirth.qos, dbirth.retain) == (0, False)
    assert dbirth.payload.seq == 1  # right after the NBIRTH
    by_name = {m.name: m for m in dbirth.payload.metrics}
    assert set(by_name) == {"supply_c", "setpoint_c", "starts"}
    assert by_name["supply_c"].datatype == DataType.Float
    assert by_name["supply_c"].float_value == pytest.approx(7.5)
    assert by_name["setpoint_c"].float_value == pytest.approx(7.0)
    assert by_name["starts"].datatype == DataType.UInt16
    assert by_name["starts"].int_value == 3
    units = {
        name: dict(zip(m.properties.keys, m.properties.values, strict=True)).get("engUnit")
        for name, m in by_name.items()
    }
    assert units["supply_c"].string_value == "degC"
    assert units["starts"] is None
    for metric in dbirth.payload.metrics:
        assert metric.HasField("alias")
        assert metric.HasField("timestamp")
    aliases = [m.alias for m in (*nbirth.payload.metrics, *dbirth.payload.metrics)
               if m.HasField("alias")]
    assert len(aliases) == len(set(aliases))  # unique across the node


async def test_data_by_exception_equals_the_json_contract(
    daemon: Daemon, sparkplug_watch: Watcher, mosquitto: Any, mqtt_collect: Any
) -> None:
    json_data = await mqtt_collect(mosquitto, "edgecell/spb-gw/data/chiller")
    _, dbirth = await born(sparkplug_watch)
    alias = {m.name: m.alias for m in dbirth.payload.metrics}
    daemon.chiller.points["chiller.supply_c"] = 8.25
    await daemon.server.refresh()
    # (Polls made before the session began are replayed first, is_historical.)
    ddata = await sparkplug_watch.wait_for(
        lambda _: next((m for m in sparkplug_watch.of("DDATA", "chiller")
                        if any(x.alias == alias["supply_c"] and not x.is_historical
                               for x in m.payload.metrics)), None)
    )
    assert (ddata.qos, ddata.retain) == (0, False)
    assert [m.alias for m in ddata.payload.metrics] == [alias["supply_c"]]  # only the change
    metric = ddata.payload.metrics[0]
    assert not metric.name
    assert not metric.HasField("datatype")
    assert metric.HasField("timestamp")
    assert ddata.payload.HasField("timestamp")
    assert quality(metric) is None  # good, and good before: no Quality property
    previous = sparkplug_watch.messages[sparkplug_watch.messages.index(ddata) - 1]
    assert ddata.payload.seq == (previous.payload.seq + 1) % 256
    await json_data.wait_for(
        lambda _: any("supply_c" in p["values"] for p in json_data.payloads()[1:])
        or any(p["values"].get("supply_c", {}).get("v") == 8.25 for p in json_data.payloads())
    )
    json_value = next(p["values"]["supply_c"] for p in reversed(json_data.payloads())
                      if "supply_c" in p["values"])
    assert metric.float_value == pytest.approx(json_value["v"])
    assert metric.timestamp == json_value["ts"]


async def test_rebirth_command_repeats_the_births(
    daemon: Daemon, sparkplug_watch: Watcher, mosquitto: Any, mqtt_collect: Any
) -> None:
    health = await mqtt_collect(mosquitto, "edgecell/spb-gw/health")
    nbirth, _ = await born(sparkplug_watch)
    await publish(mosquitto, NODE_TOPIC.format("NCMD"), rebirth_request())
    births = await sparkplug_watch.wait_kind("NBIRTH", 2)
    again = births[1]
    assert again.payload.seq == 0
    assert again.metric("bdSeq").long_value == nbirth.metric("bdSeq").long_value
    dbirths = await sparkplug_watch.wait_kind("DBIRTH", 2, "chiller")
    assert dbirths[-1].payload.seq == 1
    assert sparkplug_watch.messages.index(dbirths[-1]) > sparkplug_watch.messages.index(again)
    # The health topic says so.
    await health.wait_for(lambda _: any(
        p.get("sparkplug", {}).get("births", 0) >= 2 for p in health.payloads()
    ))
    state = next(p["sparkplug"] for p in health.payloads() if p["sparkplug"]["births"] >= 2)
    assert state["in_session"] is True
    assert state["devices_born"] == 1
    assert state["bdseq"] == nbirth.metric("bdSeq").long_value


async def test_a_reload_rebirths_new_tags_and_reconnects_for_new_broker_settings(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    chiller = chiller_points()
    from controller.runtime import Runtime

    async with SimModbusServer(chiller, [chiller_spec()], port=0) as server:
        path = tmp_path / "c.yaml"
        text = config_text(tmp_path, mosquitto, server.port)
        path.write_text(text, encoding="utf-8")
        runtime = Runtime(load_config(path))
        task = asyncio.create_task(runtime.run())
        try:
            nbirth, _ = await born(sparkplug_watch)
            # A new tag: a full rebirth in the same session (same bdSeq), the tag in the DBIRTH.
            path.write_text(text.replace(
                "      - {name: starts, address: 200, type: uint16}",
                "      - {name: starts, address: 200, type: uint16}\n"
                "      - {name: return_c, address: 2, type: float32, unit: degC}",
            ), encoding="utf-8")
            assert await runtime.reload()
            births = await sparkplug_watch.wait_kind("NBIRTH", 2)
            assert births[1].metric("bdSeq").long_value == nbirth.metric("bdSeq").long_value
            dbirth = await sparkplug_watch.wait_for(lambda _: next(
                (m for m in sparkplug_watch.of("DBIRTH", "chiller")
                 if any(x.name == "return_c" for x in m.payload.metrics)), None))
            assert len(dbirth.payload.metrics) == 4
            # New broker settings (keepalive): NDEATH, then a new session with the next bdSeq.
            path.write_text(path.read_text(encoding="utf-8").replace(
                "health_interval: 1s", "health_interval: 1s, keepalive: 20s"), encoding="utf-8")
            assert await runtime.reload()
            ndeath = (await sparkplug_watch.wait_kind("NDEATH"))[0]
            assert ndeath.metric("bdSeq").long_value == nbirth.metric("bdSeq").long_value
            third = (await sparkplug_watch.wait_kind("NBIRTH", 3))[2]
            assert third.metric("bdSeq").long_value == (
                nbirth.metric("bdSeq").long_value + 1) % 256
        finally:
            runtime.request_stop()
            await asyncio.wait_for(task, 10)


# --- commands -------------------------------------------------------------------------------


async def test_dcmd_writes_through_the_actuator_and_refusals_reach_events(
    daemon: Daemon, sparkplug_watch: Watcher, mosquitto: Any, mqtt_collect: Any
) -> None:
    events = await mqtt_collect(mosquitto, "edgecell/spb-gw/events/writes")
    _, dbirth = await born(sparkplug_watch)
    alias = {m.name: m.alias for m in dbirth.payload.metrics}
    dcmd = DEVICE_TOPIC.format("DCMD")

    await publish(mosquitto, dcmd, write_request(alias=alias["setpoint_c"], value=9.5))
    await events.wait_for(lambda _: any(
        e["outcome"] == "written" and e["tag"] == "chiller.setpoint_c" for e in events.payloads()
    ))
    written = next(e for e in events.payloads() if e["outcome"] == "written")
    assert written["source"] == "command:sparkplug"
    assert written["new"] == 9.5
    assert daemon.chiller.points["chiller.setpoint_c"] == pytest.approx(9.5)

    # Above the tag's max: refused by the same check as cmd/write, nothing written.
    await publish(mosquitto, dcmd, write_request(alias=alias["setpoint_c"], value=20.0))
    # A metric the device does not have, and a read-only tag.
    await publish(mosquitto, dcmd, write_request(name="no_such_tag", value=1.0))
    await publish(mosquitto, dcmd, write_request(name="supply_c", value=1.0))
    await events.wait_for(
        lambda _: sum(e["outcome"] == "refused" for e in events.payloads()) >= 3
    )
    refused = [e for e in events.payloads() if e["outcome"] == "refused"]
    assert refused[0]["tag"] == "chiller.setpoint_c"
    assert "above the max" in refused[0]["error"]
    assert refused[0]["source"] == "command:sparkplug"
    assert refused[0]["requested"] == 20.0
    assert "no_such_tag" in refused[1]["error"]
    assert "not declared writable" in refused[2]["error"]
    await asyncio.sleep(0.5)
    assert daemon.chiller.points["chiller.setpoint_c"] == pytest.approx(9.5)
    assert daemon.chiller.points["chiller.supply_c"] == pytest.approx(7.5)


# --- device death ---------------------------------------------------------------------------


async def test_device_death_and_rebirth(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    chiller = chiller_points()
    from controller.config import LoadedConfig
    from controller.runtime import Runtime

    server = SimModbusServer(chiller, [chiller_spec()], port=0)
    await server.__aenter__()
    port = server.port
    text = config_text(tmp_path, mosquitto, port)
    runtime = Runtime(LoadedConfig(parse_config(text, "c.yaml"), tmp_path / "c.yaml", "x"))
    task = asyncio.create_task(runtime.run())
    try:
        await born(sparkplug_watch)
        await server.__aexit__(None, None, None)  # the PLC goes away
        ddeath = (await sparkplug_watch.wait_kind("DDEATH", 1, "chiller"))[0]
        assert (ddeath.qos, ddeath.retain) == (0, False)
        assert ddeath.payload.HasField("seq")
        assert ddeath.payload.HasField("timestamp")
        before = len(sparkplug_watch.of("DBIRTH", "chiller"))
        server = SimModbusServer(chiller, [chiller_spec()], port=port)
        await server.__aenter__()
        dbirths = await sparkplug_watch.wait_kind("DBIRTH", before + 1, "chiller", within=15)
        assert sparkplug_watch.messages.index(dbirths[-1]) > sparkplug_watch.messages.index(ddeath)
        kinds = [m.kind for m in sparkplug_watch.messages]
        between = kinds[sparkplug_watch.messages.index(ddeath) + 1:
                        sparkplug_watch.messages.index(dbirths[-1])]
        assert "DDATA" not in between  # nothing of a dead device
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 10)
        await server.__aexit__(None, None, None)


# --- the Will, bdSeq ------------------------------------------------------------------------


async def test_will_is_ndeath_with_the_births_bdseq(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    """The daemon killed (SIGKILL): the broker publishes its Will, NDEATH with the bdSeq of its
    NBIRTH; started again, the next NBIRTH has the next bdSeq."""
    chiller = chiller_points()
    async with SimModbusServer(chiller, [chiller_spec()], port=0) as server:
        path = tmp_path / "c.yaml"
        path.write_text(config_text(tmp_path, mosquitto, server.port), encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        log = (tmp_path / "daemon.log").open("ab")

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "controller", "run", str(path), env=env,
                stdout=log, stderr=log,
            )

        child = await start()
        try:
            nbirth = (await sparkplug_watch.wait_kind("NBIRTH", within=20))[0]
            child.send_signal(signal.SIGKILL)
            await child.wait()
            ndeath = (await sparkplug_watch.wait_kind("NDEATH"))[0]
            assert ndeath.topic == NODE_TOPIC.format("NDEATH")
            assert (ndeath.qos, ndeath.retain) == (1, False)
            assert not ndeath.payload.HasField("seq")
            assert [m.name for m in ndeath.payload.metrics] == ["bdSeq"]
            first = nbirth.metric("bdSeq").long_value
            assert ndeath.metric("bdSeq").long_value == first
            child = await start()
            second = (await sparkplug_watch.wait_kind("NBIRTH", 2, within=20))[1]
            assert second.metric("bdSeq").long_value == (first + 1) % 256
        finally:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                await asyncio.wait_for(child.wait(), 10)
        # A clean stop publishes NDEATH itself, with that session's bdSeq.
        deaths = await sparkplug_watch.wait_kind("NDEATH", 2)
        assert deaths[1].metric("bdSeq").long_value == (first + 1) % 256


# --- EdgeNode without the daemon: seq wrap, primary host, history ----------------------------


class Writes:
    """Stands in for the actuator: keeps what it was asked."""

    def __init__(self) -> None:
        self.refusals: list[tuple[str, str]] = []
        self.writes: list[tuple[str, Any]] = []
        self.written = asyncio.Event()

    async def override(self, tag: str, value: Any, ttl: float, *, by: str = "") -> None:
        self.writes.append((tag, value))
        self.written.set()

    def record_refusal(self, tag: str, value: Any, reason: str, *, by: str = "") -> None:
        self.refusals.append((tag, reason))


def edge_node(
    tmp_path: Path, broker: Any, table: dict[str, Sample], writes: Writes | None = None,
    **sparkplug: Any,
) -> EdgeNode:
    config = parse_config(config_text(tmp_path, broker, 1), "c.yaml")
    return EdgeNode(
        SparkplugConfig.model_validate({"enabled": True, "group_id": GROUP,
                                        "edge_node_id": NODE, **sparkplug}),
        config.mqtt,
        gateway_id="spb-gw",
        devices=config.devices,
        state_dir=tmp_path / "state",
        clock=SYSTEM_CLOCK,
        node_properties={"Properties/Software": "test"},
        current=lambda device: [s for s in table.values() if s.device == device],
        writer=writes or Writes(),
    )


def supply(value: float, q: Quality = Quality.GOOD) -> Sample:
    now = SYSTEM_CLOCK.wall_ms()
    return Sample("chiller", "supply_c", value, q, now, now)


async def test_seq_wraps_from_255_to_0(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    table = {"supply_c": supply(1.0)}
    async with edge_node(tmp_path, mosquitto, table) as node:
        node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
        await sparkplug_watch.wait_kind("DBIRTH", 1, "chiller")
        for i in range(300):
            node.publish_samples("chiller", [supply(2.0 + i)])
            await sparkplug_watch.wait_kind("DDATA", i + 1, "chiller")
    seqs = [m.payload.seq for m in sparkplug_watch.messages if m.kind != "NDEATH"]
    assert seqs[:2] == [0, 1]  # NBIRTH, DBIRTH
    assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs))
    assert seqs.count(0) == 2
    assert max(seqs) == 255


async def test_bad_quality_travels_as_the_quality_property(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    table = {"supply_c": supply(1.0)}
    async with edge_node(tmp_path, mosquitto, table) as node:
        node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
        dbirth = (await sparkplug_watch.wait_kind("DBIRTH", 1, "chiller"))[0]
        never_read = next(m for m in dbirth.payload.metrics if m.name == "starts")
        assert never_read.is_null
        assert quality(never_read) == 500
        node.publish_samples("chiller", [Sample("chiller", "supply_c", None, Quality.BAD,
                                                1, 1, "timeout")])
        node.publish_samples("chiller", [])
        bad = (await sparkplug_watch.wait_kind("DDATA", 1, "chiller"))[0].payload.metrics[0]
        assert bad.is_null
        assert quality(bad) == 0
        node.publish_samples("chiller", [supply(3.0)])
        good = (await sparkplug_watch.wait_kind("DDATA", 2, "chiller"))[1].payload.metrics[0]
        assert quality(good) == 192
        assert good.float_value == 3.0


async def test_primary_host_state_gates_births_and_history_is_replayed(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    state_topic = "spBv1.0/STATE/scada-1"
    table = {"supply_c": supply(1.0)}
    await publish(mosquitto, state_topic, b"", retain=True)
    try:
        async with edge_node(tmp_path, mosquitto, table, primary_host_id="scada-1") as node:
            node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
            await asyncio.sleep(1.0)
            assert not sparkplug_watch.of("NBIRTH")  # no host, no births
            node.publish_samples("chiller", [supply(11.0)])  # held: no session
            await publish(mosquitto, state_topic, b"not json", retain=True)
            await asyncio.sleep(0.3)
            assert not sparkplug_watch.of("NBIRTH")

            t0 = SYSTEM_CLOCK.wall_ms()
            await publish(mosquitto, state_topic,
                          orjson.dumps({"online": True, "timestamp": t0}), retain=True)
            first = (await sparkplug_watch.wait_kind("NBIRTH"))[0]
            replay = (await sparkplug_watch.wait_kind("DDATA", 1, "chiller"))[0]
            metric = replay.payload.metrics[0]
            assert metric.is_historical
            assert metric.float_value == 11.0
            assert replay.payload.seq == 2  # after NBIRTH 0 and DBIRTH 1

            # An offline older than what was seen is ignored; a newer one ends the session.
            await publish(mosquitto, state_topic,
                          orjson.dumps({"online": False, "timestamp": t0 - 1000}), retain=True)
            await asyncio.sleep(0.5)
            assert not sparkplug_watch.of("NDEATH")
            await publish(mosquitto, state_topic,
                          orjson.dumps({"online": False, "timestamp": t0 + 1}), retain=True)
            ndeath = (await sparkplug_watch.wait_kind("NDEATH"))[0]
            assert ndeath.metric("bdSeq").long_value == first.metric("bdSeq").long_value
            await asyncio.sleep(0.3)
            node.publish_samples("chiller", [supply(12.0)])  # offline host: held again
            assert len(sparkplug_watch.of("NBIRTH")) == 1

            await publish(mosquitto, state_topic,
                          orjson.dumps({"online": True, "timestamp": t0 + 2}), retain=True)
            second = (await sparkplug_watch.wait_kind("NBIRTH", 2))[1]
            assert second.metric("bdSeq").long_value == (
                first.metric("bdSeq").long_value + 1) % 256
            replays = await sparkplug_watch.wait_kind("DDATA", 2, "chiller")
            assert replays[1].payload.metrics[0].is_historical
            assert replays[1].payload.metrics[0].float_value == 12.0
            assert node.stats.history_replayed == 2
    finally:
        await publish(mosquitto, state_topic, b"", retain=True)


async def test_changes_made_while_the_broker_is_away_are_replayed_as_historical(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    table = {"supply_c": supply(1.0)}
    async with edge_node(tmp_path, mosquitto, table) as node:
        node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
        first = (await sparkplug_watch.wait_kind("NBIRTH"))[0]
        await sparkplug_watch.wait_kind("DBIRTH", 1, "chiller")
        mosquitto.stop(kill=True)  # no Will reaches anyone: the broker itself is gone
        await asyncio.sleep(0.3)
        held = [supply(20.0 + i) for i in range(3)]
        for sample in held:
            node.publish_samples("chiller", [sample])
        assert node.health()["history_depth"] == 3
        table["supply_c"] = held[-1]
        mosquitto.start()
        second = (await sparkplug_watch.wait_kind("NBIRTH", 2, within=15))[1]
        # A new session, a new bdSeq (each CONNECT attempt in the outage took one).
        assert second.metric("bdSeq").long_value != first.metric("bdSeq").long_value
        assert second.metric("bdSeq").long_value == node.health()["bdseq"]
        replayed = await sparkplug_watch.wait_for(lambda _: len([
            m for m in sparkplug_watch.of("DDATA", "chiller")
            if m.payload.metrics[0].is_historical]) >= 3 and sparkplug_watch.of("DDATA", "chiller"))
        values = [m.payload.metrics[0].float_value for m in replayed]
        assert values == [20.0, 21.0, 22.0]  # in order, with their own timestamps
        assert [m.payload.metrics[0].timestamp for m in replayed] == [s.source_ts for s in held]
        dbirth = sparkplug_watch.of("DBIRTH", "chiller")[-1]
        assert dbirth.metric("supply_c").float_value == 22.0  # the birth has the latest
        assert sparkplug_watch.messages.index(replayed[0]) > sparkplug_watch.messages.index(dbirth)
        assert node.health()["history_depth"] == 0


# --- config ---------------------------------------------------------------------------------


def test_sparkplug_is_off_by_default_and_needs_a_group(tmp_path: Path) -> None:
    base = "gateway: {id: gw}\n"
    assert parse_config(base, "c.yaml").sparkplug.enabled is False
    path = tmp_path / "c.yaml"
    path.write_text(base + "sparkplug: {enabled: true}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "group_id is required" in str(refused.value.problems)
    path.write_text(base + "sparkplug: {enabled: true, group_id: 'a/b'}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "sparkplug.group_id" in str(refused.value.problems)
    path.write_text(base + "sparkplug: {enabled: true, group_id: g, write_ttl: 2h}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "write_ttl is longer than actuation.manual_max_ttl" in str(refused.value.problems)


async def test_a_retained_or_malformed_command_writes_nothing(
    tmp_path: Path, mosquitto: Any, sparkplug_watch: Watcher
) -> None:
    """The broker's stored copy of a DCMD, handed out at subscribe, is not a command; a payload
    that is not Sparkplug, an unknown device, a null value: refused, logged, nothing written."""
    dcmd = DEVICE_TOPIC.format("DCMD")
    await publish(mosquitto, dcmd, write_request(name="setpoint_c", value=8.0), retain=True)
    writes = Writes()
    try:
        async with edge_node(tmp_path, mosquitto, {}, writes) as node:
            node.device_status(DeviceStatus("chiller", LinkState.CONNECTED))
            await sparkplug_watch.wait_kind("DBIRTH", 1, "chiller")
            await publish(mosquitto, dcmd, b"\xff\x00not protobuf")
            await publish(mosquitto, f"spBv1.0/{GROUP}/DCMD/{NODE}/ghost",
                          write_request(name="setpoint_c", value=8.0))
            null = Payload(timestamp=1)
            null.metrics.add(name="setpoint_c", is_null=True)
            await publish(mosquitto, dcmd, null.SerializeToString())
            await publish(mosquitto, dcmd, write_request(name="setpoint_c", value=9.0))
            async with asyncio.timeout(5):
                await writes.written.wait()
            assert writes.writes == [("chiller.setpoint_c", 9.0)]  # the live one only
            assert writes.refusals == [("chiller.setpoint_c", "DCMD: the metric is null; "
                                        "edgecell writes a number or a boolean")]
            assert node.health()["commands_refused"] == 4  # retained, malformed, ghost, null
    finally:
        await publish(mosquitto, dcmd, b"", retain=True)

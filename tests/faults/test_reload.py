"""Hot reload on SIGHUP. A broken config is refused: the running config stays (same devices,
same connections, data flowing) and `{base}/events/config` says why, with file and line. A
changed config is applied: a new device starts, a changed poll interval takes effect, and the
devices that did not change keep their connection (their server sees no new one). The
`cmd/reload` command does the same as SIGHUP and answers."""

from __future__ import annotations

import asyncio
import itertools
import resource
import statistics
from pathlib import Path
from typing import Any

import aiomqtt

from tests.faults.daemon import gateway_config, modbus_device
from tests.faults.delivery import values_by_device

BASE = "edgecell/reload"


def poll_interval_s(collector: Any, device: str, after_seq: int = 0) -> float:
    """Median time between polls of `device` (its counter changes at every poll)."""
    polls = values_by_device(collector, "counter")[device]
    times = [entry["ts"] for seq, entry in polls if seq > after_seq]
    return float(statistics.median((b - a) / 1000 for a, b in itertools.pairwise(times)))


def last_seq(collector: Any, device: str) -> int:
    return max(seq for seq, _ in values_by_device(collector, "counter").get(device, [(0, None)]))


async def test_a_broken_config_is_refused_with_file_and_line_and_the_old_one_keeps_running(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    server = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    events = await mqtt_collect(mosquitto, f"{BASE}/events/config")
    config = gateway_config(
        "reload", tmp_path / "state", mosquitto, [modbus_device("press", server.port)]
    )
    daemon = start_daemon(config)
    await data.wait_count(5, 20)
    connections = server.connections

    broken = daemon.config_path.read_text().replace("poll_interval: 100ms", "poll_interval: fast")
    daemon.config_path.write_text(broken)
    line = 1 + broken.splitlines().index("  poll_interval: fast")
    daemon.reload()
    await events.wait_count(1, 10)
    event = events.payloads()[0]
    assert event["ok"] is False
    assert event["problems"], event
    assert event["problems"][0].startswith(f"{daemon.config_path}:{line}: "), event
    assert "devices[0].poll_interval" in event["problems"][0]
    print(f"\nrefused: {event['problems']}")
    # Still polling with the old config, on the same connection.
    seen = last_seq(data, "press")
    await data.wait_for(lambda _: last_seq(data, "press") >= seen + 10, 10)
    assert abs(poll_interval_s(data, "press", after_seq=seen) - 0.1) < 0.02
    assert server.connections == connections
    assert daemon.running
    refused = [e for e in daemon.log_events() if e.get("event") == "reload_refused"]
    assert len(refused) == 1
    assert await daemon.stop() == 0, daemon.log_tail()


async def test_a_changed_config_is_applied_and_unchanged_devices_keep_their_connection(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    steady, retimed, added = [await counter_server() for _ in range(3)]
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    events = await mqtt_collect(mosquitto, f"{BASE}/events/config")
    state = tmp_path / "state"
    before = [
        modbus_device("steady", steady.port, poll="100ms"),
        modbus_device("retimed", retimed.port, poll="100ms"),
    ]
    daemon = start_daemon(gateway_config("reload", state, mosquitto, before))
    await data.wait_for(lambda _: min(last_seq(data, d) for d in ("steady", "retimed")) >= 5, 20)
    steady_connections = steady.connections
    assert steady_connections == 1

    after = [
        modbus_device("steady", steady.port, poll="100ms"),
        modbus_device("retimed", retimed.port, poll="300ms"),
        modbus_device("added", added.port, poll="100ms"),
    ]
    daemon.write_config(gateway_config("reload", state, mosquitto, after))
    daemon.reload()
    await events.wait_count(1, 10)
    assert events.payloads()[0]["ok"] is True, events.payloads()
    assert events.payloads()[0]["problems"] == []
    retimed_from = last_seq(data, "retimed") + 1  # polls after the reload, give or take one
    await data.wait_for(lambda _: last_seq(data, "added") >= 5, 10)
    await data.wait_for(lambda _: last_seq(data, "retimed") >= retimed_from + 6, 10)
    await asyncio.sleep(0.5)

    assert steady.connections == steady_connections, "an unchanged device was reconnected"
    assert added.connections == 1
    assert abs(poll_interval_s(data, "retimed", after_seq=retimed_from) - 0.3) < 0.03
    assert abs(poll_interval_s(data, "steady") - 0.1) < 0.01
    assert await daemon.stop() == 0, daemon.log_tail()


async def test_the_reload_command_applies_a_changed_config_and_answers(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    server = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    events = await mqtt_collect(mosquitto, f"{BASE}/events/config")
    answers = await mqtt_collect(mosquitto, f"{BASE}/cmd/response")
    state = tmp_path / "state"
    device = modbus_device("press", server.port, poll="100ms")
    daemon = start_daemon(gateway_config("reload", state, mosquitto, [device]))
    await data.wait_for(lambda _: last_seq(data, "press") >= 5, 20)

    daemon.write_config(
        gateway_config("reload", state, mosquitto, [{**device, "poll_interval": "250ms"}])
    )
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as operator:
        await operator.publish(f"{BASE}/cmd/reload", b"{}", qos=1)
    await answers.wait_count(1, 10)
    assert answers.payloads()[0] == {"ok": True, "command": "reload"}
    await events.wait_count(1, 10)
    assert events.payloads()[0]["ok"] is True
    retimed_from = last_seq(data, "press") + 1
    await data.wait_for(lambda _: last_seq(data, "press") >= retimed_from + 6, 10)
    assert abs(poll_interval_s(data, "press", after_seq=retimed_from) - 0.25) < 0.025
    assert await daemon.stop() == 0, daemon.log_tail()


async def test_a_new_broker_in_the_mqtt_section_is_used_at_once_and_no_seq_is_lost(
    tmp_path: Path,
    mosquitto_factory: Any,
    mqtt_collect: Any,
    counter_server: Any,
    start_daemon: Any,
) -> None:
    old_broker, new_broker = mosquitto_factory(), mosquitto_factory()
    server = await counter_server()
    on_old = await mqtt_collect(old_broker, f"{BASE}/data/+")
    on_new = await mqtt_collect(new_broker, f"{BASE}/data/+")
    events = await mqtt_collect(new_broker, f"{BASE}/events/config")
    state = tmp_path / "state"
    device = modbus_device("press", server.port, poll="100ms")
    daemon = start_daemon(gateway_config("reload", state, old_broker, [device]))
    await on_old.wait_for(lambda _: last_seq(on_old, "press") >= 5, 20)
    connections = server.connections

    daemon.write_config(gateway_config("reload", state, new_broker, [device]))
    daemon.reload()
    await events.wait_count(1, 10)
    assert events.payloads()[0]["ok"] is True
    assert events.payloads()[0]["restart_required"] == []
    await on_new.wait_for(lambda _: last_seq(on_new, "press") >= last_seq(on_old, "press") + 10)
    assert await daemon.stop() == 0, daemon.log_tail()

    received = {seq for c in (on_old, on_new) for seq, _ in values_by_device(c, "counter")["press"]}
    print(f"\nold broker up to seq {last_seq(on_old, 'press')}, new from "
          f"{min(s for s, _ in values_by_device(on_new, 'counter')['press'])}")
    assert received == set(range(1, max(received) + 1)), "a seq was lost in the switch"
    assert server.connections == connections, "the device was reconnected for an mqtt change"


async def test_a_new_gateway_id_is_reported_as_needing_a_restart_and_the_rest_applies(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    server = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    events = await mqtt_collect(mosquitto, f"{BASE}/events/config")
    state = tmp_path / "state"
    device = modbus_device("press", server.port, poll="100ms")
    daemon = start_daemon(gateway_config("reload", state, mosquitto, [device]))
    await data.wait_for(lambda _: last_seq(data, "press") >= 5, 20)

    retimed = {**device, "poll_interval": "250ms"}
    daemon.write_config(gateway_config("renamed", state, mosquitto, [retimed]))
    daemon.reload()
    await events.wait_count(1, 10)
    # On the running base topic, which stays until the restart.
    assert events.payloads()[0]["ok"] is True
    assert events.payloads()[0]["restart_required"] == ["gateway.id"]
    retimed_from = last_seq(data, "press") + 1
    await data.wait_for(lambda _: last_seq(data, "press") >= retimed_from + 6, 10)
    assert abs(poll_interval_s(data, "press", after_seq=retimed_from) - 0.25) < 0.025
    partial = [e for e in daemon.log_events() if e.get("event") == "reload_partial"]
    assert [e["restart_required"] for e in partial] == [["gateway.id"]]
    assert await daemon.stop() == 0, daemon.log_tail()


def _limit_address_space() -> None:
    # Room for the daemon (a few hundred MB of address space), not for an expanded alias bomb.
    resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))


HOSTILE_CONFIGS = {
    # 900 levels of flow mappings: the YAML composer's recursion ended the daemon (exit 1).
    "deep": ("x: " + "{a: " * 900 + "1" + "}" * 900 + "\n", "nested deeper than"),
    # 7 levels of 9 aliases, 300 bytes: 1.2 GB when expanded.
    "bomb": (
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(
            f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
            for prev, name in itertools.pairwise("abcdefg")
        ),
        "aliases expand to more than",
    ),
}


async def test_a_hostile_config_is_a_refused_reload_answered_and_logged_in_one_line(
    tmp_path: Path, mosquitto: Any, mqtt_collect: Any, counter_server: Any, start_daemon: Any
) -> None:
    server = await counter_server()
    data = await mqtt_collect(mosquitto, f"{BASE}/data/+")
    events = await mqtt_collect(mosquitto, f"{BASE}/events/config")
    answers = await mqtt_collect(mosquitto, f"{BASE}/cmd/response")
    config = gateway_config(
        "reload", tmp_path / "state", mosquitto, [modbus_device("press", server.port)]
    )
    daemon = start_daemon(config, preexec_fn=_limit_address_space)
    await data.wait_count(5, 20)
    good = daemon.config_path.read_text()

    for i, (name, (hostile, reason)) in enumerate(HOSTILE_CONFIGS.items()):
        daemon.config_path.write_text(good + hostile)
        daemon.reload()  # SIGHUP
        await events.wait_count(2 * i + 1, 20)
        assert events.payloads()[-1]["ok"] is False, name
        assert reason in events.payloads()[-1]["problems"][0], events.payloads()[-1]
        assert daemon.running, f"SIGHUP with the {name} config stopped the daemon"
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as operator:
            await operator.publish(f"{BASE}/cmd/reload", b"{}", qos=1)
        await answers.wait_count(i + 1, 20)
        answer = answers.payloads()[-1]
        assert answer["ok"] is False, answer
        assert answer["command"] == "reload"
        await events.wait_count(2 * i + 2, 20)
        assert reason in events.payloads()[-1]["problems"][0]
    refused = 2 * len(HOSTILE_CONFIGS)

    # The old config still polls, and every refusal was one log line with the reason.
    seen = last_seq(data, "press")
    await data.wait_for(lambda _: last_seq(data, "press") >= seen + 5, 10)
    logged = [e for e in daemon.log_events() if e.get("event") == "reload_refused"]
    assert len(logged) == refused
    assert all("exception" not in e for e in logged), logged[0]
    assert all(len(str(e)) < 2000 for e in logged)
    assert "Traceback" not in daemon.log_path.read_text()
    assert await daemon.stop() == 0, daemon.log_tail()

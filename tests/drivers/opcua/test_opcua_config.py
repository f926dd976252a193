"""The `driver: opcua` device entry of the YAML config: what it accepts and what it refuses."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from controller.config import ConfigError, parse_config
from drivers.opcua.config import DeadbandKind, OpcUaDevice, SecurityMode, SecurityPolicy, TagMode


def _config(device_yaml: str) -> str:
    return "gateway:\n  id: cell-1\ndevices:\n" + textwrap.indent(
        textwrap.dedent(device_yaml), "  "
    )


def _problems(device_yaml: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(device_yaml), "cell.yaml")
    return "\n".join(caught.value.problems)


def test_device_entry_with_every_key_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    cert = tmp_path / "server.der"
    cert.write_bytes(b"pinned")
    config = parse_config(
        _config(
            f"""\
            - driver: opcua
              name: compressor-room
              endpoint: opc.tcp://10.0.0.5:4840/plc
              security:
                policy: Basic256Sha256
                mode: SignAndEncrypt
                server_cert: {cert}
              auth:
                username: edgecell
                password: '${{PLC_PASSWORD}}'
              publishing_interval: 500ms
              poll_interval: 5s
              timeout: 2s
              reconnect_min: 1s
              reconnect_max: 2min
              tags:
                - name: pressure
                  node: ns=2;s=Compressor.Pressure
                  sampling_interval: 250ms
                  queue_size: 5
                  deadband: 0.05
                - name: motor_power
                  browse_path: Objects/2:Compressor/2:MotorPower
                  deadband: 2%
                - name: energy
                  node: ns=3;i=1001
                  mode: poll
                - name: setpoint
                  node: ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a
                  mode: poll
                  writable: true
                  min: 5
                  max: 9.5
            """
        ),
        "cell.yaml",
    )
    device = config.devices[0]
    assert isinstance(device, OpcUaDevice)
    assert device.security.policy is SecurityPolicy.BASIC256SHA256
    assert device.security.mode is SecurityMode.SIGN_AND_ENCRYPT
    assert device.auth.resolve_password() == "s3cret"
    assert (device.publishing_interval, device.poll_interval, device.reconnect_max) == (
        0.5,
        5.0,
        120.0,
    )
    pressure, power, energy, setpoint = device.tags
    assert pressure.deadband is not None
    assert pressure.deadband.kind is DeadbandKind.ABSOLUTE
    assert pressure.sampling_interval == 0.25
    assert power.deadband is not None
    assert power.deadband.kind is DeadbandKind.PERCENT
    assert power.deadband.value == 2.0
    assert energy.mode is TagMode.POLL
    assert setpoint.writable
    assert setpoint.max == 9.5


def test_literal_password_is_refused():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          auth: {username: edgecell, password: hunter2}
          tags: [{name: t, node: ns=2;s=T}]
        """
    )
    assert "cell.yaml:7: devices[0].auth.password: a literal password is refused" in problems


def test_tag_needs_exactly_one_of_node_and_browse_path():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          tags:
            - {name: both, node: ns=2;s=T, browse_path: Objects/2:T}
        """
    )
    assert "devices[0].tags[0]: give the tag's node (a NodeId) or its browse_path" in problems


def test_malformed_node_id_is_refused():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          tags: [{name: t, node: "Compressor.Pressure"}]
        """
    )
    assert "devices[0].tags[0].node: 'Compressor.Pressure' is not a NodeId" in problems


def test_browse_path_must_start_at_objects():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          tags: [{name: t, browse_path: 2:Compressor/2:Pressure}]
        """
    )
    assert "a browse path starts at Objects or Root" in problems


def test_policy_none_with_sign_mode_is_refused():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          security: {policy: None, mode: Sign}
          tags: [{name: t, node: ns=2;s=T}]
        """
    )
    assert "devices[0].security: policy None with mode Sign" in problems


def test_deadband_on_polled_tag_is_refused():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          tags: [{name: t, node: ns=2;s=T, mode: poll, deadband: 1}]
        """
    )
    assert "deadband is for subscribed tags" in problems


def test_endpoint_must_be_opc_tcp():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: http://plc:4840
          tags: [{name: t, node: ns=2;s=T}]
        """
    )
    assert "devices[0].endpoint: 'http://plc:4840' is not an endpoint" in problems


def test_duration_without_unit_is_refused():
    problems = _problems(
        """\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://plc:4840
          publishing_interval: 500
          tags: [{name: t, node: ns=2;s=T}]
        """
    )
    assert "cell.yaml:7: devices[0].publishing_interval: a duration is a string" in problems


def test_events_take_standard_type_names_and_node_ids():
    config = parse_config(
        _config(
            """\
            - driver: opcua
              name: plc
              endpoint: opc.tcp://10.0.0.5:4840
              tags: [{name: t, node: "ns=2;s=T"}]
              events:
                - {types: [OffNormalAlarmType, "ns=3;i=5001"], min_severity: 400}
                - {notifier: "ns=2;s=Chiller", alarms: false}
            """
        ),
        "cell.yaml",
    )
    device = config.devices[0]
    assert isinstance(device, OpcUaDevice)
    first, second = device.events
    assert first.types == ["i=10637", "ns=3;i=5001"]
    assert (first.notifier, first.min_severity, first.alarms) == ("i=2253", 400, True)
    assert (second.notifier, second.types, second.alarms) == ("ns=2;s=Chiller", [], False)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{types: [NoSuchAlarmType]}", "'NoSuchAlarmType' is neither a NodeId"),
        ("{types: [alarm]}", "'alarm' is neither a NodeId"),
        ("{notifier: Server}", "'Server' is not a NodeId"),
        ("{min_severity: 0}", "min_severity"),
        ("{min_severity: 1001}", "min_severity"),
        ("{max_rate: .nan}", "max_rate"),
    ],
)
def test_bad_events_entries_are_refused_naming_the_key(entry: str, expected: str):
    problems = _problems(
        f"""\
        - driver: opcua
          name: plc
          endpoint: opc.tcp://10.0.0.5:4840
          tags: [{{name: t, node: "ns=2;s=T"}}]
          events: [{entry}]
        """
    )
    assert "cell.yaml:" in problems
    assert "events" in problems
    assert expected in problems

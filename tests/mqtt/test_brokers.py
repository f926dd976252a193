"""`mqtt.brokers`: the list form and its checks, what each broker takes from the section, and
the rotation that fails over at once and backs off only after a full round."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.mqtt.brokers import BrokerEndpoint, BrokerRotation
from controller.mqtt.config import MAX_BROKERS, MqttConfig, TlsConfig


def config(**settings: object) -> MqttConfig:
    return MqttConfig.model_validate(settings)


# --- the config ------------------------------------------------------------------------------


def test_host_and_port_are_one_broker():
    (only,) = config(host="broker.plant", port=8883, username="gw").endpoints()
    assert only == BrokerEndpoint("broker.plant", 8883, username="gw")
    assert only.name == "broker.plant:8883"


def test_brokers_are_tried_in_list_order():
    brokers = config(brokers=[{"host": "node-1"}, {"host": "node-2", "port": 1884}]).endpoints()
    assert [b.name for b in brokers] == ["node-1:1883", "node-2:1884"]


def test_each_broker_takes_port_tls_and_credentials_from_the_section_unless_it_gives_them():
    section_tls = {"ca_file": "/etc/edgecell/plant-ca.pem"}
    own_tls = {"ca_file": "/etc/edgecell/site-b-ca.pem"}
    first, second = config(
        port=8883,
        tls=section_tls,
        username="gw-7",
        password_file="/run/credentials/mqtt-password",
        brokers=[
            {"host": "node-1"},
            {"host": "site-b", "port": 18883, "tls": own_tls, "username": "gw-7-b"},
        ],
    ).endpoints()
    assert first == BrokerEndpoint(
        "node-1", 8883, TlsConfig.model_validate(section_tls), "gw-7", None,
        Path("/run/credentials/mqtt-password"),
    )
    # Credentials go as one: an entry with a username takes no password file from the section.
    assert second == BrokerEndpoint(
        "site-b", 18883, TlsConfig.model_validate(own_tls), "gw-7-b", None, None
    )


def test_an_ipv6_broker_is_named_with_brackets():
    (only,) = config(brokers=[{"host": "fd00::17", "port": 8883}]).endpoints()
    assert only.name == "[fd00::17]:8883"


def test_host_and_brokers_together_are_refused():
    with pytest.raises(ValidationError, match="give host or brokers, not both"):
        config(host="node-1", brokers=[{"host": "node-2"}])


def test_an_empty_broker_list_is_refused():
    with pytest.raises(ValidationError, match=r"brokers\n.*the list is empty"):
        config(brokers=[])


@pytest.mark.parametrize(
    "brokers",
    [
        [{"host": "node-1"}, {"host": "node-1"}],
        [{"host": "node-1"}, {"host": "NODE-1", "port": 1883}],  # names are case-blind
        [{"host": "node-1", "port": 1884}, {"host": "node-2"}, {"host": "node-1", "port": 1884}],
    ],
)
def test_the_same_broker_twice_is_refused(brokers):
    with pytest.raises(ValidationError, match=r"brokers\[\d\] .* is the same broker as brokers"):
        config(brokers=brokers)


def test_the_same_host_on_two_ports_is_two_brokers():
    brokers = config(brokers=[{"host": "h"}, {"host": "h", "port": 1884}]).endpoints()
    assert len(brokers) == 2


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"host": "node-1", "port": 0}, "greater than or equal to 1"),
        ({"host": "node-1", "port": 70000}, "less than or equal to 65535"),
        ({"host": ""}, "at least 1 character"),
        ({"host": "mqtt://node-1"}, "should match pattern"),
        ({"host": "node 1"}, "should match pattern"),
        ({"port": 1883}, "host\n  Field required"),
        ({"host": "node-1", "qos": 2}, "Extra inputs are not permitted"),
        ({"host": "n", "tls": {"key_file": "k.pem"}}, "key_file needs cert_file"),
        ({"host": "n", "password": "x", "password_file": "p"}, "not both"),
    ],
)
def test_a_bad_broker_entry_is_refused_with_its_place(entry, problem):
    with pytest.raises(ValidationError, match=problem) as caught:
        config(brokers=[{"host": "good"}, entry])
    assert caught.value.errors()[0]["loc"][:2] == ("brokers", 1)


def test_more_brokers_than_the_bound_are_refused():
    with pytest.raises(ValidationError, match=f"at most {MAX_BROKERS} items"):
        config(brokers=[{"host": f"node-{i}"} for i in range(MAX_BROKERS + 1)])


# --- the rotation ----------------------------------------------------------------------------


def rotation(count: int, *, start: int = 0) -> BrokerRotation:
    return BrokerRotation(
        [BrokerEndpoint(f"node-{i}", 1883) for i in range(count)],
        reconnect_min=1.0,
        reconnect_max=8.0,
        start=start,
    )


def test_a_failure_moves_to_the_next_broker_at_once_until_the_round_is_done():
    brokers = rotation(3)
    assert brokers.current.host == "node-0"
    assert brokers.failed() == 0.0
    assert brokers.current.host == "node-1"
    assert brokers.failed() == 0.0
    assert brokers.current.host == "node-2"
    # The third failure ends the round: back to the first, after a backoff below reconnect_min.
    delay = brokers.failed()
    assert 0.0 < delay <= 1.0
    assert brokers.current.host == "node-0"


def test_the_backoff_grows_with_each_failed_round_up_to_reconnect_max():
    brokers = rotation(2)
    caps = []
    for _ in range(8):
        assert brokers.failed() == 0.0
        caps.append(brokers.failed())
    assert all(delay <= cap for delay, cap in zip(caps, [1, 2, 4, 8, 8, 8, 8, 8], strict=True))
    assert max(caps[3:]) > 1.0  # drawn up to 8 s, not stuck at the first cap (chance 1/8**5)


def test_a_session_lost_after_connecting_moves_on_at_once():
    brokers = rotation(2)
    assert brokers.failed() == 0.0  # node-0 refused
    assert brokers.failed() > 0.0  # node-1 too: a full round, back off
    brokers.connected()  # node-0 took us, later lost
    assert brokers.failed() == 0.0
    assert brokers.current.host == "node-1"


def test_one_broker_backs_off_after_every_failure_as_before():
    brokers = rotation(1)
    assert 0.0 < brokers.failed() <= 1.0
    assert brokers.current.host == "node-0"


def test_a_reload_keeps_the_broker_in_use_when_it_is_still_listed():
    first = config(brokers=[{"host": "a"}, {"host": "b"}, {"host": "c"}])
    running = BrokerRotation.from_config(first)
    running.failed()
    assert running.current.host == "b"
    reordered = config(brokers=[{"host": "c"}, {"host": "B"}])
    assert BrokerRotation.from_config(reordered, previous=running).current.host == "B"
    elsewhere = config(brokers=[{"host": "d"}, {"host": "e"}])
    assert BrokerRotation.from_config(elsewhere, previous=running).current.host == "d"


def test_a_broker_may_be_written_as_host_or_host_and_port():
    brokers = config(
        port=8883, brokers=["node-1", "node-2:18883", "[fd00::1]:1884", "fd00::2"]
    ).endpoints()
    assert [b.name for b in brokers] == [
        "node-1:8883", "node-2:18883", "[fd00::1]:1884", "[fd00::2]:8883"
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("mqtt://node-1", "is not a broker: write host, host:port"),
        ("node-1:1883/edgecell", "is not a broker"),
        ("node 1", "is not a broker"),
        ("node-1:", "is not a broker"),
        ("node-1:99999", "less than or equal to 65535"),
        (17, "valid dictionary"),
    ],
)
def test_a_broker_written_as_text_must_be_host_and_port(entry, problem):
    with pytest.raises(ValidationError, match=problem):
        config(brokers=[entry])


def test_the_same_broker_written_both_ways_is_refused():
    with pytest.raises(ValidationError, match="same broker"):
        config(brokers=["node-1:1883", {"host": "node-1"}])

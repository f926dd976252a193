"""What a reload cannot apply: the daemon's identity (gateway.id, base topic, state directory)
and the Sparkplug edge node's settings, reported as `restart_required`; everything else is
applied (docs/operations.md, "Reload")."""

from __future__ import annotations

from typing import Any

import pytest

from controller.config import Config
from controller.runtime import identity_changes


def config(
    gateway: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
    sparkplug: dict[str, Any] | None = None,
) -> Config:
    return Config.model_validate(
        {
            "gateway": {"id": "cell-1", "state_dir": "/var/lib/edgecell", **(gateway or {})},
            "mqtt": {"host": "127.0.0.1", **(mqtt or {})},
            "sparkplug": sparkplug or {},
        }
    )


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (config(), []),
        (config(mqtt={"port": 1884, "keepalive": "10s", "buffer": {"max_bytes": "1MiB"}}), []),
        (config(gateway={"log_level": "debug"}), []),
        (config(gateway={"id": "cell-2"}), ["gateway.id"]),
        (config(mqtt={"base_topic": "plant/cell-1"}), ["mqtt.base_topic"]),
        (config(gateway={"id": "cell-2"}, mqtt={"base_topic": "plant/x"}),
         ["gateway.id", "mqtt.base_topic"]),
        (config(gateway={"state_dir": "/srv/edgecell"}), ["gateway.state_dir"]),
        (config(sparkplug={"enabled": True, "group_id": "plant-a"}), ["sparkplug"]),
    ],
    ids=["same", "mqtt-connection-and-buffer", "log-level", "gateway-id", "base-topic",
         "id-and-base-topic", "state-dir", "sparkplug"],
)
def test_only_the_identity_needs_a_restart(new: Config, expected: list[str]) -> None:
    assert identity_changes(config(), new) == expected


def test_an_explicit_base_topic_kept_while_the_id_changes_still_names_the_id() -> None:
    started = config(mqtt={"base_topic": "plant/press"})
    new = config(gateway={"id": "cell-2"}, mqtt={"base_topic": "plant/press"})
    assert identity_changes(started, new) == ["gateway.id"]


def test_dropping_an_explicit_base_topic_changes_it() -> None:
    started = config(mqtt={"base_topic": "plant/press"})
    assert identity_changes(started, config()) == ["mqtt.base_topic"]

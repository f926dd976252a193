"""The `mqtt:` section: the buffer settings with units, and the checks of the section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from controller.mqtt.config import BufferConfig, MqttConfig


def test_buffer_settings_take_sizes_and_durations_with_units():
    config = MqttConfig.model_validate(
        {
            "buffer": {
                "durability": "always",
                "max_bytes": "64MiB",
                "max_age": "2d",
                "drain_rate": 50,
                "memory_high_water": "512kB",
            }
        }
    )
    buffer = config.buffer
    assert buffer.durability == "always"
    assert buffer.max_bytes == 64 * 1024 * 1024
    assert buffer.max_age == 2 * 86400.0
    assert buffer.drain_rate == 50.0
    assert buffer.memory_high_water == 512_000


def test_buffer_defaults_keep_a_week_in_256_mib_written_only_in_outages():
    buffer = MqttConfig().buffer
    assert buffer.durability == "outage"
    assert buffer.max_bytes == 256 * 1024**2
    assert buffer.max_age == 7 * 86400.0


@pytest.mark.parametrize("size", ["64 parsecs", "-1MB", True, "1.5.2GB"])
def test_a_size_without_a_known_unit_is_refused(size):
    with pytest.raises(ValidationError, match="max_bytes"):
        BufferConfig.model_validate({"max_bytes": size})


def test_an_unknown_durability_is_refused():
    with pytest.raises(ValidationError, match="durability"):
        BufferConfig.model_validate({"durability": "sometimes"})


def test_reconnect_min_above_max_is_refused():
    with pytest.raises(ValidationError, match="reconnect_min"):
        MqttConfig.model_validate({"reconnect_min": "1min", "reconnect_max": "30s"})


def test_client_id_defaults_to_the_gateway_id():
    assert MqttConfig().resolve_client_id("cell-7") == "edgecell-cell-7"
    assert MqttConfig(client_id="plc-gw").resolve_client_id("cell-7") == "plc-gw"

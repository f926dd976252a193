"""Modbus device settings the driver relies on are checked when the configuration loads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.modbus.config import ModbusDevice


def test_a_tag_wider_than_one_read_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match=r"tags\[0\]: 'model' spans 5 registers"):
        ModbusDevice.model_validate(
            {
                "driver": "modbus",
                "name": "meter",
                "link": {"transport": "tcp", "host": "127.0.0.1"},
                "max_registers_per_request": 4,
                "tags": [{"name": "model", "address": 0, "type": "string", "length": 5}],
            }
        )

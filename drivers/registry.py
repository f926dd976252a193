"""Which factory builds which kind of device.

Imported lazily by name: a Modbus-only gateway never loads asyncua (tens of MB on a small box).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, cast

from drivers.base import Driver, DriverContext, DriverFactory

_FACTORIES: dict[str, str] = {
    "modbus": "drivers.modbus:build_modbus_drivers",
    "opcua": "drivers.opcua:build_opcua_drivers",
}


def factory_for(kind: str) -> DriverFactory:
    try:
        module_name, attr = _FACTORIES[kind].split(":")
    except KeyError:
        raise ValueError(f"no driver for devices of kind {kind!r}") from None
    return cast(DriverFactory, getattr(importlib.import_module(module_name), attr))


def build_drivers(devices: Sequence[Any], ctx: DriverContext) -> list[Driver]:
    """Build drivers for devices of any kinds, each kind's factory seeing all its devices."""
    by_kind: dict[str, list[Any]] = {}
    for device in devices:
        by_kind.setdefault(device.driver, []).append(device)
    built: list[Driver] = []
    for kind, group in by_kind.items():
        built.extend(factory_for(kind)(group, ctx))
    return built


def share_key(device: Any) -> str:
    """Devices with the same key share a connection and must be started and stopped together."""
    link = getattr(device, "link", None)
    key = getattr(link, "key", None)
    return str(key) if key is not None else f"{device.driver}:{device.name}"

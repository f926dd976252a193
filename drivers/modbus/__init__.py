"""Modbus TCP and RTU: codec, read planner, shared links and the device driver."""

from __future__ import annotations

from collections.abc import Sequence

from drivers.base import Driver, DriverContext
from drivers.modbus.config import ModbusDevice
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import Backoff, ModbusLink

__all__ = ["LinkConfigError", "ModbusDriver", "build_modbus_drivers"]


class LinkConfigError(ValueError):
    """Devices naming the same link disagree on its settings (baud rate, parity...)."""


def build_modbus_drivers(
    devices: Sequence[object], ctx: DriverContext, *, backoff: Backoff | None = None
) -> list[Driver]:
    """One driver per device; devices with the same link key share one `ModbusLink` (one
    connection, one request queue)."""
    links: dict[str, ModbusLink] = {}
    drivers: list[Driver] = []
    for device in devices:
        if not isinstance(device, ModbusDevice):
            raise TypeError(f"not a Modbus device: {device!r}")
        link = links.get(device.link.key)
        if link is None:
            link = links[device.link.key] = ModbusLink(device.link, ctx.clock, backoff=backoff)
        elif link.config != device.link:
            raise LinkConfigError(
                f"device {device.name!r} sets link {device.link.key} differently from the "
                f"devices before it: {device.link.model_dump()} vs {link.config.model_dump()}"
            )
        drivers.append(ModbusDriver(device, link, ctx))
    return drivers

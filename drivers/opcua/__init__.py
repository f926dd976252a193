"""OPC UA client driver: subscriptions, batched polled reads, writes, security, reconnect.

`build_opcua_drivers` imports the driver (and asyncua) only when called, so that loading the
config model never pulls in the OPC UA stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.base import Driver, DriverContext


def build_opcua_drivers(devices: Sequence[object], ctx: DriverContext) -> list[Driver]:
    """One driver per OPC UA device (each has its own session; nothing is shared)."""
    from drivers.opcua.config import OpcUaDevice  # noqa: PLC0415
    from drivers.opcua.driver import OpcUaDriver  # noqa: PLC0415

    drivers: list[Driver] = []
    for device in devices:
        if not isinstance(device, OpcUaDevice):
            raise TypeError(f"not an OPC UA device: {device!r}")
        drivers.append(OpcUaDriver(device, ctx))
    return drivers


__all__ = ["build_opcua_drivers"]

"""The primary host application's STATE message (Sparkplug 3.0: retained JSON
`{"online": bool, "timestamp": epoch ms}` on `spBv1.0/STATE/{host_id}`), read strictly: anything
else is refused with a reason and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

STATE_MAX_BYTES = 1024


class HostStateError(ValueError):
    """A STATE payload that is not Sparkplug 3.0's JSON."""


@dataclass(frozen=True, slots=True)
class HostState:
    online: bool
    timestamp: int


def parse_state(payload: bytes) -> HostState:
    if len(payload) > STATE_MAX_BYTES:
        raise HostStateError(f"{len(payload)} bytes; a STATE message is a small JSON object")
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise HostStateError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HostStateError("not a JSON object")
    online, timestamp = data.get("online"), data.get("timestamp")
    if not isinstance(online, bool):
        raise HostStateError("'online' must be true or false")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise HostStateError("'timestamp' must be epoch milliseconds (an integer)")
    return HostState(online, timestamp)

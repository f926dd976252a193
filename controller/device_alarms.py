"""Alarms that devices raise themselves (OPC UA Alarms & Conditions), beside the rules' own.

Every event a device sends is published on `{base}/events/opcua/{device}`; each condition state
among them goes to the gateway's one `AlarmBoard` under the name
`opcua.{device}.{source}.{condition}`, so an operator sees the PLC's alarms and edgecell's in one
place and acknowledges both with `cmd/alarms/ack`. The device stays the authority on its
conditions: an acknowledgement is sent to the device first (Acknowledge with the event id of the
latest state) and taken on the board only when the device accepts it; an acknowledgement made
at the device's own HMI arrives as an event and is shown as by the device. After every
(re)connect the driver asks for a ConditionRefresh; a condition the board holds as raised that
the device does not re-send between RefreshStart and RefreshEnd is cleared.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from controller.alarms import AlarmBoard, AlarmCondition, AlarmState, UnknownAlarmError
from controller.clock import Clock
from controller.model import DeviceEvent, DeviceEventKind
from controller.mqtt import topics
from drivers.base import ConditionCallError, Driver

log = structlog.get_logger(__name__)

PROTOCOL = "opcua"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_NAMESPACE_PREFIX = re.compile(r"^\d+:")
MAX_NAME_CHARS = 160


class EventSink(Protocol):
    """Where device events are published (the MQTT publisher implements it)."""

    def publish_event(self, topic: str, payload: bytes) -> None: ...


@dataclass(slots=True)
class _Tracked:
    device: str
    condition_id: str
    event_id: bytes


def alarm_name(event: DeviceEvent) -> str:
    """`opcua.{device}.{source}.{condition}`, each part made safe as a topic level."""
    assert event.condition is not None
    # A SourceName written as a browse name (`1:Tank`, as node-opcua sends it) loses its
    # namespace index: it is not part of what the operator calls the source.
    source = _NAMESPACE_PREFIX.sub("", event.source) or "server"
    parts = [PROTOCOL, event.device, source, event.condition.name]
    name = ".".join(_UNSAFE.sub("_", part).strip("_") or "_" for part in parts)
    return name[:MAX_NAME_CHARS]


class DeviceAlarms:
    """Publishes device events and keeps the board in step with device conditions."""

    def __init__(
        self,
        board: AlarmBoard,
        sink: EventSink | None,
        *,
        base_topic: str,
        clock: Clock,
        drivers: Callable[[str], Driver | None],
    ) -> None:
        self._board = board
        self._sink = sink
        self._base = base_topic
        self._clock = clock
        self._drivers = drivers
        self._tracked: dict[str, _Tracked] = {}  # alarm name -> the device's condition
        self._names: dict[tuple[str, str], str] = {}  # (device, condition id) -> alarm name
        self._refreshing: dict[str, set[str]] = {}  # device -> alarm names re-sent so far

    def on_event(self, event: DeviceEvent, publish: bool) -> None:
        now = self._clock.wall_ms()
        # RefreshStart/RefreshEnd only bracket a ConditionRefresh: not news to anyone.
        if event.condition is not None and not event.may_raise:
            # Under min_severity: only a condition already raised is followed (its clearing).
            if event.alarms and (event.device, event.condition.condition_id) in self._names:
                self._apply(event, now)
            return
        if publish and self._sink is not None and event.kind is DeviceEventKind.EVENT:
            body = {"ts": now, **event.payload()}
            if event.condition is not None and event.alarms:
                body["alarm"] = self._name_for(event)
            self._sink.publish_event(
                topics.device_events(self._base, PROTOCOL, event.device), topics.encode(body)
            )
        if event.kind is DeviceEventKind.REFRESH_START:
            self._refreshing[event.device] = set()
        elif event.kind is DeviceEventKind.REFRESH_END:
            self._end_refresh(event.device, now)
        elif event.condition is not None and event.alarms:
            self._apply(event, now)

    def _name_for(self, event: DeviceEvent) -> str:
        assert event.condition is not None
        key = (event.device, event.condition.condition_id)
        name = self._names.get(key)
        if name is None:
            name = base = alarm_name(event)
            suffix = 2
            while name in self._tracked or name in self._board:
                tracked = self._tracked.get(name)
                if tracked is not None and (tracked.device, tracked.condition_id) == key:
                    break
                name = f"{base}~{suffix}"
                suffix += 1
            self._names[key] = name
        return name

    def _apply(self, event: DeviceEvent, now: int) -> None:
        condition = event.condition
        assert condition is not None
        name = self._name_for(event)
        self._tracked[name] = _Tracked(event.device, condition.condition_id, condition.event_id)
        refreshing = self._refreshing.get(event.device)
        if refreshing is not None:
            refreshing.add(name)
        origin = {
            "device": event.device,
            "protocol": PROTOCOL,
            "source": event.source,
            "source_node": event.source_node,
            "condition_id": condition.condition_id,
            "condition": condition.name,
            "severity": event.severity,
            "time": event.time_ms,
        }
        self._board.observe(
            [
                AlarmCondition(
                    name=name,
                    active=condition.active,
                    message=event.message or condition.name,
                    rule="",
                    origin=origin,
                )
            ],
            now,
        )
        if condition.acked and name in self._board and not self._board[name].acknowledged:
            self._board.acknowledge(name, f"{event.device} (on the device)", now)

    def _end_refresh(self, device: str, now: int) -> None:
        refreshed = self._refreshing.pop(device, None)
        if refreshed is None:
            return
        for name, tracked in list(self._tracked.items()):
            if tracked.device != device or name in refreshed or name not in self._board:
                continue
            if self._board[name].state is AlarmState.CLEARED:
                continue
            log.info("device_alarm_gone_after_refresh", alarm=name, device=device)
            self._board.observe(
                [AlarmCondition(name=name, active=False,
                                message="not among the device's conditions after a refresh")],
                now,
            )

    def owns(self, name: str) -> bool:
        return name in self._tracked

    async def acknowledge(self, name: str, by: str) -> None:
        """Acknowledge on the device, then on the board. `ConditionCallError` when the device
        refuses or is not reachable (the board is left as it was)."""
        tracked = self._tracked.get(name)
        if tracked is None:
            raise UnknownAlarmError(f"unknown alarm {name!r}")
        if self._board[name].acknowledged:
            return  # twice is harmless, as for the rules' alarms (the device is not asked)
        driver = self._drivers(tracked.device)
        if driver is None:
            raise ConditionCallError(f"device {tracked.device} is not configured any more")
        await driver.acknowledge_condition(
            tracked.condition_id, tracked.event_id, f"acknowledged by {by} through edgecell"
        )
        self._board.acknowledge(name, by)

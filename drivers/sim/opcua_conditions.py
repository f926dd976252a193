"""Alarm conditions of the simulated PLCs (OPC UA Alarms & Conditions, Part 9), as a real PLC
raises them: an OffNormalAlarm per configured limit on a point, instantiated in the address
space under its PLC object, its state changes sent as events through the Server object, the
Acknowledge method answered, and ConditionRefresh (asyncua's own) re-sending retained states.

A condition turns active when its point crosses the limit and inactive when it comes back; it
stays retained (and so in a refresh) until it is both inactive and acknowledged, as Part 9
5.5.2 describes for alarms that need acknowledging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.event_generator import EventGenerator
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from drivers.sim.points import PointValue
from drivers.sim.scenario import SimAlarm

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Condition:
    spec: SimAlarm
    node: ua.NodeId
    source: ua.NodeId
    generator: EventGenerator
    active: bool = False
    acked: bool = True
    event_id: bytes = b""
    acks: list[str] = field(default_factory=list)  # comments of accepted acknowledgements

    @property
    def retain(self) -> bool:
        return self.active or not self.acked


def _std(number: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(number))


class SimConditions:
    """The conditions of one simulated OPC UA server."""

    def __init__(self, alarms: list[SimAlarm]) -> None:
        self.alarms = alarms
        self._by_node: dict[ua.NodeId, _Condition] = {}
        self._by_point: dict[str, list[_Condition]] = {}

    async def build(self, server: Server, objects: Mapping[str, Node], namespace: int) -> None:
        """Instantiate every condition (before the server starts) and link Acknowledge."""
        for spec in self.alarms:
            parent = objects[spec.object]
            node = await parent.add_object(
                ua.NodeId.from_string(f"ns={namespace};s={spec.object}.{spec.name}"),
                ua.QualifiedName(spec.name, namespace),
                objecttype=_std(ObjectIds.OffNormalAlarmType),
            )
            generator = await server.get_event_generator(
                _std(ObjectIds.OffNormalAlarmType), _std(ObjectIds.Server)
            )
            event = generator.event
            event.NodeId = node.nodeid  # the ConditionId
            event.SourceNode = parent.nodeid
            event.SourceName = spec.object
            event.ConditionName = spec.name
            event.Severity = spec.severity
            condition = _Condition(spec, node.nodeid, parent.nodeid, generator)
            self._by_node[node.nodeid] = condition
            self._by_point.setdefault(spec.point, []).append(condition)
        if self.alarms:
            server.link_method(
                server.get_node(_std(ObjectIds.AcknowledgeableConditionType_Acknowledge)),
                self._acknowledge,
            )

    def points(self) -> set[str]:
        return set(self._by_point)

    async def observe(self, point: str, value: PointValue) -> None:
        """A point's new value: raise or clear the conditions on it."""
        for condition in self._by_point.get(point, ()):
            active = condition.spec.crossed(value)
            if active == condition.active:
                continue
            condition.active = active
            if active:
                condition.acked = False
            why = condition.spec.message or f"{condition.spec.point} off normal"
            text = f"{why} ({value})" if active else f"{condition.spec.point} back to normal"
            await self._send(condition, text)

    async def _send(self, condition: _Condition, message: str) -> None:
        event = condition.generator.event
        event.Message = ua.LocalizedText(message)
        event.Retain = condition.retain
        setattr(event, "ActiveState/Id", condition.active)
        event.ActiveState = ua.LocalizedText("Active" if condition.active else "Inactive")
        setattr(event, "AckedState/Id", condition.acked)
        event.AckedState = ua.LocalizedText("Acknowledged" if condition.acked else "Unacknowledged")
        setattr(event, "EnabledState/Id", True)
        await condition.generator.trigger()
        condition.event_id = bytes(event.EventId.Value)
        log.info(
            "sim_opcua_condition",
            condition=condition.spec.name,
            active=condition.active,
            acked=condition.acked,
        )

    async def _acknowledge(self, parent: ua.NodeId, *args: Any) -> Any:
        """AcknowledgeableConditionType.Acknowledge(EventId, Comment) on `parent`."""
        condition = self._by_node.get(parent)
        if condition is None:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadNodeIdUnknown))
        if len(args) != 2:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadArgumentsMissing))
        event_id = args[0].Value if isinstance(args[0], ua.Variant) else args[0]
        comment = args[1].Value if isinstance(args[1], ua.Variant) else args[1]
        if event_id != condition.event_id:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadEventIdUnknown))
        if condition.acked:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadConditionBranchAlreadyAcked))
        condition.acked = True
        text = comment.Text if isinstance(comment, ua.LocalizedText) else None
        condition.acks.append(str(text or ""))
        await self._send(condition, f"{condition.spec.name} acknowledged")
        return []

    def state(self, name: str) -> tuple[bool, bool]:
        """(active, acked) of a condition, for tests."""
        for condition in self._by_node.values():
            if condition.spec.name == name:
                return condition.active, condition.acked
        raise KeyError(name)

    def acknowledgements(self, name: str) -> list[str]:
        for condition in self._by_node.values():
            if condition.spec.name == name:
                return list(condition.acks)
        raise KeyError(name)

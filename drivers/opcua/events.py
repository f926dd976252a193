"""OPC UA events and Alarms & Conditions (Parts 4 and 9): the event filter a device's
`events:` entry asks the server for, the checks that turn one notification into a
`DeviceEvent`, and the two condition methods a client calls (Acknowledge, ConditionRefresh).

The select clauses are a fixed list, not browsed from the type hierarchy: the same few fields
are all the gateway publishes, and a fixed list costs no browse calls at every reconnect. A
field the event does not have comes back null, which is how a plain event differs from a
condition. Every field is checked as device input: types, severity range, message length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from controller.model import ConditionState, DeviceEvent, DeviceEventKind
from drivers.opcua.config import OpcUaEvents

MAX_MESSAGE_CHARS = 500
MAX_NAME_CHARS = 200
MAX_EVENT_ID_BYTES = 64
# Client handles of event monitored items start here (data items count up from 1).
EVENT_HANDLE_BASE = 1_000_000

_BASE = ObjectIds.BaseEventType
_CONDITION = ObjectIds.ConditionType
_ACKNOWLEDGEABLE = ObjectIds.AcknowledgeableConditionType
_ALARM = ObjectIds.AlarmConditionType


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    type_id: int
    path: tuple[str, ...]  # empty: the NodeId attribute of the condition (its ConditionId)


# The order of the select clauses, and so of every notification's EventFields.
FIELDS: tuple[_Field, ...] = (
    _Field("event_id", _BASE, ("EventId",)),
    _Field("event_type", _BASE, ("EventType",)),
    _Field("source_node", _BASE, ("SourceNode",)),
    _Field("source_name", _BASE, ("SourceName",)),
    _Field("time", _BASE, ("Time",)),
    _Field("message", _BASE, ("Message",)),
    _Field("severity", _BASE, ("Severity",)),
    _Field("condition_id", _CONDITION, ()),
    _Field("condition_name", _CONDITION, ("ConditionName",)),
    _Field("retain", _CONDITION, ("Retain",)),
    _Field("active", _ALARM, ("ActiveState", "Id")),
    _Field("acked", _ACKNOWLEDGEABLE, ("AckedState", "Id")),
)
_INDEX = {f.name: i for i, f in enumerate(FIELDS)}


class BadEventError(ValueError):
    """A notification the device sent that is not a usable event (says which field and why)."""


def select_clauses() -> list[ua.SimpleAttributeOperand]:
    clauses = []
    for f in FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = _std(f.type_id)
        op.BrowsePath = [ua.QualifiedName(name, 0) for name in f.path]
        op.AttributeId = AttributeIds.Value if f.path else AttributeIds.NodeId
        clauses.append(op)
    return clauses


def _attribute(name: str) -> ua.SimpleAttributeOperand:
    op = ua.SimpleAttributeOperand()
    op.TypeDefinitionId = _std(_BASE)
    op.BrowsePath = [ua.QualifiedName(name, 0)]
    op.AttributeId = AttributeIds.Value
    return op


class _Where:
    """Builds a ContentFilter: elements refer to each other by index (Part 4, 7.7)."""

    def __init__(self) -> None:
        self.elements: list[ua.ContentFilterElement] = []

    def add(self, operator: ua.FilterOperator, *operands: object) -> ua.ElementOperand:
        element = ua.ContentFilterElement()
        element.FilterOperator = operator
        element.FilterOperands = list(operands)
        self.elements.append(element)
        return ua.ElementOperand(Index=len(self.elements) - 1)

    def any_of(self, operands: Sequence[ua.ElementOperand]) -> ua.ElementOperand:
        result = operands[0]
        for other in operands[1:]:
            result = self.add(ua.FilterOperator.Or, result, other)
        return result


def event_filter(spec: OpcUaEvents) -> ua.EventFilter:
    """Select the fixed fields; where: (one of the types, or any type) and (severity at least
    `min_severity`, or a condition), or a RefreshStart/RefreshEnd event (always let through,
    whatever the severity, so a ConditionRefresh can be bracketed; Part 9, 5.5.7 asks servers
    to send them regardless of the filter, and this makes sure servers that do not still do).

    Element 0 must be the root, so the tree is built first and then reordered root-first."""
    where = _Where()
    severity = where.add(
        ua.FilterOperator.GreaterThanOrEqual,
        _attribute("Severity"),
        ua.LiteralOperand(Value=ua.Variant(spec.min_severity, ua.VariantType.UInt16)),
    )
    # A condition's later states (its return to normal, an acknowledgement) often carry a
    # lower severity, 0 on some servers: conditions pass whatever their severity, and the
    # gateway applies min_severity to raising them (DeviceEvent.may_raise).
    is_condition = where.add(
        ua.FilterOperator.OfType, ua.LiteralOperand(Value=ua.Variant(_std(_CONDITION)))
    )
    wanted = where.add(ua.FilterOperator.Or, severity, is_condition)
    if spec.types:
        types = [
            where.add(ua.FilterOperator.OfType, ua.LiteralOperand(Value=ua.Variant(_node(t))))
            for t in spec.types
        ]
        wanted = where.add(ua.FilterOperator.And, where.any_of(types), wanted)
    refresh = [
        where.add(
            ua.FilterOperator.OfType,
            ua.LiteralOperand(Value=ua.Variant(_std(type_id))),
        )
        for type_id in (ObjectIds.RefreshStartEventType, ObjectIds.RefreshEndEventType)
    ]
    root = where.add(ua.FilterOperator.Or, wanted, where.any_of(refresh))
    evfilter = ua.EventFilter()
    evfilter.SelectClauses = select_clauses()
    evfilter.WhereClause = ua.ContentFilter(Elements=_root_first(where.elements, root.Index))
    return evfilter


def _root_first(
    elements: list[ua.ContentFilterElement], root: int
) -> list[ua.ContentFilterElement]:
    """The same tree with `root` at index 0 (the evaluation starts there) and every
    ElementOperand renumbered."""
    order = [root] + [i for i in range(len(elements)) if i != root]
    new_index = {old: new for new, old in enumerate(order)}
    result = []
    for old in order:
        element = elements[old]
        operands = [
            ua.ElementOperand(Index=new_index[op.Index])
            if isinstance(op, ua.ElementOperand)
            else op
            for op in element.FilterOperands
        ]
        result.append(ua.ContentFilterElement(FilterOperator=element.FilterOperator,
                                              FilterOperands=operands))
    return result


def _std(number: int) -> ua.NodeId:
    """A NodeId of namespace 0 (the standard's)."""
    return ua.NodeId(ua.Int32(number))


def _node(text: str) -> ua.NodeId:
    return ua.NodeId.from_string(text)


def parse_event(
    device: str, spec: OpcUaEvents, fields: Sequence[ua.Variant], received_ms: int
) -> DeviceEvent:
    """One notification's EventFields as a checked `DeviceEvent`; `BadEventError` when a field
    the gateway relies on is missing or of the wrong type."""
    if len(fields) != len(FIELDS):
        raise BadEventError(f"{len(fields)} event fields, {len(FIELDS)} were selected")
    values = [f.Value if isinstance(f, ua.Variant) else f for f in fields]

    def get(name: str) -> object:
        return values[_INDEX[name]]

    event_type = get("event_type")
    if not isinstance(event_type, ua.NodeId):
        raise BadEventError(f"EventType is {type(event_type).__name__}, not a NodeId")
    kind = DeviceEventKind.EVENT
    if event_type == _std(ObjectIds.RefreshStartEventType):
        kind = DeviceEventKind.REFRESH_START
    elif event_type == _std(ObjectIds.RefreshEndEventType):
        kind = DeviceEventKind.REFRESH_END
    event_id = get("event_id")
    if not isinstance(event_id, bytes) or not event_id:
        raise BadEventError("EventId is missing or not a ByteString")
    if len(event_id) > MAX_EVENT_ID_BYTES:
        raise BadEventError(f"EventId is {len(event_id)} bytes (at most {MAX_EVENT_ID_BYTES})")
    severity = get("severity")
    if isinstance(severity, bool) or not isinstance(severity, int):
        raise BadEventError(f"Severity is {type(severity).__name__}, not an integer")
    # Part 5 gives 1-1000; servers do send 0 (node-opcua for a condition's return to normal
    # and for RefreshStart/End): out-of-range values are read as the nearest end, so no
    # state change is lost and none is made more severe than 1000.
    raw_severity = severity
    severity = min(max(severity, 1), 1000)
    time_value = get("time")
    time_ms = received_ms
    if isinstance(time_value, dt.datetime):
        stamp = time_value if time_value.tzinfo else time_value.replace(tzinfo=dt.UTC)
        time_ms = int(stamp.timestamp() * 1000)
    source_node = get("source_node")
    condition = None
    condition_id = get("condition_id")
    if kind is DeviceEventKind.EVENT and isinstance(condition_id, ua.NodeId):
        condition = _condition(condition_id, get, event_id)
    return DeviceEvent(
        device=device,
        kind=kind,
        event_type=event_type.to_string(),
        source=_text(get("source_name"), MAX_NAME_CHARS),
        source_node=source_node.to_string() if isinstance(source_node, ua.NodeId) else "",
        time_ms=time_ms,
        severity=severity,
        message=_text(get("message"), MAX_MESSAGE_CHARS),
        event_id=event_id,
        condition=condition,
        alarms=spec.alarms,
        may_raise=raw_severity >= spec.min_severity,
    )


def _condition(
    condition_id: ua.NodeId, get: Callable[[str], object], event_id: bytes
) -> ConditionState:
    active, acked, retain = get("active"), get("acked"), get("retain")
    for name, value in (("ActiveState/Id", active), ("AckedState/Id", acked), ("Retain", retain)):
        if value is not None and not isinstance(value, bool):
            raise BadEventError(f"{name} is {type(value).__name__}, not a Boolean")
    name = _text(get("condition_name"), MAX_NAME_CHARS) or condition_id.to_string()
    return ConditionState(
        condition_id=condition_id.to_string(),
        name=name,
        # A condition that is not an alarm (no ActiveState) is "active" while it is retained.
        active=bool(active) if active is not None else bool(retain),
        acked=bool(acked) if acked is not None else True,
        retain=bool(retain),
        event_id=event_id,
    )


def _text(value: object, limit: int) -> str:
    if isinstance(value, ua.LocalizedText):
        value = value.Text
    if value is None:
        return ""
    text = str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def acknowledge_request(condition_id: str, event_id: bytes, comment: str) -> ua.CallMethodRequest:
    """AcknowledgeableConditionType.Acknowledge(EventId, Comment) on the condition."""
    return ua.CallMethodRequest(
        ObjectId=_node(condition_id),
        MethodId=_std(ObjectIds.AcknowledgeableConditionType_Acknowledge),
        InputArguments=[
            ua.Variant(event_id, ua.VariantType.ByteString),
            ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText),
        ],
    )


def refresh_request(subscription_id: int) -> ua.CallMethodRequest:
    """ConditionType.ConditionRefresh(SubscriptionId): re-send every retained condition."""
    return ua.CallMethodRequest(
        ObjectId=_std(ObjectIds.ConditionType),
        MethodId=_std(ObjectIds.ConditionType_ConditionRefresh),
        InputArguments=[ua.Variant(subscription_id, ua.VariantType.UInt32)],
    )


def event_item(handle: int, spec: OpcUaEvents) -> ua.MonitoredItemCreateRequest:
    """The monitored item of one `events:` entry: the notifier's EventNotifier attribute."""
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = 0
    params.QueueSize = 1000
    params.DiscardOldest = True
    params.Filter = event_filter(spec)
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(
            NodeId=_node(spec.notifier), AttributeId=AttributeIds.EventNotifier
        ),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=params,
    )

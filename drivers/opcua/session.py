"""One connected OPC UA session of one device: connect with the configured security and user,
resolve every tag's node once, read the polled tags in batches no larger than the server
allows, run the device's one subscription, write with the node's own data type.

A session is used until it breaks, then thrown away: the driver opens a new one, so
subscriptions are created once per session and never duplicated by a reconnect.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.ua import uaerrors
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from controller.model import Value, WriteError
from drivers.opcua.codec import encode_for_write, variant_type_of_datatype
from drivers.opcua.config import (
    DeadbandKind,
    OpcUaDevice,
    OpcUaTag,
    TagMode,
    browse_path_parts,
)
from drivers.opcua.connection import ConnectOptions, connect_client, new_client
from drivers.opcua.events import EVENT_HANDLE_BASE, event_item

log = structlog.get_logger(__name__)

# A service answered with one of these means the session or its channel is gone: reconnect.
SESSION_LOST_CODES = frozenset(
    {
        StatusCodes.BadSessionIdInvalid,
        StatusCodes.BadSessionClosed,
        StatusCodes.BadSessionNotActivated,
        StatusCodes.BadSecureChannelIdInvalid,
        StatusCodes.BadSecureChannelClosed,
        StatusCodes.BadConnectionClosed,
        StatusCodes.BadServerHalted,
        StatusCodes.BadShutdown,
        StatusCodes.BadCommunicationError,
        StatusCodes.BadNotConnected,
        StatusCodes.BadTimeout,
        StatusCodes.BadNoSubscription,
        StatusCodes.BadSubscriptionIdInvalid,
    }
)
# Part 5, 6.3.11 ServerCapabilities/OperationLimits; 0 or absent means "no limit".
_LIMIT_NODES = {
    "read": ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    "write": ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
    "translate": (
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds
    ),
    "monitored_items": (
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
    ),
}
# Without a limit from the server, still keep one request to a size every server handles.
DEFAULT_BATCH = 1000


class SessionLostError(Exception):
    """The session or its connection is gone; the driver opens a new one."""


@dataclass(frozen=True, slots=True)
class OperationLimits:
    max_nodes_per_read: int = 0
    max_nodes_per_write: int = 0
    max_nodes_per_translate: int = 0
    max_monitored_items_per_call: int = 0

    @staticmethod
    def batch(limit: int) -> int:
        return limit if limit > 0 else DEFAULT_BATCH


@dataclass(slots=True)
class ResolvedTag:
    """A tag and its node in this session; `node_id` None with `error` when it did not resolve."""

    tag: OpcUaTag
    node_id: ua.NodeId | None
    error: str = ""


@dataclass(slots=True)
class PublishCallbacks:
    """What the session calls from the subscription's publish loop. Must not block."""

    on_data: Callable[[list[tuple[str, ua.DataValue]]], None]
    on_status_change: Callable[[ua.StatusCode], None]
    # (index of the device's `events:` entry, the notification's EventFields)
    on_events: Callable[[list[tuple[int, list[ua.Variant]]]], None] | None = None


@dataclass(slots=True)
class SubscriptionInfo:
    subscription_id: int
    publishing_interval_ms: float
    keepalive_count: int
    handles: dict[int, str] = field(default_factory=dict)  # client handle -> tag name
    failed: dict[str, str] = field(default_factory=dict)  # tag name -> StatusCode name
    # index of an `events:` entry -> why its monitored item was refused
    failed_events: dict[int, str] = field(default_factory=dict)


def status_error(exc: BaseException) -> ua.StatusCode | None:
    """The StatusCode an asyncua exception carries, if any."""
    if isinstance(exc, uaerrors.UaStatusCodeError):
        return ua.StatusCode(ua.UInt32(exc.code))
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return ua.StatusCode(ua.UInt32(code))
    return None


def is_session_loss(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | OSError | TimeoutError):
        return True
    status = status_error(exc)
    return status is not None and status.value in SESSION_LOST_CODES


def describe_error(exc: BaseException) -> str:
    """A reason a person can act on, naming the StatusCode when there is one."""
    status = status_error(exc)
    if status is not None:
        return status.name
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionError):
        return "connection closed"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OpcUaSession:
    """A connected, activated session with every tag's node resolved."""

    def __init__(self, device: OpcUaDevice, client: Client) -> None:
        self.device = device
        self.client = client
        self.limits = OperationLimits()
        self.tags: dict[str, ResolvedTag] = {}
        self.subscription: SubscriptionInfo | None = None
        self.last_publish = time.monotonic()
        self.lost_reason: str = ""
        self._datatypes: dict[str, ua.VariantType | None] = {}

    # --- connect ------------------------------------------------------------------------------

    @classmethod
    async def open(cls, device: OpcUaDevice, state_root: Path) -> OpcUaSession:
        """Connect, activate, read the server's limits and resolve the tags. Raises
        OpcUaSetupError for configuration problems, other exceptions for network faults."""
        options = ConnectOptions(
            endpoint=device.endpoint,
            security=device.security,
            auth=device.auth,
            session_name=f"edgecell {device.name}",
            timeout=device.timeout,
            keepalive_interval=device.keepalive_interval,
            session_timeout=device.session_timeout,
        )
        client = new_client(options)
        session = cls(device, client)
        client.connection_lost_callback = session._on_connection_lost
        try:
            await connect_client(
                client, options, state_root=state_root, device_dir=device.state_dir(state_root)
            )
            session.limits = await session._read_limits()
            await session._resolve_tags()
            await session._read_write_types()
        except BaseException:
            await session.close()
            raise
        return session

    async def _on_connection_lost(self, exc: Exception) -> None:
        """asyncua's own keep-alive watchdog (a ServerStatus read every keepalive_interval)
        or the socket noticed the loss."""
        self.lost_reason = describe_error(exc)

    async def close(self) -> None:
        """Close the session (deleting its subscription) and the socket, within about two
        seconds; never raises, except the caller's own cancellation.

        asyncua's disconnect awaits its background tasks in a way that swallows a cancellation
        of its caller (`Client._cancel_task`), so it runs in a task of its own, awaited here.
        """
        teardown = asyncio.create_task(self._disconnect(), name=f"opcua-close:{self.device.name}")
        try:
            await asyncio.wait({teardown}, timeout=min(self.device.timeout, 2.0))
        except asyncio.CancelledError:
            teardown.cancel()
            self.client.disconnect_socket()
            await asyncio.wait({teardown}, timeout=1.0)
            raise
        if not teardown.done():
            teardown.cancel()
            self.client.disconnect_socket()
            await asyncio.wait({teardown}, timeout=1.0)

    async def _disconnect(self) -> None:
        try:
            await self.client.disconnect()
        except Exception as exc:  # teardown of a connection that may be dead
            log.debug("opcua_disconnect_failed", device=self.device.name, error=repr(exc))
            self.client.disconnect_socket()

    @property
    def alive(self) -> bool:
        return self.client.uaclient.state is UaClientState.CONNECTED and not self.lost_reason

    # --- limits and nodes ---------------------------------------------------------------------

    async def _read_limits(self) -> OperationLimits:
        ids = [ua.NodeId(ua.Int32(node)) for node in _LIMIT_NODES.values()]
        values = await self._read(ids, AttributeIds.Value)
        found: dict[str, int] = {}
        for key, value in zip(_LIMIT_NODES, values, strict=True):
            raw = value.Value.Value if value.Value is not None else None
            good = value.StatusCode is None or value.StatusCode.is_good()
            found[key] = int(raw) if good and isinstance(raw, int) else 0
        return OperationLimits(
            max_nodes_per_read=found["read"],
            max_nodes_per_write=found["write"],
            max_nodes_per_translate=found["translate"],
            max_monitored_items_per_call=found["monitored_items"],
        )

    async def _resolve_tags(self) -> None:
        by_path: list[OpcUaTag] = []
        for tag in self.device.tags:
            if tag.node is not None:
                self.tags[tag.name] = ResolvedTag(tag, ua.NodeId.from_string(tag.node))
            else:
                by_path.append(tag)
        if by_path:
            paths = [_browse_path(str(tag.browse_path)) for tag in by_path]
            results = await self._batched(
                paths,
                self.limits.max_nodes_per_translate,
                self.client.uaclient.translate_browsepaths_to_nodeids,
            )
            for tag, result in zip(by_path, results, strict=True):
                if result.StatusCode.is_good() and result.Targets:
                    target = result.Targets[0].TargetId
                    node_id = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
                    self.tags[tag.name] = ResolvedTag(tag, node_id)
                else:
                    reason = f"{result.StatusCode.name}: browse path {tag.browse_path} not found"
                    self.tags[tag.name] = ResolvedTag(tag, None, reason)
                    log.warning(
                        "opcua_browse_path_unresolved",
                        device=self.device.name,
                        tag=tag.name,
                        browse_path=tag.browse_path,
                        status=result.StatusCode.name,
                    )

    async def _read_write_types(self) -> None:
        """The built-in data types of the writable tags' nodes, in one batched Read, so that a
        value the node cannot hold is refused before it is sent (`data_type`). Derived types
        are left to the first write, which reads the value's own type."""
        writable = [
            (name, resolved.node_id)
            for name, resolved in self.tags.items()
            if resolved.tag.writable and resolved.node_id is not None
        ]
        if not writable:
            return
        found = await self._read([node_id for _, node_id in writable], AttributeIds.DataType)
        for (name, _), value in zip(writable, found, strict=True):
            datatype = value.Value.Value if value.Value is not None else None
            vtype = variant_type_of_datatype(datatype) if isinstance(datatype, ua.NodeId) else None
            if vtype is not None and vtype != ua.VariantType.Variant:
                self._datatypes[name] = vtype

    def data_type(self, name: str) -> ua.VariantType | None:
        """The data type writes to `name` are converted to, when known."""
        return self._datatypes.get(name)

    async def _batched(
        self,
        items: Sequence[Any],
        limit: int,
        service: Callable[[list[Any]], Any],
    ) -> list[Any]:
        size = OperationLimits.batch(limit)
        out: list[Any] = []
        for start in range(0, len(items), size):
            out.extend(await service(list(items[start : start + size])))
        return out

    async def _read(
        self, node_ids: Sequence[ua.NodeId], attribute: AttributeIds
    ) -> list[ua.DataValue]:
        """One Read per `MaxNodesPerRead` nodes, results in order."""

        async def read(chunk: list[ua.NodeId]) -> list[ua.DataValue]:
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=attribute) for n in chunk]
            result: list[ua.DataValue] = await self.client.uaclient.read(params)
            return result

        return await self._batched(node_ids, self.limits.max_nodes_per_read, read)

    # --- polled reads -------------------------------------------------------------------------

    async def read_tags(self, names: Sequence[str]) -> list[tuple[str, ua.DataValue | str]]:
        """Current values of the named tags, in batched Reads; an unresolved tag gives its
        reason instead of a DataValue."""
        readable = [(n, node) for n in names if (node := self.tags[n].node_id) is not None]
        values = await self._read([node for _, node in readable], AttributeIds.Value)
        by_name: dict[str, ua.DataValue | str] = {
            name: value for (name, _), value in zip(readable, values, strict=True)
        }
        return [(name, by_name.get(name, self.tags[name].error)) for name in names]

    # --- the subscription ---------------------------------------------------------------------

    async def subscribe(self, callbacks: PublishCallbacks) -> SubscriptionInfo:
        """Create the device's subscription and one monitored item per subscribed tag."""
        device = self.device
        interval_ms = device.publishing_interval * 1000
        # The server sends a keep-alive when nothing changed for keepalive_count intervals; a
        # subscription that stays silent longer than that is dead (Part 4, 5.13.1.1).
        keepalive_count = max(1, math.ceil(device.keepalive_interval / device.publishing_interval))
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval_ms,
            RequestedLifetimeCount=keepalive_count * 4,
            RequestedMaxKeepAliveCount=keepalive_count,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        handles: dict[int, str] = {}

        event_count = len(device.events)

        def on_publish(result: ua.PublishResult) -> None:
            self.last_publish = time.monotonic()
            batch: list[tuple[str, ua.DataValue]] = []
            events: list[tuple[int, list[ua.Variant]]] = []
            for notification in result.NotificationMessage.NotificationData or ():
                if isinstance(notification, ua.DataChangeNotification):
                    for item in notification.MonitoredItems:
                        name = handles.get(item.ClientHandle)
                        if name is not None:
                            batch.append((name, item.Value))
                elif isinstance(notification, ua.EventNotificationList):
                    for fields in notification.Events:
                        index = fields.ClientHandle - EVENT_HANDLE_BASE
                        if 0 <= index < event_count:
                            events.append((index, list(fields.EventFields or ())))
                elif isinstance(notification, ua.StatusChangeNotification):
                    callbacks.on_status_change(notification.Status)
            if batch:
                callbacks.on_data(batch)
            if events and callbacks.on_events is not None:
                callbacks.on_events(events)

        created = await self.client.uaclient.create_subscription(params, on_publish)
        info = SubscriptionInfo(
            subscription_id=created.SubscriptionId,
            publishing_interval_ms=created.RevisedPublishingInterval,
            keepalive_count=max(1, int(created.RevisedMaxKeepAliveCount)),
            handles=handles,
        )
        self.subscription = info
        self.last_publish = time.monotonic()
        requests: list[tuple[str, ua.MonitoredItemCreateRequest]] = []
        for handle, resolved in enumerate(self.tags.values(), start=1):
            tag = resolved.tag
            if tag.mode is not TagMode.SUBSCRIBE:
                continue
            if resolved.node_id is None:
                info.failed[tag.name] = resolved.error
                continue
            try:
                mfilter = await self._deadband_filter(resolved)
            except _DeadbandError as exc:
                info.failed[tag.name] = str(exc)
                continue
            requests.append((tag.name, self._monitored_item(handle, resolved, mfilter)))
        size = OperationLimits.batch(self.limits.max_monitored_items_per_call)
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            # Register the handles first: the server may publish before it answers.
            for name, request in chunk:
                handles[request.RequestedParameters.ClientHandle] = name
            create = ua.CreateMonitoredItemsParameters(
                SubscriptionId=info.subscription_id,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=[request for _, request in chunk],
            )
            results = await self.client.uaclient.create_monitored_items(create)
            for (name, request), result in zip(chunk, results, strict=True):
                if not result.StatusCode.is_good():
                    handles.pop(request.RequestedParameters.ClientHandle, None)
                    info.failed[name] = result.StatusCode.name
        if device.events:
            await self._subscribe_events(info)
        return info

    async def _subscribe_events(self, info: SubscriptionInfo) -> None:
        """One event monitored item per `events:` entry, in the same subscription (one
        publish loop, one keep-alive watch); a refused one is recorded, not fatal."""
        specs = self.device.events
        create = ua.CreateMonitoredItemsParameters(
            SubscriptionId=info.subscription_id,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ItemsToCreate=[
                event_item(EVENT_HANDLE_BASE + index, spec) for index, spec in enumerate(specs)
            ],
        )
        results = await self.client.uaclient.create_monitored_items(create)
        for index, result in enumerate(results):
            if not result.StatusCode.is_good():
                info.failed_events[index] = result.StatusCode.name
            elif result.FilterResult is not None:
                bad = [
                    code.name
                    for code in getattr(result.FilterResult, "SelectClauseResults", None) or ()
                    if not code.is_good()
                ]
                if bad:
                    log.info("opcua_event_fields_refused", notifier=specs[index].notifier,
                             results=bad)

    async def call(self, request: ua.CallMethodRequest) -> ua.CallMethodResult:
        """One method call; its result is returned as it is (the caller judges the code)."""
        results = await asyncio.wait_for(
            self.client.uaclient.call([request]), self.device.timeout
        )
        return results[0]

    def _monitored_item(
        self, handle: int, resolved: ResolvedTag, mfilter: ua.DataChangeFilter | None
    ) -> ua.MonitoredItemCreateRequest:
        tag = resolved.tag
        interval = tag.sampling_interval or self.device.publishing_interval
        parameters = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=interval * 1000,
            QueueSize=tag.queue_size,
            DiscardOldest=True,
        )
        if mfilter is not None:
            parameters.Filter = mfilter
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(
                NodeId=resolved.node_id, AttributeId=AttributeIds.Value
            ),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=parameters,
        )

    async def _deadband_filter(self, resolved: ResolvedTag) -> ua.DataChangeFilter | None:
        deadband = resolved.tag.deadband
        if deadband is None:
            return None
        value = deadband.value
        if deadband.kind is DeadbandKind.PERCENT:
            # A percent deadband is a share of the node's EURange (Part 8, 6.2); it is sent as
            # the absolute deadband it equals, since Percent is optional for servers (asyncua
            # and many PLCs accept it and then ignore it).
            low, high = await self._eu_range(resolved)
            value = deadband.value / 100.0 * (high - low)
        return ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=ua.DeadbandType.Absolute,
            DeadbandValue=value,
        )

    async def _eu_range(self, resolved: ResolvedTag) -> tuple[float, float]:
        path = ua.BrowsePath(
            StartingNode=resolved.node_id,
            RelativePath=ua.RelativePath(
                Elements=[_forward(ObjectIds.HasProperty, ua.QualifiedName("EURange", 0))]
            ),
        )
        results = await self.client.uaclient.translate_browsepaths_to_nodeids([path])
        if not results or not results[0].StatusCode.is_good() or not results[0].Targets:
            raise _DeadbandError("a percent deadband needs the node's EURange, which it has not")
        target = results[0].Targets[0].TargetId
        node_id = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
        value = (await self._read([node_id], AttributeIds.Value))[0]
        eu_range = value.Value.Value if value.Value is not None else None
        if not isinstance(eu_range, ua.Range) or not eu_range.High > eu_range.Low:
            raise _DeadbandError(f"a percent deadband needs a valid EURange, not {eu_range!r}")
        return float(eu_range.Low), float(eu_range.High)

    # --- writes -------------------------------------------------------------------------------

    async def write(self, name: str, value: Value) -> None:
        """Write one tag, converted to its node's data type (read once per session). Raises
        WriteError naming the server's StatusCode when it refuses."""
        resolved = self.tags[name]
        if resolved.node_id is None:
            raise WriteError(f"{self.device.name}.{name}: node not resolved ({resolved.error})")
        vtype = await self._datatype(name, resolved.node_id)
        variant = encode_for_write(value, vtype)
        write = ua.WriteValue(
            NodeId=resolved.node_id,
            AttributeId=AttributeIds.Value,
            # No timestamps: servers may refuse writes that set them (BadWriteNotSupported).
            Value=ua.DataValue(Value=variant),
        )
        results = await self.client.uaclient.write(ua.WriteParameters(NodesToWrite=[write]))
        status = results[0]
        if not status.is_good():
            raise WriteError(
                f"{self.device.name}.{name}: the server refused the write of {value!r}: "
                f"{status.name}"
            )

    async def _datatype(self, name: str, node_id: ua.NodeId) -> ua.VariantType | None:
        if name not in self._datatypes:
            found = (await self._read([node_id], AttributeIds.DataType))[0]
            datatype = found.Value.Value if found.Value is not None else None
            vtype = variant_type_of_datatype(datatype) if isinstance(datatype, ua.NodeId) else None
            if vtype is None or vtype == ua.VariantType.Variant:
                # A derived or abstract type (an enumeration, Number, BaseDataType): take the
                # type of the value the node holds now.
                current = (await self._read([node_id], AttributeIds.Value))[0]
                held = current.Value
                vtype = held.VariantType if held is not None and held.Value is not None else None
            self._datatypes[name] = vtype
        return self._datatypes[name]


class _DeadbandError(Exception):
    pass


def _browse_path(path: str) -> ua.BrowsePath:
    """`Objects/2:Compressor/2:Pressure` from the Root folder, along hierarchical references."""
    parts = browse_path_parts(path)
    first = parts[0].split(":")[-1]
    elements = parts[1:] if first == "Root" else parts
    return ua.BrowsePath(
        StartingNode=ua.NodeId(ua.Int32(ObjectIds.RootFolder)),
        RelativePath=ua.RelativePath(
            Elements=[
                _forward(ObjectIds.HierarchicalReferences, ua.QualifiedName.from_string(part))
                for part in elements
            ]
        ),
    )



def _forward(reference_type: int, name: ua.QualifiedName) -> ua.RelativePathElement:
    """One step along forward references of `reference_type` or its subtypes."""
    return ua.RelativePathElement(
        ReferenceTypeId=ua.NodeId(ua.Int32(reference_type)),
        IsInverse=False,  # type: ignore[arg-type]  # asyncua annotates its Boolean alias
        IncludeSubtypes=True,  # type: ignore[arg-type]
        TargetName=name,
    )

"""The simulated cell's OPC UA face: a real asyncua server whose nodes mirror plant points.

`refresh()` copies the plant's points into the nodes; a client's write to a writable node is
handed to `plant.write_point` (the plant applies its own limits, and the next refresh shows
what it accepted). Endpoints: None and Basic256Sha256 (certificates generated for tests),
anonymous and user name / password sessions.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import structlog
from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import Field, model_validator

from controller.configtypes import StrictModel
from drivers.sim.opcua_conditions import SimConditions
from drivers.sim.points import PointSource, PointValue
from drivers.sim.scenario import SimAlarm

log = structlog.get_logger(__name__)

SimType = Literal[
    "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
    "Float", "Double",
]  # fmt: skip
SimEndpoint = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]

_ENDPOINTS: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
APPLICATION_URI = "urn:edgecell:sim:opcua"
SERVER_CERT_FILE = "sim-server-cert.der"
SERVER_KEY_FILE = "sim-server-key.pem"


class SimPoint(StrictModel):
    """One plant point as a variable node. `node` is its dotted path below Objects:
    `Compressor.Pressure` is Objects/2:Compressor/2:Pressure, NodeId ns=2;s=Compressor.Pressure."""

    node: str = Field(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")
    writable: bool = False
    type: SimType = "Double"
    unit: str | None = None
    eu_range: tuple[float, float] | None = None  # EURange property (percent deadbands need it)


class SimObject(StrictModel):
    """One PLC: a top-level object under Objects and its points."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    points: dict[str, SimPoint]  # plant point name -> node

    @model_validator(mode="after")
    def _points_below_object(self) -> SimObject:
        for point, spec in self.points.items():
            if not spec.node.startswith(f"{self.name}."):
                raise ValueError(f"point {point!r}: node {spec.node!r} is not below {self.name!r}")
        return self


class SimOpcUaSpec(StrictModel):
    namespace: str = "urn:edgecell:sim"
    objects: list[SimObject] = Field(min_length=1)
    alarms: list[SimAlarm] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SimOpcUaSpec:
        nodes = [p.node for o in self.objects for p in o.points.values()]
        if len(nodes) != len(set(nodes)):
            raise ValueError("two points share a node")
        points = {o.name: set(o.points) for o in self.objects}
        for alarm in self.alarms:
            if alarm.point not in points.get(alarm.object, set()):
                raise ValueError(
                    f"alarm {alarm.name!r}: {alarm.point!r} is not a point of {alarm.object!r}"
                )
        return self


def default_spec() -> SimOpcUaSpec:
    """The compressor-room PLC and the chiller PLC of the simulated cell."""
    return SimOpcUaSpec.model_validate(
        {
            "objects": [
                {
                    "name": "Compressor",
                    "points": {
                        "compressor.pressure_bar": {
                            "node": "Compressor.Pressure", "unit": "bar", "eu_range": (0, 16)
                        },
                        "compressor.pressure_setpoint_bar": {
                            "node": "Compressor.PressureSetpoint", "writable": True, "unit": "bar",
                            "eu_range": (5, 10),
                        },
                        "compressor.motor_power_kw": {
                            "node": "Compressor.MotorPower", "type": "Float", "unit": "kW",
                            "eu_range": (0, 90),
                        },
                        "compressor.running": {"node": "Compressor.Running", "type": "Boolean"},
                        "compressor.loaded": {"node": "Compressor.Loaded", "type": "Boolean"},
                    },
                },
                {
                    "name": "Chiller",
                    "points": {
                        "chiller.supply_temp_c": {
                            "node": "Chiller.SupplyTemperature", "unit": "degC",
                            "eu_range": (-10, 40),
                        },
                        "chiller.supply_setpoint_c": {
                            "node": "Chiller.SupplyTemperatureSetpoint", "writable": True,
                            "unit": "degC", "eu_range": (4, 15),
                        },
                        "chiller.power_kw": {
                            "node": "Chiller.Power", "type": "Float", "unit": "kW",
                            "eu_range": (0, 120),
                        },
                    },
                },
            ],
            # The chiller PLC's own alarm: chilled water leaving too warm for the process.
            "alarms": [
                {
                    "name": "SupplyTemperatureHigh", "object": "Chiller",
                    "point": "chiller.supply_temp_c", "above": 15.0, "severity": 700,
                    "message": "chilled water supply temperature high",
                },
            ],
        }
    )  # fmt: skip


class _Users(UserManager):
    """asyncua's UserManager: a fixed table of user names and passwords."""

    def __init__(self, users: Mapping[str, str], *, allow_anonymous: bool) -> None:
        self._users = dict(users)
        self._allow_anonymous = allow_anonymous

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self._allow_anonymous else None
        if self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class SimOpcUaServer:
    """A real OPC UA server on loopback serving a `PointSource`. Use as an async context
    manager; `endpoint` is the URL to connect to once it is entered."""

    def __init__(
        self,
        plant: PointSource,
        spec: SimOpcUaSpec | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        security: Sequence[SimEndpoint] = ("None", "Basic256Sha256_SignAndEncrypt"),
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool = True,
        cert_dir: Path | None = None,
        max_nodes_per_read: int | None = None,
        server_clock: bool = True,
    ) -> None:
        self.plant = plant
        self.spec = spec or default_spec()
        self.host = host
        self.port = port
        self.security = tuple(security)
        self.users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self.max_nodes_per_read = max_nodes_per_read
        # asyncua's ServerStatus.CurrentTime ticker; stopping it takes up to a second, which
        # tests that start many servers skip.
        self.server_clock = server_clock
        self._cert_dir = cert_dir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: Server | None = None
        self.namespace_index = 0
        self.certificate_path: Path | None = None
        self._nodes: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}  # point -> node
        self._by_node: dict[ua.NodeId, str] = {}  # writable node -> point
        self._last: dict[str, PointValue] = {}
        self.conditions = SimConditions(self.spec.alarms)

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> SimOpcUaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def server(self) -> Server:
        """The asyncua server, for tests that add nodes of their own."""
        if self._server is None:
            raise RuntimeError("the simulated OPC UA server is not running")
        return self._server

    async def start(self) -> None:
        server = Server(user_manager=_Users(self.users, allow_anonymous=self.allow_anonymous))
        # RefreshStart/RefreshEnd events around a ConditionRefresh (Part 9, 5.5.7).
        server.iserver.bind_condition_methods = True
        await server.init()
        server.disable_clock(not self.server_clock)
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}")
        server.set_server_name("edgecell simulated cell")
        await server.set_application_uri(APPLICATION_URI)
        server.set_security_policy([_ENDPOINTS[name] for name in self.security])
        tokens: list[type] = [ua.UserNameIdentityToken]
        if self.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        if any(name != "None" for name in self.security):
            cert, key = await self._certificate()
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            self.certificate_path = cert
        self.namespace_index = await server.register_namespace(self.spec.namespace)
        await self._build_nodes(server)
        if self.max_nodes_per_read is not None:
            limit = server.get_node(
                ua.NodeId(
                    ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
                )
            )
            await limit.write_value(ua.Variant(self.max_nodes_per_read, ua.VariantType.UInt32))
        server.subscribe_server_callback(CallbackType.PostWrite, self._after_write)
        await self._copy_points(server, self._nodes, None)
        await server.start()
        if server.bserver is not None:
            self.port = server.bserver.port
        self._server = server
        log.info("sim_opcua_started", endpoint=self.endpoint, security=list(self.security))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            log.info("sim_opcua_stopped", endpoint=self.endpoint)
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def _certificate(self) -> tuple[Path, Path]:
        """The server's certificate and key in `cert_dir` (kept across restarts, so clients
        that trusted it on first use still do), generated if missing."""
        directory = self._cert_dir
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="edgecell-sim-opcua-")
            directory = Path(self._tempdir.name)
        cert, key = directory / SERVER_CERT_FILE, directory / SERVER_KEY_FILE
        directory.mkdir(parents=True, exist_ok=True)
        await cert_gen.setup_self_signed_certificate(
            key,
            cert,
            APPLICATION_URI,
            socket.gethostname(),
            [ExtendedKeyUsageOID.SERVER_AUTH],
            {},
        )
        return cert, key

    # --- the address space --------------------------------------------------------------------

    async def _build_nodes(self, server: Server) -> None:
        idx = self.namespace_index
        folders: dict[str, Node] = {}
        await self._build_points(server, idx, folders)
        await self.conditions.build(server, folders, idx)

    async def _build_points(self, server: Server, idx: int, folders: dict[str, Node]) -> None:
        for obj in self.spec.objects:
            for point, spec in obj.points.items():
                parts = spec.node.split(".")
                parent = server.nodes.objects
                for depth in range(1, len(parts)):
                    path = ".".join(parts[:depth])
                    if path not in folders:
                        folders[path] = await parent.add_object(
                            _string_node(path, idx), ua.QualifiedName(parts[depth - 1], idx)
                        )
                    parent = folders[path]
                vtype = ua.VariantType[spec.type]
                node_id = _string_node(spec.node, idx)
                initial = _convert(self.plant.read_point(point), vtype)
                variable = await parent.add_variable(
                    node_id, ua.QualifiedName(parts[-1], idx), ua.Variant(initial, vtype)
                )
                if spec.writable:
                    await variable.set_writable()
                    self._by_node[node_id] = point
                if spec.eu_range is not None:
                    low, high = spec.eu_range
                    await variable.add_property(
                        _string_node(f"{spec.node}.EURange", idx),
                        ua.QualifiedName("EURange", 0),
                        ua.Range(Low=low, High=high),
                        datatype=ua.NodeId(ua.Int32(ObjectIds.Range)),
                    )
                self._nodes[point] = (node_id, vtype)

    def node_id(self, point: str) -> str:
        """The NodeId string of a point's node (`ns=2;s=Compressor.Pressure`)."""
        return str(self._nodes[point][0].to_string())

    def browse_path(self, point: str) -> str:
        node_id = self._nodes[point][0]
        parts = str(node_id.Identifier).split(".")
        return "Objects/" + "/".join(f"{self.namespace_index}:{part}" for part in parts)

    def points(self) -> Iterable[str]:
        return self._nodes.keys()

    def subscription_count(self) -> int:
        """Subscriptions the server holds now, over all sessions (tests: no duplicates)."""
        return len(self.server.iserver.subscription_service.subscriptions)

    def monitored_item_count(self) -> int:
        subscriptions = self.server.iserver.subscription_service.subscriptions.values()
        # asyncua keeps no public count of a subscription's monitored items.
        return sum(len(sub.monitored_item_srv._monitored_items) for sub in subscriptions)

    # --- plant <-> nodes ----------------------------------------------------------------------

    async def refresh(self, at: dt.datetime | None = None, *, force: bool = False) -> None:
        """Copy the plant's points into the nodes (only the ones that changed, unless `force`),
        stamped `at` (default now) as their SourceTimestamp."""
        if force:
            self._last.clear()
        await self._copy_points(self.server, self._nodes, at)

    async def _copy_points(
        self, server: Server, points: Iterable[str], at: dt.datetime | None
    ) -> None:
        stamp = at or dt.datetime.now(dt.UTC)
        for point in points:
            value = self.plant.read_point(point)
            if point in self._last and self._last[point] == value:
                continue
            self._last[point] = value
            node_id, vtype = self._nodes[point]
            await server.write_attribute_value(node_id, _datavalue(value, vtype, stamp))
            await self.conditions.observe(point, value)

    async def set_value(self, point: str, value: PointValue, at: dt.datetime | None = None) -> None:
        """Set one node directly (tests: a change the plant did not make)."""
        node_id, vtype = self._nodes[point]
        stamp = at or dt.datetime.now(dt.UTC)
        self._last[point] = value
        await self.server.write_attribute_value(node_id, _datavalue(value, vtype, stamp))
        await self.conditions.observe(point, value)

    async def _after_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        """A client wrote: pass accepted writes of setpoint nodes on to the plant."""
        if not event.is_external:
            return
        results = event.response_params or []
        for request, status in zip(event.request_params.NodesToWrite, results, strict=False):
            point = self._by_node.get(request.NodeId)
            if point is None or request.AttributeId != AttributeIds.Value:
                continue
            if not status.is_good() or request.Value.Value is None:
                continue
            value = request.Value.Value.Value
            try:
                self.plant.write_point(point, value)
            except (KeyError, PermissionError, ValueError, TypeError) as exc:
                log.warning("sim_opcua_write_refused_by_plant", point=point, error=repr(exc))
                continue
            log.info("sim_opcua_setpoint_written", point=point, value=value)
            # Show at once what the plant made of it (it may clamp).
            self._last.pop(point, None)
            if self._server is not None:
                await self._copy_points(self._server, [point], None)


def _datavalue(value: PointValue, vtype: ua.VariantType, stamp: dt.datetime) -> ua.DataValue:
    return ua.DataValue(
        Value=ua.Variant(_convert(value, vtype), vtype),
        SourceTimestamp=ua.DateTime.fromtimestamp(stamp.timestamp(), dt.UTC),
        ServerTimestamp=ua.DateTime.fromtimestamp(stamp.timestamp(), dt.UTC),
    )


def _string_node(identifier: str, namespace: int) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={namespace};s={identifier}")


def _convert(value: PointValue, vtype: ua.VariantType) -> PointValue:
    if vtype == ua.VariantType.Boolean:
        return bool(value)
    if vtype in (ua.VariantType.Float, ua.VariantType.Double):
        return float(value)
    return round(value)

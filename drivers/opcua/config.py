"""The YAML shape of an OPC UA device: endpoint, security, user, schedules and tags.

A tag names its node either by NodeId (`ns=2;s=Compressor.Pressure`, `ns=2;i=1001`,
`ns=2;g=<guid>`) or by browse path (`Objects/2:Compressor/2:Pressure`); both are resolved once
per session, never per read.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from asyncua.ua.object_ids import ObjectIds
from pydantic import BeforeValidator, Field, FilePath, field_validator, model_validator

from controller.configtypes import Name, PositiveDuration, StrictModel, WriteLimits

_ENDPOINT = re.compile(r"^opc\.tcp://[^\s/:]+(:\d{1,5})?(/\S*)?$")
# One NodeId in the OPC UA string notation (Part 6, 5.3.1.10): optional ns=, then i=, s=, g=, b=.
_NODE_ID = re.compile(
    r"^(ns=\d+;)?(i=\d+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/=]+)$"
)
# One browse path element: an optional namespace index and a browse name.
_BROWSE_ELEMENT = re.compile(r"^(\d+:)?[^/]+$")


DEFAULT_APPLICATION_URI = "urn:edgecell:client"


class SecurityPolicy(StrEnum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"


class SecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class OpcUaSecurity(StrictModel):
    """Message security of the secure channel, the client's certificate and how the server's
    certificate is trusted: pinned (`server_cert:`) or trusted on first use (saved in the state
    directory, refused if it ever changes)."""

    policy: SecurityPolicy = SecurityPolicy.NONE
    mode: SecurityMode = SecurityMode.NONE
    # The client's application instance certificate (DER or PEM) and its private key (PEM);
    # when both are left out they are generated on first use into the state directory.
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    # Pinned server certificate (DER or PEM); without it the first certificate seen is trusted.
    server_cert: FilePath | None = None
    application_uri: str = Field(default=DEFAULT_APPLICATION_URI, min_length=1)

    @model_validator(mode="after")
    def _policy_and_mode_agree(self) -> OpcUaSecurity:
        if (self.policy is SecurityPolicy.NONE) != (self.mode is SecurityMode.NONE):
            raise ValueError(
                f"policy {self.policy.value} with mode {self.mode.value}: policy None goes with "
                "mode None, Basic256Sha256 with Sign or SignAndEncrypt"
            )
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give both client_cert and client_key, or neither (generated)")
        if self.policy is SecurityPolicy.NONE and (
            self.client_cert is not None or self.server_cert is not None
        ):
            raise ValueError("certificates are only used with policy Basic256Sha256")
        return self

    @property
    def secure(self) -> bool:
        return self.policy is not SecurityPolicy.NONE


class OpcUaAuth(StrictModel):
    """Anonymous when `username` is left out. The password is never literal YAML: the loader
    refuses it; write `password: '${ENV_VAR}'` or `password_file:`."""

    username: str | None = Field(default=None, min_length=1)
    password: str | None = None
    password_file: FilePath | None = None

    @model_validator(mode="after")
    def _password_needs_user(self) -> OpcUaAuth:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password (as '${ENV_VAR}') or password_file, not both")
        if self.username is None and (self.password is not None or self.password_file is not None):
            raise ValueError("a password needs a username")
        return self

    @property
    def anonymous(self) -> bool:
        return self.username is None

    def resolve_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password


class DeadbandKind(StrEnum):
    ABSOLUTE = "absolute"
    PERCENT = "percent"


class Deadband(StrictModel):
    """Written `deadband: 0.5` (absolute, in the tag's units) or `deadband: 2%` (of the node's
    EURange, which the server must publish)."""

    kind: DeadbandKind
    value: float = Field(ge=0)

    def to_yaml(self) -> float | str:
        if self.kind is DeadbandKind.PERCENT:
            return f"{self.value:g}%"
        return self.value


def _parse_deadband(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(  # noqa: TRY004  (pydantic reports ValueError as a validation error)
            "a deadband is a number (absolute) or a percentage such as '2%'"
        )
    if isinstance(value, int | float):
        return {"kind": DeadbandKind.ABSOLUTE, "value": value}
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("%"):
                return {"kind": DeadbandKind.PERCENT, "value": float(text[:-1])}
            return {"kind": DeadbandKind.ABSOLUTE, "value": float(text)}
        except ValueError:
            raise ValueError(
                f"{value!r} is not a deadband: write a number (absolute) or a percentage ('2%')"
            ) from None
    return value


DeadbandSetting = Annotated[Deadband, BeforeValidator(_parse_deadband)]


class TagMode(StrEnum):
    SUBSCRIBE = "subscribe"  # a monitored item: the server reports changes
    POLL = "poll"  # read every poll_interval, batched with the device's other polled tags


class OpcUaTag(WriteLimits):
    name: Name
    node: str | None = None
    browse_path: str | None = None
    mode: TagMode = TagMode.SUBSCRIBE
    # How often the server samples the node for a subscribed tag (default: the device's
    # publishing_interval); queue_size values are kept between two publishes.
    sampling_interval: PositiveDuration | None = None
    queue_size: int = Field(default=1, ge=1, le=10000)
    deadband: DeadbandSetting | None = None
    unit: str | None = None

    @field_validator("node")
    @classmethod
    def _node_id_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _NODE_ID.match(value.strip()):
            raise ValueError(
                f"{value!r} is not a NodeId: write ns=2;s=Name, ns=2;i=1001 or ns=2;g=<guid>"
            )
        return value.strip() if value is not None else None

    @field_validator("browse_path")
    @classmethod
    def _browse_path_syntax(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = browse_path_parts(value)
        if len(parts) < 2 or not all(_BROWSE_ELEMENT.match(part) for part in parts):
            raise ValueError(
                f"{value!r} is not a browse path: write Objects/2:Compressor/2:Pressure "
                "(namespace index, colon, browse name; '/' between levels)"
            )
        if parts[0] not in ("Objects", "0:Objects", "Root", "0:Root"):
            raise ValueError(f"a browse path starts at Objects or Root, not {parts[0]!r}")
        return value

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give the tag's node (a NodeId) or its browse_path, exactly one")
        if self.mode is TagMode.POLL and self.deadband is not None:
            raise ValueError("deadband is for subscribed tags (mode: subscribe)")
        if self.mode is TagMode.POLL and self.sampling_interval is not None:
            raise ValueError(
                "sampling_interval is for subscribed tags; polled tags use poll_interval"
            )
        return self

    @property
    def address(self) -> str:
        """The node as the user wrote it, for messages."""
        return self.node if self.node is not None else str(self.browse_path)


def check_endpoint(value: str) -> str:
    if not _ENDPOINT.match(value):
        raise ValueError(f"{value!r} is not an endpoint: write opc.tcp://host:4840[/path]")
    return value


def browse_path_parts(path: str) -> list[str]:
    return [part.strip() for part in path.strip().strip("/").split("/")]


# Standard event types by name (Part 5/9), so a config can say `AlarmConditionType`.
_EVENT_TYPE_NAMES = re.compile(r"^[A-Za-z][A-Za-z0-9]*Type$")


def _event_type(value: object) -> object:
    """A NodeId string stays as it is; a standard type name (`OffNormalAlarmType`) becomes its
    NodeId (`i=10637`); anything else is refused naming what was given."""
    if not isinstance(value, str) or _NODE_ID.match(value):
        return value
    if _EVENT_TYPE_NAMES.match(value):
        number = getattr(ObjectIds, value, None)
        if isinstance(number, int):
            return f"i={number}"
    raise ValueError(
        f"{value!r} is neither a NodeId (ns=2;i=1001) nor a standard event type name "
        "(BaseEventType, AlarmConditionType, OffNormalAlarmType, ...)"
    )


EventType = Annotated[str, BeforeValidator(_event_type)]


class OpcUaEvents(StrictModel):
    """Events of one notifier (the Server object by default, or any node whose EventNotifier
    attribute subscribes to events), filtered on the server by type and severity. Conditions
    among them (Alarms & Conditions, Part 9) become edgecell alarms when `alarms` is on."""

    notifier: str = "i=2253"  # Server
    # Event types to receive (a NodeId or a standard type name); empty: every event.
    types: list[EventType] = Field(default_factory=list, max_length=32)
    min_severity: int = Field(default=1, ge=1, le=1000)
    alarms: bool = True
    # Events published at most this often per second per device; more are counted, not sent
    # (conditions still update the alarms).
    max_rate: float = Field(default=50.0, gt=0, le=10_000)

    @field_validator("notifier", "types")
    @classmethod
    def _node_ids(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            if not _NODE_ID.match(item):
                raise ValueError(f"{item!r} is not a NodeId: write i=2253 or ns=2;s=Name")
        return value


class OpcUaDevice(StrictModel):
    """One OPC UA server (a PLC or a gateway) reached over opc.tcp."""

    driver: Literal["opcua"]
    name: Name
    endpoint: str
    security: OpcUaSecurity = OpcUaSecurity()
    auth: OpcUaAuth = OpcUaAuth()
    publishing_interval: PositiveDuration = 1.0
    poll_interval: PositiveDuration = 1.0
    # Every request's answer, and the whole connect (channel, session, resolving the nodes).
    timeout: PositiveDuration = 5.0
    connect_timeout: PositiveDuration = 15.0
    # How often the session is probed (ServerStatus read) when nothing else shows it is alive.
    keepalive_interval: PositiveDuration = 5.0
    session_timeout: PositiveDuration = 60.0
    reconnect_min: PositiveDuration = 1.0
    reconnect_max: PositiveDuration = 60.0
    tags: list[OpcUaTag] = Field(min_length=1)
    events: list[OpcUaEvents] = Field(default_factory=list, max_length=16)

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp_url(cls, value: str) -> str:
        return check_endpoint(value)

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaDevice:
        seen: set[str] = set()
        for tag in self.tags:
            if tag.name in seen:
                raise ValueError(f"duplicate tag name {tag.name!r}")
            seen.add(tag.name)
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min is greater than reconnect_max")
        return self

    def state_dir(self, root: Path) -> Path:
        """Where this device keeps what it learns (the trusted server certificate)."""
        return root / "opcua" / self.name

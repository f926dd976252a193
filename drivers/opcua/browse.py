"""`edgecell browse`: walk a server's address space below Objects and show it as a tree, or as
a ready-to-edit device entry for the config (one tag per variable of a supported type)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds

from controller.configtypes import format_duration
from drivers.opcua.codec import UnsupportedValueError, decode_variant, variant_type_of_datatype
from drivers.opcua.config import OpcUaAuth, OpcUaSecurity
from drivers.opcua.connection import ConnectOptions, connect_client, new_client

# Variables of these types become tags; others (structures, byte strings) are listed only.
TAG_TYPES = frozenset(
    name
    for name in (
        "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
        "Float", "Double", "String", "DateTime", "LocalizedText",
    )
)  # fmt: skip
# Standard condition types (Part 9): an object of one of them is an alarm, not a folder of tags;
# it is listed as a condition and not descended into (its state variables are not process data).
CONDITION_TYPES = frozenset(
    number
    for name, number in vars(ObjectIds).items()
    if isinstance(number, int) and name.endswith(("AlarmType", "ConditionType"))
)
_BROWSE_BATCH = 100  # nodes per Browse request: every server takes that many
_ACCESS_CURRENT_WRITE = 1  # bit of AccessLevel (Part 3, 8.57)


@dataclass
class BrowsedNode:
    node_id: str
    browse_name: str  # with its namespace index: "2:Pressure"
    display_name: str
    node_class: str  # Object, Variable, ...
    path: tuple[str, ...] = ()  # browse names from Objects down to this node
    data_type: str | None = None
    array: bool = False
    writable: bool = False
    value: str | None = None
    children: list[BrowsedNode] = field(default_factory=list)

    def walk(self) -> list[BrowsedNode]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


async def browse(
    endpoint: str,
    depth: int = 3,
    *,
    security: OpcUaSecurity | None = None,
    auth: OpcUaAuth | None = None,
    state_dir: Path,
    request_timeout: float = 5.0,
    include_server: bool = False,
) -> BrowsedNode:
    """The tree below Objects, `depth` levels deep. The standard Server object (namespace 0)
    is left out unless `include_server`."""
    options = ConnectOptions(
        endpoint=endpoint,
        security=security or OpcUaSecurity(),
        auth=auth or OpcUaAuth(),
        session_name="edgecell browse",
        timeout=request_timeout,
    )
    client = new_client(options)
    await connect_client(client, options, state_root=state_dir, device_dir=None)
    try:
        root = BrowsedNode(
            node_id=ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder)).to_string(),
            browse_name="0:Objects",
            display_name="Objects",
            node_class="Object",
        )
        level = [root]
        for current_depth in range(depth):
            level = await _browse_level(client, level, include_server or current_depth > 0)
            if not level:
                break
            await _describe_variables(client, [n for n in level if n.node_class == "Variable"])
    finally:
        await client.disconnect()
    return root


async def _browse_level(
    client: Client, parents: list[BrowsedNode], include_ns0: bool
) -> list[BrowsedNode]:
    found: list[BrowsedNode] = []
    for start in range(0, len(parents), _BROWSE_BATCH):
        chunk = parents[start : start + _BROWSE_BATCH]
        params = ua.BrowseParameters()
        params.NodesToBrowse = [
            ua.BrowseDescription(
                NodeId=ua.NodeId.from_string(parent.node_id),
                BrowseDirection=ua.BrowseDirection.Forward,
                ReferenceTypeId=ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences)),
                NodeClassMask=ua.UInt32(ua.NodeClass.Object | ua.NodeClass.Variable),
                ResultMask=ua.UInt32(ua.BrowseResultMask.All),
            )
            for parent in chunk
        ]
        results = await client.uaclient.browse(params)
        for parent, result in zip(chunk, results, strict=True):
            references = list(result.References)
            continuation = result.ContinuationPoint
            while continuation:
                more = await client.uaclient.browse_next(
                    ua.BrowseNextParameters(ContinuationPoints=[continuation])
                )
                references.extend(more[0].References)
                continuation = more[0].ContinuationPoint
            for ref in references:
                if ref.ReferenceTypeId == ua.NodeId(ua.Int32(ObjectIds.HasProperty)):
                    continue  # EURange, EngineeringUnits...: metadata, not tags
                if not include_ns0 and ref.NodeId.NamespaceIndex == 0:
                    continue
                condition = _is_condition(ref.TypeDefinition)
                node = BrowsedNode(
                    node_id=_node_id(ref.NodeId).to_string(),
                    browse_name=ref.BrowseName.to_string(),
                    display_name=str(ref.DisplayName.Text or ref.BrowseName.Name),
                    node_class="Condition" if condition else ref.NodeClass.name,
                    path=(*parent.path, ref.BrowseName.to_string()),
                )
                parent.children.append(node)
                if not condition:
                    found.append(node)
    return found


async def _describe_variables(client: Client, variables: list[BrowsedNode]) -> None:
    """DataType, UserAccessLevel and Value of each variable, in batched Reads."""
    attributes = (AttributeIds.DataType, AttributeIds.UserAccessLevel, AttributeIds.Value)
    reads = [
        ua.ReadValueId(NodeId=ua.NodeId.from_string(node.node_id), AttributeId=attribute)
        for node in variables
        for attribute in attributes
    ]
    values: list[ua.DataValue] = []
    for start in range(0, len(reads), _BROWSE_BATCH * 3):
        params = ua.ReadParameters()
        params.NodesToRead = reads[start : start + _BROWSE_BATCH * 3]
        values.extend(await client.uaclient.read(params))
    for index, node in enumerate(variables):
        datatype, access, value = values[index * 3 : index * 3 + 3]
        if datatype.Value is not None and isinstance(datatype.Value.Value, ua.NodeId):
            node.data_type = _datatype_name(datatype.Value.Value)
        raw_access = access.Value.Value if access.Value is not None else None
        node.writable = isinstance(raw_access, int) and bool(
            raw_access >> _ACCESS_CURRENT_WRITE & 1
        )
        variant = value.Value
        if variant is not None and variant.Value is not None:
            node.array = bool(variant.is_array)
            if node.data_type in (None, "BaseDataType", "Number"):
                node.data_type = variant.VariantType.name
            node.value = _preview(variant)


def _is_condition(type_definition: ua.ExpandedNodeId | None) -> bool:
    return (
        type_definition is not None
        and type_definition.NamespaceIndex == 0
        and type_definition.Identifier in CONDITION_TYPES
    )


def _node_id(expanded: ua.ExpandedNodeId) -> ua.NodeId:
    return ua.NodeId(expanded.Identifier, expanded.NamespaceIndex, expanded.NodeIdType)


def _datatype_name(datatype: ua.NodeId) -> str:
    vtype = variant_type_of_datatype(datatype)
    if vtype is not None:
        return vtype.name
    if datatype.NamespaceIndex == 0 and isinstance(datatype.Identifier, int):
        return str(ObjectIdNames.get(datatype.Identifier, datatype.to_string()))
    return datatype.to_string()


def _preview(variant: ua.Variant) -> str:
    try:
        decoded: Any = decode_variant(variant)
    except (UnsupportedValueError, AttributeError, TypeError, ValueError):
        return f"<{variant.VariantType.name}>"
    text = json.dumps(decoded)
    return text if len(text) <= 40 else text[:37] + "..."


# --- formatting -------------------------------------------------------------------------------


def format_tree(root: BrowsedNode) -> str:
    """The tree as an operator reads it: browse names, types, values, writability, NodeIds."""
    lines = [f"{root.display_name}  [{root.node_id}]"]

    def add(node: BrowsedNode, prefix: str, last: bool) -> None:
        head = prefix + ("└── " if last else "├── ") + node.browse_name
        if node.node_class == "Variable":
            kind = f"{node.data_type or '?'}{'[]' if node.array else ''}"
            value = f" = {node.value}" if node.value is not None else ""
            rw = "  writable" if node.writable else ""
            lines.append(f"{head}  {kind}{value}{rw}  [{node.node_id}]")
        else:
            lines.append(f"{head}  ({node.node_class})  [{node.node_id}]")
        for i, child in enumerate(node.children):
            add(child, prefix + ("    " if last else "│   "), i == len(node.children) - 1)

    for i, child in enumerate(root.children):
        add(child, "", i == len(root.children) - 1)
    return "\n".join(lines) + "\n"


def tag_name(path: tuple[str, ...]) -> str:
    """`("2:Compressor", "2:PressureSetpoint")` -> `compressor_pressure_setpoint`."""
    words: list[str] = []
    for part in path:
        name = part.split(":", 1)[-1]
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
        words.append(name)
    snake = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(words)).strip("_").lower()
    return (snake or "tag")[:64]


def format_yaml(
    root: BrowsedNode,
    *,
    endpoint: str,
    device_name: str,
    security: OpcUaSecurity | None = None,
    auth: OpcUaAuth | None = None,
    publishing_interval: float = 1.0,
) -> str:
    """A config file that validates as it is: a `gateway:` to rename and a `devices:` entry
    with one subscribed tag per variable of a supported type, ready to edit (rename tags, set
    `mode: poll`, declare setpoints `writable` with limits). Names are quoted: YAML reads an
    unquoted `127_0_0_1` as a number and `on` as true."""
    security = security or OpcUaSecurity()
    lines = [
        f"# edgecell browse {endpoint}: one tag per variable; edit names, modes and limits.",
        "# To add the device to an existing config, copy its entry under devices:.",
        "gateway:",
        "  id: cell-1  # this gateway's name in MQTT topics (edgecell/cell-1/...): set yours",
        "devices:",
        "  - driver: opcua",
        f"    name: {json.dumps(device_name)}",
        f"    endpoint: {json.dumps(endpoint)}",
    ]
    if security.secure:
        lines += [
            "    security:",
            f"      policy: {security.policy.value}",
            f"      mode: {security.mode.value}",
        ]
    if auth is not None and auth.username is not None:
        lines += [
            "    auth:",
            f"      username: {json.dumps(auth.username)}",
            "      password: '${OPCUA_PASSWORD}'",
        ]
    lines += [f"    publishing_interval: {format_duration(publishing_interval)}", "    tags:"]
    used: set[str] = set()
    skipped: list[str] = []
    count = 0
    for node in root.walk():
        if node.node_class != "Variable":
            continue
        if node.data_type not in TAG_TYPES:
            skipped.append(f"    # not a tag ({node.data_type}): {node.node_id}")
            continue
        name = base = tag_name(node.path)
        suffix = 2
        while name in used:
            name = f"{base[: 60]}_{suffix}"
            suffix += 1
        used.add(name)
        count += 1
        kind = f"{node.data_type}{'[]' if node.array else ''}"
        note = f"{kind}, writable on the server" if node.writable else kind
        lines += [
            f"      - name: {json.dumps(name)}  # {note}",
            f"        node: {json.dumps(node.node_id)}",
        ]
    if count == 0:
        lines.append("      []  # no variables found: browse deeper with --depth")
    lines += skipped
    conditions = [node for node in root.walk() if node.node_class == "Condition"]
    if conditions:
        lines += [
            "    # The server has alarm conditions: receive their events and alarms.",
            "    events:",
            "      - notifier: i=2253  # the Server object",
        ]
        lines += [f"    # condition: {node.node_id}" for node in conditions]
    return "\n".join(lines) + "\n"

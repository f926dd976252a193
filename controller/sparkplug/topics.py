"""The Sparkplug B 3.0 topic namespace: `spBv1.0/{group_id}/{type}/{edge_node_id}[/{device_id}]`
and the primary host's `spBv1.0/STATE/{host_id}`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

NAMESPACE = "spBv1.0"


class MessageType(StrEnum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    NDATA = "NDATA"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    DDATA = "DDATA"
    DCMD = "DCMD"


@dataclass(frozen=True, slots=True)
class NodeTopics:
    """The topics of one edge node."""

    group_id: str
    edge_node_id: str

    def node(self, kind: MessageType) -> str:
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}"

    def device(self, kind: MessageType, device_id: str) -> str:
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}/{device_id}"

    @property
    def ncmd(self) -> str:
        return self.node(MessageType.NCMD)

    @property
    def dcmd_filter(self) -> str:
        """Every device's DCMD (subscribed once: devices come and go with reloads)."""
        return f"{NAMESPACE}/{self.group_id}/{MessageType.DCMD}/{self.edge_node_id}/+"

    def dcmd_device(self, topic: str) -> str | None:
        """The device id of a DCMD topic of this node, else None."""
        prefix = f"{NAMESPACE}/{self.group_id}/{MessageType.DCMD}/{self.edge_node_id}/"
        if topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
            return topic[len(prefix) :]
        return None


def state(host_id: str) -> str:
    """The primary host application's STATE topic (Sparkplug 3.0; retained JSON)."""
    return f"{NAMESPACE}/STATE/{host_id}"

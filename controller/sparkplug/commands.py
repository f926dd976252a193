"""NCMD and DCMD of the edge node, read strictly. NCMD `Node Control/Rebirth` asks a rebirth;
each DCMD metric is an operator's write of one tag through the actuator, exactly as `cmd/write`
(`by: sparkplug`, `ttl: sparkplug.write_ttl`). Sparkplug has no answer channel, so every refusal
is logged, and a refused write is also an `events/writes` event (`Writer.record_refusal`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from google.protobuf.message import DecodeError

from controller.actuation.outcomes import ActuationRefusedError
from controller.model import WriteError
from controller.sparkplug import metrics as m
from controller.sparkplug.sparkplug_b_pb2 import Payload
from controller.sparkplug.topics import NodeTopics

log = structlog.get_logger(__name__)

COMMAND_MAX_BYTES = 64 * 1024  # a DCMD of a few metrics is ~100 bytes
COMMAND_MAX_METRICS = 100
WRITER = "sparkplug"  # the `by` of a DCMD write: events/writes says `command:sparkplug`


class Writer(Protocol):
    """The actuator, as DCMD uses it."""

    async def override(self, tag: str, value: Any, ttl: float, *, by: str = ...) -> Any: ...

    def record_refusal(
        self, tag: str, value: Any, reason: str, *, by: str = ...
    ) -> None: ...


class CommandReader:
    """`await reader.handle(topic, payload, metrics, datatypes)` for each NCMD or DCMD;
    `refused` counts what it did not carry out."""

    def __init__(
        self,
        topics: NodeTopics,
        writer: Writer,
        *,
        write_ttl: float,
        on_rebirth: Callable[[], None],
    ) -> None:
        self._topics = topics
        self._writer = writer
        self._write_ttl = write_ttl
        self._on_rebirth = on_rebirth
        self.refused = 0

    async def handle(
        self,
        topic: str,
        raw: bytes,
        metrics: Mapping[str, m.DeviceMetrics],
        datatypes: Mapping[tuple[str, str], int],
    ) -> None:
        """`metrics`: the devices' metrics; `datatypes`: the datatype each tag was born with in
        this session (a command's value is read as that)."""
        if len(raw) > COMMAND_MAX_BYTES:
            self._refused(topic, f"{len(raw)} bytes; commands are at most {COMMAND_MAX_BYTES}")
            return
        try:
            payload = Payload.FromString(raw)
        except DecodeError as exc:
            self._refused(topic, f"not a Sparkplug B payload: {exc}")
            return
        if len(payload.metrics) > COMMAND_MAX_METRICS:
            self._refused(topic, f"{len(payload.metrics)} metrics; at most {COMMAND_MAX_METRICS}")
            return
        if topic == self._topics.ncmd:
            self._node_command(payload)
            return
        device = self._topics.dcmd_device(topic)
        if device is None:
            return
        device_metrics = metrics.get(device)
        if device_metrics is None:
            self._refused(topic, f"unknown device {device[:100]!r}")
            return
        for metric in payload.metrics:
            await self._device_write(device_metrics, metric, datatypes)

    def _node_command(self, payload: Payload) -> None:
        for metric in payload.metrics:
            if metric.name == m.REBIRTH:
                if metric.WhichOneof("value") == "boolean_value" and metric.boolean_value:
                    log.info("sparkplug_rebirth_requested")
                    self._on_rebirth()
                else:
                    self._refused(self._topics.ncmd, "Node Control/Rebirth must be true")
            else:
                shown = (metric.name or str(metric.alias))[:100]
                self._refused(self._topics.ncmd, f"unknown node metric {shown!r}")

    async def _device_write(
        self,
        metrics: m.DeviceMetrics,
        metric: Payload.Metric,
        datatypes: Mapping[tuple[str, str], int],
    ) -> None:
        device = metrics.device
        if metric.HasField("alias"):
            tag = metrics.by_alias.get(metric.alias)
            shown = f"alias {metric.alias}"
        else:
            tag = metrics.tags.get(metric.name)
            shown = metric.name[:100]
        if tag is None:
            self.refused += 1
            reason = f"DCMD names no metric of {device}: {shown}"
            log.warning("sparkplug_write_refused", device=device, error=reason)
            self._writer.record_refusal(f"{device}.{shown}", None, reason, by=WRITER)
            return
        key = f"{device}.{tag.name}"
        datatype = datatypes.get((device, tag.name), tag.datatype or 0)
        try:
            value = m.command_value(metric, datatype)
        except m.CommandValueError as exc:
            self.refused += 1
            log.warning("sparkplug_write_refused", tag=key, error=str(exc))
            self._writer.record_refusal(key, None, f"DCMD: {exc}", by=WRITER)
            return
        try:
            await self._writer.override(key, value, self._write_ttl, by=WRITER)
        except ActuationRefusedError as exc:
            self.refused += 1
            log.warning("sparkplug_write_refused", tag=key, value=value, error=str(exc))
            self._writer.record_refusal(key, value, str(exc), by=WRITER)
        except WriteError as exc:  # refused in the cycle or failed: the actuator published it
            self.refused += 1
            log.warning("sparkplug_write_not_done", tag=key, value=value, error=str(exc))
        else:
            log.info("sparkplug_write", tag=key, value=value)

    def _refused(self, topic: str, reason: str) -> None:
        self.refused += 1
        log.warning("sparkplug_command_refused", topic=topic[:200], error=reason[:300])

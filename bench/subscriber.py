"""The subscriber that judges every gateway the same way: it counts the values in each data
message, and notes when each register's new value (its change generation) first arrives.

One parser per payload shape turns a message into (device, address, value) triples; counting
and latency bookkeeping are shared. It also answers the ThingsBoard gateway's session-limits
request, which a ThingsBoard server would answer, so that the gateway starts publishing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt

# (device index, register address, value as published)
Triple = tuple[int, int, Any]
Parser = Callable[[str, bytes], Iterator[Triple]]

# ThingsBoard device API (tb_device_mqtt.py): the gateway asks `getSessionLimits` over
# client-side RPC and waits for the answer before it sends telemetry.
TB_RPC_REQUEST = "v1/devices/me/rpc/request/"
TB_RPC_RESPONSE = "v1/devices/me/rpc/response/"
# What a ThingsBoard server answers with its default settings: no rate limits.
TB_SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": {},
    "gatewayRateLimits": {},
}


def _number(name: str) -> int:
    """The index in a device or tag name (`d007` -> 7, `r0125` or `r125` -> 125): every name
    the benchmark generates is one letter and digits (a slice, not a regex: this runs for every
    value received)."""
    return int(name[1:])


def _device(topic: str) -> int:
    """The device index of a topic ending in its name (`.../d007`)."""
    return int(topic[topic.rindex("/") + 2 :])


def parse_edgecell(topic: str, payload: bytes) -> Iterator[Triple]:
    """`.../d007` with `{ts, [seq,] values: {r0001: {v, q, ts}}}` (edgecell's data topic, and
    the Node-RED decoding flow, which publishes the same)."""
    device = _device(topic)
    for tag, item in orjson.loads(payload)["values"].items():
        yield device, int(tag[1:]), item["v"]


def parse_raw_array(topic: str, payload: bytes) -> Iterator[Triple]:
    """`.../d007/125` (device, first address) with a JSON array of register values."""
    head, start = topic.rsplit("/", 1)
    device, first = _device(head), int(start)
    for offset, value in enumerate(orjson.loads(payload)):
        yield device, first + offset, value


def parse_thingsboard(topic: str, payload: bytes) -> Iterator[Triple]:
    """`v1/gateway/telemetry` with `{d007: [{ts, values: {r1: value}}, ...]}`."""
    del topic
    for name, items in orjson.loads(payload).items():
        device = _number(name)
        for item in items:
            values = item.get("values", item) if isinstance(item, dict) else {}
            for key, value in values.items():
                if key != "ts":
                    yield device, int(key[1:]), value


@dataclass
class Tally:
    """What arrived for one gateway: per message its arrival time and value count; per
    (device, generation) the arrival times of the registers that took that generation."""

    devices: int
    registers: int
    value_scale: float  # published value = register * value_scale
    messages: list[tuple[float, int]] = field(default_factory=list)
    sightings: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    bad_messages: int = 0
    last_error: str = ""
    _last: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._last = [[0] * self.registers for _ in range(self.devices)]

    @property
    def first_arrival(self) -> float | None:
        return self.messages[0][0] if self.messages else None

    def record(self, arrived: float, triples: Iterator[Triple]) -> None:
        inverse = 1.0 / self.value_scale
        last = self._last
        count = 0
        for device, address, value in triples:
            count += 1
            if value is None or isinstance(value, bool):
                continue
            generation = round(value * inverse)
            row = last[device]
            if generation != row[address]:
                row[address] = generation
                if generation:
                    self.sightings.setdefault((device, generation), []).append(arrived)
        self.messages.append((arrived, count))


class Subscriber:
    """A paho client in its own thread, feeding one `Tally` with `parser`'s triples."""

    def __init__(
        self,
        port: int,
        topic_filter: str,
        parser: Parser,
        tally: Tally,
        *,
        answer_thingsboard: bool = False,
    ) -> None:
        self.port = port
        self.topic_filter = topic_filter
        self.parser = parser
        self.tally = tally
        self.answer_thingsboard = answer_thingsboard
        self.session_limit_requests = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"bench-subscriber-{time.time_ns()}",
            protocol=mqtt.MQTTv311,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def __enter__(self) -> Subscriber:
        self._client.connect("127.0.0.1", self.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout=10):
            self.__exit__(None, None, None)
            raise RuntimeError(f"subscriber could not subscribe on 127.0.0.1:{self.port}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            return
        topics = [(self.topic_filter, 1)]
        if self.answer_thingsboard:
            topics.append((TB_RPC_REQUEST + "+", 1))
        client.subscribe(topics)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        topic = message.topic
        if self.answer_thingsboard and topic.startswith(TB_RPC_REQUEST):
            request = orjson.loads(message.payload)
            if request.get("method") == "getSessionLimits":
                self.session_limit_requests += 1
                request_id = topic[len(TB_RPC_REQUEST):]
                client.publish(TB_RPC_RESPONSE + request_id, orjson.dumps(TB_SESSION_LIMITS), qos=1)
            return
        try:
            self.tally.record(arrived, self.parser(topic, message.payload))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            self.tally.bad_messages += 1
            self.tally.last_error = f"{topic}: {exc!r} in {bytes(message.payload[:300])!r}"

"""The subscriber that judges every gateway the same way: it counts the values in each data
message, and notes when each register's new value (its change generation) first arrives.

One parser per payload shape turns a message into (device, address, value) triples; counting
and latency bookkeeping are shared. It also answers the ThingsBoard gateway's session-limits
request, which a ThingsBoard server would answer, so that the gateway starts publishing.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.workload import Workload

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


def parse_raw_array(topic: str, payload: bytes) -> tuple[int, int, list[int]]:
    """`.../d007/125` (device, first address) with a JSON array of register values."""
    head, start = topic.rsplit("/", 1)
    return _device(head), int(start), orjson.loads(payload)


def parse_thingsboard(topic: str, payload: bytes) -> Iterator[Triple]:
    """`v1/gateway/telemetry` with `{d007: [{ts, values: {r1: value}}, ...]}`."""
    del topic
    for name, items in orjson.loads(payload).items():
        device = _number(name)
        for item in items:
            values = item.get("values", item) if isinstance(item, dict) else {}
            for key, value in values.items():
                if key != "ts":  # r123, or r123_4 for the range entries (bench.gateways)
                    yield device, int(key[1:].split("_", 1)[0]), value


class Tally:
    """What arrived for one gateway: per message its arrival time and value count; per
    (device, generation) the arrival times of the tags that took that generation."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.messages: list[tuple[float, int]] = []
        self.sightings: dict[tuple[int, int], list[float]] = {}
        self.bad_messages = 0
        self.last_error = ""
        size = workload.registers
        # 1 / scale by the tag's first register (published value = generation * scale).
        self._inverse = [0.0] * size
        self._float = [False] * size
        for tag in workload.fields:
            self._inverse[tag.address] = 1.0 / tag.scale
            self._float[tag.address] = tag.kind == "float32"
        self._last = [[0] * size for _ in range(workload.devices)]

    @property
    def first_arrival(self) -> float | None:
        return self.messages[0][0] if self.messages else None

    def _seen(self, device: int, address: int, generation: int, arrived: float) -> None:
        row = self._last[device]
        if generation != row[address]:
            row[address] = generation
            if generation:
                self.sightings.setdefault((device, generation), []).append(arrived)

    def record(self, arrived: float, triples: Iterator[Triple]) -> None:
        """Decoded values: `(device, first register of the tag, published value)`."""
        inverse = self._inverse
        count = 0
        for device, address, value in triples:
            count += 1
            if value is None or isinstance(value, bool):
                continue
            self._seen(device, address, round(value * inverse[address]), arrived)
        self.messages.append((arrived, count))

    def record_registers(self, arrived: float, device: int, first: int, words: list[int]) -> None:
        """A raw register array from `first`: each register counts as a value; the tags that
        start in it are decoded (a float32 from its two registers) to follow the changes."""
        is_float = self._float
        inverse = self._inverse
        end = min(first + len(words), len(inverse))
        for address in range(first, end):
            if not inverse[address]:
                continue  # second register of a float32
            offset = address - first
            if is_float[address]:
                if offset + 1 >= len(words):
                    continue
                raw = struct.unpack(">f", struct.pack(">HH", words[offset], words[offset + 1]))[0]
                generation = round(raw)
            else:
                generation = int(words[offset])
            self._seen(device, address, generation, arrived)
        self.messages.append((arrived, len(words)))


class Subscriber:
    """A paho client in its own thread, feeding one `Tally` with `parser`'s triples."""

    def __init__(
        self,
        port: int,
        topic_filter: str,
        parser: Parser | None,
        tally: Tally,
        *,
        answer_thingsboard: bool = False,
    ) -> None:
        """`parser` None: the messages are raw register arrays (`parse_raw_array`)."""
        self.port = port
        self.topic_filter = topic_filter
        self.parser = parser
        self.tally = tally
        self.answer_thingsboard = answer_thingsboard
        self.session_limit_requests = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
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
            if self.parser is None:
                payload = bytes(message.payload)
                self.tally.record_registers(arrived, *parse_raw_array(topic, payload))
            else:
                self.tally.record(arrived, self.parser(topic, bytes(message.payload)))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            self.tally.bad_messages += 1
            self.tally.last_error = f"{topic}: {exc!r} in {bytes(message.payload[:300])!r}"

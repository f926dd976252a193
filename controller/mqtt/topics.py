"""The MQTT topic contract of DESIGN.md as functions, and the JSON payloads of the topics this
package publishes itself. docs/mqtt-topics.md documents every schema; keep the two together.

Payloads are UTF-8 JSON with epoch-millisecond timestamps. NaN and infinities become null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from controller.model import DeviceStatus, Quality, Sample


class TopicLevelError(ValueError):
    """A name that cannot be one topic level (empty, or holding '/', '+', '#' or NUL)."""


def _level(kind: str, name: str) -> str:
    if not name or any(char in name for char in "/+#\x00"):
        raise TopicLevelError(f"{kind} name {name!r} cannot be an MQTT topic level")
    return name


# --- topics ----------------------------------------------------------------------------------


def status(base: str) -> str:
    """Retained birth / death of the gateway; also its Last Will."""
    return f"{base}/status"


def data(base: str, device: str) -> str:
    """Batches of changed samples of one device."""
    return f"{base}/data/{_level('device', device)}"


def tag(base: str, device: str, tag_name: str) -> str:
    """Retained latest value of one tag (optional, `retain_tags: true`)."""
    return f"{base}/tags/{_level('device', device)}/{_level('tag', tag_name)}"


def device_status(base: str, device: str) -> str:
    """Retained connection state of one device."""
    return f"{base}/devices/{_level('device', device)}/status"


def health(base: str) -> str:
    """Periodic health of the gateway; not retained, not buffered."""
    return f"{base}/health"


def rule_state(base: str, rule: str) -> str:
    """Retained mode and outputs of one rule."""
    return f"{base}/rules/{_level('rule', rule)}/state"


def write_events(base: str) -> str:
    """Every write attempt, by a rule or a command, with its outcome."""
    return f"{base}/events/writes"


def config_events(base: str) -> str:
    """Every config reload, accepted or refused."""
    return f"{base}/events/config"


def device_events(base: str, protocol: str, device: str) -> str:
    """Events a device raised (OPC UA events and condition changes), in order, buffered."""
    return f"{base}/events/{_level('protocol', protocol)}/{_level('device', device)}"


def alarm(base: str, alarm_name: str) -> str:
    """Retained state of one alarm."""
    return f"{base}/alarms/{_level('alarm', alarm_name)}"


def plan(base: str) -> str:
    """The scheduler's plan in force, retained (or why there is none)."""
    return f"{base}/plan"


def plan_events(base: str) -> str:
    """Every re-plan, with why and its outcome."""
    return f"{base}/events/plan"


def forecast_events(base: str) -> str:
    """Every forecast offered to the scheduler, accepted or refused (and why)."""
    return f"{base}/events/forecast"


def pv_forecast(base: str) -> str:
    """Where a weather service (bridged) feeds the PV cloud forecast."""
    return f"{base}/forecast/pv"


def commands(base: str) -> str:
    """The filter the gateway subscribes to for commands."""
    return f"{base}/cmd/#"


def command_response(base: str) -> str:
    """Where answers go when the request carried no MQTT 5 ResponseTopic."""
    return f"{base}/cmd/response"


# --- payloads --------------------------------------------------------------------------------


def _dumps(payload: Any) -> bytes:
    """orjson's JSON in a bytes object of its own length. orjson (3.12 and later) returns its
    working buffer, sized by an estimate and never shrunk: a 54 KB batch of 1,000 values held
    519 KB, a 40-byte event 4 KB. Payloads wait in the buffer, counted by their length against
    its memory bounds, and retained ones stay for the daemon's life; one copy (a memcpy) costs
    less than that (bench/README.md, issue 13)."""
    return bytes(memoryview(orjson.dumps(payload)))


def encode(payload: Mapping[str, Any]) -> bytes:
    """JSON, UTF-8, compact. orjson writes NaN and infinities as null (stdlib json writes
    `NaN`, which is not JSON)."""
    return _dumps(payload)


def decode(payload: bytes | str) -> Any:
    """The inverse of `encode`, for consumers and tests."""
    return orjson.loads(payload)


def sample_value(sample: Sample) -> dict[str, Any]:
    """`{v, q, ts}` of one sample, with `r` (reason) when its quality is not good."""
    value: dict[str, Any] = {"v": sample.value, "q": sample.quality.value, "ts": sample.source_ts}
    if sample.quality is not Quality.GOOD:
        value["r"] = sample.reason
    return value


def data_batch(samples: Iterable[Sample], *, epoch: str, seq: int, ts: int) -> bytes:
    """`{ts, epoch, seq, values: {tag: {v, q, ts[, r]}}}`; a tag that appears twice keeps its
    last. (epoch, seq) never repeats for a device: a new epoch starts its seq at 1 again."""
    good = Quality.GOOD
    values: dict[str, dict[str, Any]] = {}
    for sample in samples:  # every published value passes here: sample_value inlined for good
        if sample.quality is good:
            values[sample.tag] = {"v": sample.value, "q": "good", "ts": sample.source_ts}
        else:
            values[sample.tag] = sample_value(sample)
    return _dumps({"ts": ts, "epoch": epoch, "seq": seq, "values": values})


def tag_value(sample: Sample) -> bytes:
    """Payload of `{base}/tags/{device}/{tag}`."""
    return _dumps(sample_value(sample))


def device_status_payload(device_status_: DeviceStatus, *, ts: int) -> bytes:
    """Payload of `{base}/devices/{device}/status`."""
    return _dumps(
        {
            "ts": ts,
            "device": device_status_.device,
            "state": device_status_.state.value,
            "since": device_status_.since_ms,
            "last_error": device_status_.last_error,
            "consecutive_failures": device_status_.consecutive_failures,
            "reconnects": device_status_.reconnects,
            "polls": device_status_.polls,
            "skipped_cycles": device_status_.skipped_cycles,
            "latency_ms": device_status_.latency_ms,
            "extra": device_status_.extra,
        }
    )


def birth(*, version: str, config_hash: str, started: int) -> dict[str, Any]:
    """The retained `online` message, published on every (re)connect."""
    return {"state": "online", "version": version, "config_hash": config_hash, "started": started}


def online(birth_: Mapping[str, Any], *, epoch: str, broker: str | None) -> dict[str, Any]:
    """The birth as published: with the epoch of the data topics' seq, known once the
    buffer is open, and the broker (`host:port`) of the session it is published on."""
    return {**birth_, "epoch": epoch, "broker": broker}


def death(*, ts: int, clean: bool) -> bytes:
    """The retained `offline` message. As Last Will (`clean: false`) the broker sends what was
    set at connect time, so `ts` is then when that connection began; on a clean stop it is the
    time of the stop."""
    return _dumps({"state": "offline", "ts": ts, "clean": clean})


def health_payload(values: Mapping[str, Any], *, ts: int) -> bytes:
    """Payload of `{base}/health`: `ts` and whatever the runtime measures."""
    return _dumps({"ts": ts, **values})

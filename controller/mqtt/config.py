"""The `mqtt:` section of the config: broker, session, TLS, credentials, what is published and
how the store-and-forward buffer keeps messages while the broker is away."""

from __future__ import annotations

import math
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from controller.configtypes import PositiveDuration, StrictModel

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_UNIT_BYTES = {
    None: 1,
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}


def parse_size(value: Any) -> int:
    """`64MiB`, `500MB`, `1GiB`, `4096` (bytes) -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or (match := _SIZE.match(value)) is None:
        raise ValueError(
            f"{value!r} is not a size: write bytes or a number and one of kB, MB, GB, KiB, MiB, GiB"
        )
    number = float(match.group(1)) * _UNIT_BYTES[match.group(2)]
    if not math.isfinite(number):  # 400 digits are a float too large to be a size
        raise ValueError(f"{value!r} is not a size: the number is too large")
    return int(number)


# Bytes, written in YAML as `64MiB` or a bare number of bytes.
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


class TlsConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname check; for test brokers with self-signed certs only

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """The client's TLS context (the daemon's, and `edgecell watch`'s with `--config`);
        reads the files, so call it at each connection attempt to pick up rotated ones."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        if self.cert_file is not None:
            context.load_cert_chain(
                str(self.cert_file), str(self.key_file) if self.key_file is not None else None
            )
        if self.insecure:
            context.check_hostname = False
        return context


class BufferConfig(StrictModel):
    """The store-and-forward buffer (docs/mqtt-topics.md, "Delivery")."""

    # always: every message is on disk (commits every 100 ms) before it counts as accepted.
    # outage: messages stay in memory while the broker acknowledges them and go to disk when it
    # is unreachable, when memory passes memory_high_water, and on shutdown (less flash wear).
    durability: Literal["always", "outage"] = "outage"
    max_bytes: ByteSize = 256 * 1024**2
    max_age: PositiveDuration = 7 * 86400.0
    drain_rate: float = Field(default=500.0, gt=0, description="backlog messages per second")
    memory_high_water: ByteSize = 16 * 1024**2


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None  # default edgecell-{gateway.id}
    base_topic: str | None = None  # default edgecell/{gateway.id}
    qos: Literal[0, 1, 2] = 1
    keepalive: PositiveDuration = 30.0
    username: str | None = None
    password: str | None = None  # only as ${ENV_VAR}, never literal
    password_file: Path | None = None
    tls: TlsConfig | None = None
    retain_tags: bool = False  # also publish {base}/tags/{device}/{tag} retained
    # changes: report by exception (only samples whose value or quality changed);
    # every_poll: every sample of every poll, as polling gateways without a tag table do.
    publish: Literal["changes", "every_poll"] = "changes"
    health_interval: PositiveDuration = 10.0
    reconnect_min: PositiveDuration = 0.5
    reconnect_max: PositiveDuration = 30.0
    buffer: BufferConfig = BufferConfig()

    @field_validator("base_topic")
    @classmethod
    def _no_wildcards(cls, value: str | None) -> str | None:
        if value is not None and (set(value) & {"+", "#"} or value.endswith("/") or not value):
            raise ValueError("base_topic must be a topic without wildcards or a trailing '/'")
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password (as ${ENV_VAR}) or password_file, not both")
        return self

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> MqttConfig:
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min is greater than reconnect_max")
        return self

    def resolve_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password

    def resolve_client_id(self, gateway_id: str) -> str:
        """The configured client id, else `edgecell-{gateway.id}`."""
        return self.client_id or f"edgecell-{gateway_id}"

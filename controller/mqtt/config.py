"""The `mqtt:` section of the config: brokers (one, or a list to fail over through), session,
TLS, credentials, what is published and how the store-and-forward buffer keeps messages while
the broker is away."""

from __future__ import annotations

import math
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from controller.configtypes import PositiveDuration, StrictModel
from controller.mqtt.brokers import BrokerEndpoint

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


# More brokers than this is a typo or a hostile file, not a cluster (a round tries each).
MAX_BROKERS = 16
DEFAULT_PORT = 1883
# A host name or address: no spaces, no scheme, no path (`mqtt://x` and `x/y` are refused).
_HOST = r"^[^\s/]+$"


_SHORTHAND = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/\[\]]+))(?::(?P<port>\d{1,5}))?$"
)
_BARE_V6 = re.compile(r"^[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$")


def broker_shorthand(value: Any) -> Any:
    """An entry of `brokers` written as `host`, `host:port` or `[IPv6]:port` -> its mapping."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _BARE_V6.match(text):
        return {"host": text}  # an IPv6 address without a port
    match = _SHORTHAND.match(text)
    if match is None:
        raise ValueError(
            f"{value[:100]!r} is not a broker: write host, host:port or [IPv6 address]:port "
            "(no scheme, no path), or a mapping with host, port, tls, username, ..."
        )
    entry: dict[str, Any] = {"host": match["v6"] or match["host"]}
    if match["port"]:
        entry["port"] = int(match["port"])
    return entry


class BrokerConfig(StrictModel):
    """One entry of `mqtt.brokers`. A key it leaves out is taken from the section (`port`,
    `tls`); the credentials go as one: an entry that gives any of `username`, `password`,
    `password_file` takes none of them from the section."""

    host: str = Field(min_length=1, max_length=253, pattern=_HOST)
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = None  # only as ${ENV_VAR}, never literal
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password_source(self) -> BrokerConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password (as ${ENV_VAR}) or password_file, not both")
        return self

    @property
    def gives_credentials(self) -> bool:
        return not {"username", "password", "password_file"}.isdisjoint(self.model_fields_set)


class MqttConfig(StrictModel):
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253, pattern=_HOST)
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None  # default edgecell-{gateway.id}
    base_topic: str | None = None  # default edgecell/{gateway.id}
    qos: Literal[0, 1, 2] = 1
    keepalive: PositiveDuration = 30.0
    username: str | None = None
    password: str | None = None  # only as ${ENV_VAR}, never literal
    password_file: Path | None = None
    tls: TlsConfig | None = None
    # Fail over through these in order (docs/configuration.md, "Several brokers"); instead of
    # `host`, and after port, tls and the credentials, whose values are their defaults.
    brokers: list[Annotated[BrokerConfig, BeforeValidator(broker_shorthand)]] | None = Field(
        default=None, max_length=MAX_BROKERS
    )
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

    @field_validator("brokers")
    @classmethod
    def _distinct_brokers(
        cls, brokers: list[BrokerConfig] | None, info: ValidationInfo
    ) -> list[BrokerConfig] | None:
        if brokers is None:
            return None
        if not brokers:
            raise ValueError(
                "the list is empty: name at least one broker, or leave brokers out and give host"
            )
        section_port = info.data.get("port", DEFAULT_PORT)
        seen: dict[tuple[str, int], int] = {}
        for index, broker in enumerate(brokers):
            address = (broker.host.lower(), broker.port or section_port)
            if address in seen:
                raise ValueError(
                    f"brokers[{index}] ({broker.host}:{address[1]}) is the same broker as "
                    f"brokers[{seen[address]}]: each broker once"
                )
            seen[address] = index
        return brokers

    @model_validator(mode="after")
    def _host_or_brokers(self) -> MqttConfig:
        if self.brokers is not None and "host" in self.model_fields_set:
            raise ValueError(
                "give host or brokers, not both (port, tls and the credentials may stay as "
                "the defaults of every broker in the list)"
            )
        return self

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

    def endpoints(self) -> tuple[BrokerEndpoint, ...]:
        """The brokers in the order they are tried, each with the section's defaults filled
        in: `brokers`, or the one broker of `host` and `port`."""
        if self.brokers is None:
            return (self._endpoint(BrokerConfig(host=self.host)),)
        return tuple(self._endpoint(broker) for broker in self.brokers)

    def _endpoint(self, broker: BrokerConfig) -> BrokerEndpoint:
        own = broker.gives_credentials
        return BrokerEndpoint(
            host=broker.host,
            port=broker.port or self.port,
            tls=broker.tls if broker.tls is not None else self.tls,
            username=broker.username if own else self.username,
            password=broker.password if own else self.password,
            password_file=broker.password_file if own else self.password_file,
        )

    def resolve_client_id(self, gateway_id: str) -> str:
        """The configured client id, else `edgecell-{gateway.id}`."""
        return self.client_id or f"edgecell-{gateway_id}"

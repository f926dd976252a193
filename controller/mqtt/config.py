"""The `mqtt:` section of the config: broker, session, TLS, credentials and what is published."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from controller.configtypes import PositiveDuration, StrictModel


class TlsConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname check; for test brokers with self-signed certs only


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None
    base_topic: str | None = None  # default edgecell/{gateway.id}
    qos: Literal[0, 1, 2] = 1
    keepalive: PositiveDuration = 30.0
    username: str | None = None
    password: str | None = None  # only as ${ENV_VAR}, never literal
    password_file: Path | None = None
    tls: TlsConfig | None = None
    retain_tags: bool = False  # also publish {base}/tags/{device}/{tag} retained
    health_interval: PositiveDuration = 10.0
    reconnect_min: PositiveDuration = 0.5
    reconnect_max: PositiveDuration = 30.0

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

    def resolve_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password

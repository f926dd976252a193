"""Which broker to connect to next: the brokers of `mqtt:` as resolved endpoints, and the
rotation through them that every MQTT session of the gateway (the JSON publisher, a Sparkplug
edge node) uses to fail over at once and back off only after a full round has failed."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.mqtt.config import MqttConfig, TlsConfig


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """One broker with everything needed to connect to it, the section's defaults filled in
    (`MqttConfig.endpoints()`)."""

    host: str
    port: int
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = None  # already resolved from ${ENV_VAR} by the config loader
    password_file: Path | None = None

    @property
    def name(self) -> str:
        """`host:port` (`[v6-address]:port`): how logs, health and the birth name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def read_secrets(self) -> tuple[str | None, ssl.SSLContext | None]:
        """The password and the TLS context, read from their files now (blocking: call it in a
        thread). Read again at every attempt, so a rotated password or certificate is taken."""
        password = self.password
        if self.password_file is not None:
            password = self.password_file.read_text(encoding="utf-8").strip()
        return password, (tls_context(self.tls) if self.tls is not None else None)

    async def client_options(self) -> dict[str, Any]:
        """`aiomqtt.Client(**await endpoint.client_options(), identifier=..., ...)`: hostname,
        port, username, password, tls_context."""
        password, context = await asyncio.to_thread(self.read_secrets)
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": password,
            "tls_context": context,
        }


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    return tls.ssl_context()


class BrokerRotation:
    """The broker to try now, and how long to wait before trying the next.

    ```
    rotation = BrokerRotation.from_config(config.mqtt)
    while running:
        endpoint = rotation.current
        try:
            async with aiomqtt.Client(**await endpoint.client_options(), ...) as client:
                rotation.connected()
                ...                                  # the session
        except aiomqtt.MqttError:
            pass
        await asyncio.sleep(rotation.failed())       # 0 s, or a backoff after a full round
    ```

    `failed()` (a refused or failed attempt, or a session lost) moves to the next broker in
    list order and returns 0 while this round has brokers left to try; once every broker of the
    round has failed it returns a backoff drawn at random in [0, min(max, min * 2**rounds)]
    (full jitter), so a hundred gateways do not return at once. `connected()` starts the count
    again. With one broker, each failure is a full round: the backoff of a single broker.
    """

    def __init__(
        self,
        endpoints: Sequence[BrokerEndpoint],
        *,
        reconnect_min: float,
        reconnect_max: float,
        start: int = 0,
    ) -> None:
        if not endpoints:
            raise ValueError("a broker rotation needs at least one broker")
        self._endpoints = tuple(endpoints)
        self._min = reconnect_min
        self._max = reconnect_max
        self._index = start % len(self._endpoints)
        self._failed_in_round = 0
        self._rounds_failed = 0

    @classmethod
    def from_config(
        cls, config: MqttConfig, previous: BrokerRotation | None = None
    ) -> BrokerRotation:
        """From an `MqttConfig`. With `previous` (a config reload), the rotation stays on the
        broker it was on when that broker is still in the list, else starts at the first."""
        endpoints = config.endpoints()
        start = 0
        if previous is not None:
            addresses = [(e.host.lower(), e.port) for e in endpoints]
            current = previous.current
            with_address = (current.host.lower(), current.port)
            if with_address in addresses:
                start = addresses.index(with_address)
        return cls(
            endpoints,
            reconnect_min=config.reconnect_min,
            reconnect_max=config.reconnect_max,
            start=start,
        )

    @property
    def endpoints(self) -> tuple[BrokerEndpoint, ...]:
        return self._endpoints

    @property
    def current(self) -> BrokerEndpoint:
        return self._endpoints[self._index]

    def connected(self) -> None:
        """A session with `current` is up: the next failure starts a new round."""
        self._failed_in_round = 0
        self._rounds_failed = 0

    def failed(self) -> float:
        """`current` refused, failed or was lost: move to the next broker; returns the seconds
        to wait before trying it (0 while the round has brokers left)."""
        self._index = (self._index + 1) % len(self._endpoints)
        self._failed_in_round += 1
        if self._failed_in_round < len(self._endpoints):
            return 0.0
        self._failed_in_round = 0
        cap = min(self._max, self._min * 2 ** min(self._rounds_failed, 30))
        self._rounds_failed += 1
        return max(0.01, random.uniform(0, cap))

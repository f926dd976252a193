"""A private mosquitto for `edgecell demo`: started on a free loopback port, stopped on exit.

Used only when no broker is named; production gateways point at the site's broker.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType

STARTUP_TIMEOUT = 5.0


class BrokerNotFoundError(RuntimeError):
    """mosquitto is not installed."""


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if found is None:
        raise BrokerNotFoundError(
            "mosquitto is not installed: run `bash scripts/setup` (as root it installs it) or "
            "`sudo apt-get install mosquitto`"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalMosquitto:
    """`async with LocalMosquitto() as broker:` -> broker.host, broker.port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._dir = tempfile.TemporaryDirectory(prefix="edgecell-broker-")
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> LocalMosquitto:
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self._dir.name}/\n"
            "log_dest none\n",
            encoding="utf-8",
        )
        self._process = await asyncio.create_subprocess_exec(
            find_mosquitto(),
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while True:
            try:
                async with asyncio.timeout(0.5):
                    _reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                await writer.wait_closed()
                return self
            except (OSError, TimeoutError):
                if self._process.returncode is not None or loop.time() > deadline:
                    await self.__aexit__(None, None, None)
                    raise RuntimeError(
                        f"mosquitto did not start on {self.host}:{self.port}"
                    ) from None
                await asyncio.sleep(0.05)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(3):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        self._dir.cleanup()

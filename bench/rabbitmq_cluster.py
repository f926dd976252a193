"""A private RabbitMQ cluster with the MQTT plugin on loopback, for the failover test and
bench: N nodes of Debian's rabbitmq-server (distinct node names and ports, their data and logs
in one work directory, a shared Erlang cookie, their own epmd port), clustered with
`rabbitmqctl join_cluster`. Nothing listens beyond 127.0.0.1; nothing of the system's RabbitMQ
(its service, /var/lib/rabbitmq, epmd on 4369) is used or touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
HOST = "127.0.0.1"
BOOT_TIMEOUT = 60.0
# The CLI tools take a distribution port of their own at their node's port + 10000 and up
# (RABBITMQ_CTL_DIST_PORT_MIN): node ports come from below 55000 so that range exists.
PORT_CEILING = 55000


class RabbitMqNotInstalledError(RuntimeError):
    """Debian's rabbitmq-server is missing (scripts/setup installs it)."""


class ClusterError(RuntimeError):
    """A node did not start, join or stop; the message holds its log's tail."""


def installed() -> bool:
    return SERVER.exists() and CTL.exists()


def _free_port() -> int:
    """A free loopback port below PORT_CEILING."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port < PORT_CEILING:
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a narrow ephemeral range
        for port in range(20000 + secrets.randbelow(20000), PORT_CEILING):
            with contextlib.suppress(OSError):
                sock.bind((HOST, port))
                return port
    raise ClusterError("no free loopback port below 55000")


@dataclass
class RabbitNode:
    """One node: `host`/`port` are its MQTT listener (what a client connects to)."""

    name: str  # the Erlang node name, e.g. edgecell-1a2b-0@localhost
    workdir: Path
    port: int
    amqp_port: int
    dist_port: int
    host: str = HOST
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.out"


class RabbitCluster:
    """`with RabbitCluster(workdir, nodes=2) as cluster:` -> cluster.nodes[i].host/.port.

    `stop_app(i)` stops RabbitMQ on node i (its clients are disconnected, the Erlang VM and
    its cluster membership stay; `start_app(i)` brings it back in seconds); `kill(i)` kills
    the node's VM (SIGKILL) and `start(i)` boots it again.
    """

    def __init__(self, workdir: Path, nodes: int = 2) -> None:
        if not installed():
            raise RabbitMqNotInstalledError(
                "rabbitmq-server is not installed: run `bash scripts/setup` as root "
                "(it installs Debian's rabbitmq-server) or `apt-get install rabbitmq-server`"
            )
        self.workdir = workdir
        tag = secrets.token_hex(3)
        self.home = workdir / "home"  # the Erlang cookie lives in $HOME
        self.epmd_port = _free_port()
        self.nodes = [
            RabbitNode(
                name=f"edgecell-{tag}-{i}@localhost",
                workdir=workdir / f"node-{i}",
                port=_free_port(),
                amqp_port=_free_port(),
                dist_port=_free_port(),
            )
            for i in range(nodes)
        ]

    def __enter__(self) -> RabbitCluster:
        try:
            self.start_cluster()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the cluster -----------------------------------------------------------------------

    def start_cluster(self) -> None:
        """Boot every node at once, then join the others to the first."""
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16), encoding="ascii")
            cookie.chmod(0o400)
        for index in range(len(self.nodes)):
            self._spawn(index)
        for index in range(len(self.nodes)):
            self._await_listener(index)
        for index in range(1, len(self.nodes)):
            self.ctl(index, "stop_app")
            self.ctl(index, "join_cluster", self.nodes[0].name)
            self.ctl(index, "start_app")
            self._await_listener(index)

    def running_nodes(self, index: int = 0) -> list[str]:
        """The node names cluster_status of node `index` lists as running."""
        out = self.ctl(index, "cluster_status", "--formatter", "erlang")
        running = out.split("running_nodes")[-1]
        return [node.name for node in self.nodes if node.name in running]

    def stop_app(self, index: int) -> None:
        self.ctl(index, "stop_app")

    def start_app(self, index: int) -> None:
        self.ctl(index, "start_app")
        self._await_listener(index)

    def kill(self, index: int) -> None:
        """SIGKILL the node's VM (and what it started): a node crash, no goodbye to anyone."""
        node = self.nodes[index]
        process, node.process = node.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def start(self, index: int) -> None:
        """Boot a killed node again: it rejoins the cluster it is a member of."""
        self._spawn(index)
        self._await_listener(index)

    def close(self) -> None:
        for index in range(len(self.nodes)):
            self.kill(index)
        # epmd daemonizes out of the nodes' process groups: ask it to stop (it refuses while
        # the killed nodes are still registered, for a moment).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                done = subprocess.run(
                    ["epmd", "-kill"], env=self._env(0), capture_output=True, timeout=10,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                return
            if b"Killed" in done.stdout or b"no running" in done.stdout.lower():
                return
            time.sleep(0.1)

    # --- one node --------------------------------------------------------------------------

    def ctl(self, index: int, *args: str) -> str:
        """rabbitmqctl against node `index`; raises ClusterError with its output on failure."""
        node = self.nodes[index]
        result = subprocess.run(
            [str(CTL), "-n", node.name, *args],
            env=self._env(index),
            capture_output=True,
            timeout=120,
            check=False,
        )
        out = (result.stdout + result.stderr).decode(errors="replace")
        if result.returncode != 0:
            raise ClusterError(f"rabbitmqctl {' '.join(args)} on {node.name}: {out}")
        return out

    def _env(self, index: int) -> dict[str, str]:
        node = self.nodes[index]
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.home),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(node.workdir / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(node.workdir / "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _spawn(self, index: int) -> None:
        node = self.nodes[index]
        node.workdir.mkdir(parents=True, exist_ok=True)
        (node.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n", encoding="ascii")
        (node.workdir / "rabbitmq.conf").write_text(
            f"mqtt.listeners.tcp.default = {HOST}:{node.port}\n"
            "mqtt.allow_anonymous = true\n"
            # guest may connect from loopback only; every client here is on loopback anyway
            "loopback_users = none\n"
            "log.console = false\n",
            encoding="ascii",
        )
        with node.log_path.open("ab") as out:
            node.process = subprocess.Popen(
                [str(SERVER)],
                env=self._env(index),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _await_listener(self, index: int) -> None:
        """Return once the node's MQTT listener accepts connections (the plugin is the last
        thing a boot starts)."""
        node = self.nodes[index]
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(f"{node.name} exited: {self._tail(node)}")
            try:
                with socket.create_connection((node.host, node.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise ClusterError(
            f"{node.name} did not listen within {BOOT_TIMEOUT} s: {self._tail(node)}"
        )

    @staticmethod
    def _tail(node: RabbitNode) -> str:
        try:
            return "\n".join(node.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"

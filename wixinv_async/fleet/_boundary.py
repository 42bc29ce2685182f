"""The fleet's one translation point for redis-py's exceptions, and the one retry a step that
is safe to repeat gets.

A pooled connection dies with its server: after a Redis restart (or a network cut) the next
command on it fails although a new connection would work, and redis-py's clients made from a
URL do not retry. A step that only reads, or whose repetition is harmless (a ``submit`` with
the same event id: the worker's fold drops the second entry; a script that is idempotent by
its arguments), runs once more on a fresh connection; what still fails becomes
:class:`~wixinv_async.errors.FleetUnavailable` (unreachable, connection lost, timed out) or
:class:`~wixinv_async.errors.FleetError` (Redis answered with an error), naming the step and
the server, never the URL's password.

Inside a running worker the steps are repeated until Redis answers (``_config.retry_redis``):
this module is for what a user calls or sees.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from redis.asyncio import connection as redis_connection
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import Applied, FleetError, FleetUnavailable
from ._connect import FleetRedis, redis_password, server_name

__all__ = [
    "REDIS_ERRORS",
    "UNAVAILABLE",
    "answered",
    "fleet_error",
    "redis_call",
    "server_name",
    "unavailable",
]

log = logging.getLogger("wixinv_async.fleet")

UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
"""redis-py's errors for a server that could not be reached or answer in time (its
``BusyLoadingError``, a server still loading its append-only file, is one), and a cluster's
for slots no reachable node serves yet (a node down, ``CLUSTERDOWN``, ``MASTERDOWN``, a slot
not covered) or a slot being moved (``TRYAGAIN``)."""
REDIS_ERRORS = (RedisError, RedisClusterException)
"""Every exception redis-py raises: its cluster client's own (``RedisClusterException``,
e.g. keys of two slots in one command) is not a ``RedisError``."""

_T = TypeVar("_T")
_CONNECTION_CODE = str(Path(redis_connection.__file__))


def unavailable(error: BaseException) -> bool:
    """``error`` says the server could not be reached or answer: one of ``UNAVAILABLE``, or
    a connection closed under a command in redis-py's own connection code.

    redis-py's asyncio connection (8.1.0, plain and cluster) raises ``AttributeError`` or
    ``TypeError`` instead of ``ConnectionError`` when another task's disconnect, or a peer's
    reset, clears the connection's writer while a command is being sent (redis/redis-py#3546,
    #4287; fixed upstream by #4288, not in a release yet). The cluster client disconnects
    every node's connections when a node fails, so a worker's concurrent steps meet this
    whenever a node dies: without this they would end a worker's loops for good.
    """
    if isinstance(error, UNAVAILABLE):
        return True
    if not isinstance(error, AttributeError | TypeError):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return any(frame.filename == _CONNECTION_CODE for frame in frames)


def fleet_error(
    error: Exception, operation: str, redis: FleetRedis, *, applied: Applied
) -> FleetError:
    """``error`` as ours: :class:`FleetUnavailable` for the connection's failures, else
    :class:`FleetError`; the reason keeps redis-py's words without the password."""
    reason = f"{type(error).__name__}: {error}"
    password = redis_password(redis)
    if password:
        reason = reason.replace(password, "***")
    kind = FleetUnavailable if unavailable(error) else FleetError
    return kind(operation, server_name(redis), reason, applied=applied)


async def answered(step: Callable[[], Awaitable[_T]]) -> _T | Exception:
    """``await step()``, or the error when the server could not answer (see
    :func:`unavailable`), for a step tried again later rather than at once; any other error
    propagates."""
    try:
        return await step()
    except Exception as error:
        if not unavailable(error):
            raise
        return error


async def redis_call(
    redis: FleetRedis,
    operation: str,
    step: Callable[[], Awaitable[_T]],
    *,
    repeatable: bool,
    applied: Applied = Applied.NO,
) -> _T:
    """``await step()``, translated. ``repeatable``: the step is safe to run twice, so a
    connection failure gets one more try (on a fresh connection: redis-py drops the one that
    failed). ``applied``: what the error says of a write that failed (see FleetError)."""
    for attempt in (1, 2):
        try:
            return await step()
        except Exception as error:
            lost = unavailable(error)
            if not lost and not isinstance(error, REDIS_ERRORS):
                raise
            if lost and repeatable and attempt == 1:
                log.info("fleet %s: %s; trying once more", operation, type(error).__name__)
                continue
            raise fleet_error(error, operation, redis, applied=applied) from error
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

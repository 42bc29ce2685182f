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
from collections.abc import Awaitable, Callable
from typing import TypeVar

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

__all__ = ["REDIS_ERRORS", "UNAVAILABLE", "fleet_error", "redis_call", "server_name"]

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


def fleet_error(
    error: Exception, operation: str, redis: FleetRedis, *, applied: Applied
) -> FleetError:
    """``error`` as ours: :class:`FleetUnavailable` for the connection's failures, else
    :class:`FleetError`; the reason keeps redis-py's words without the password."""
    reason = f"{type(error).__name__}: {error}"
    password = redis_password(redis)
    if password:
        reason = reason.replace(password, "***")
    kind = FleetUnavailable if isinstance(error, UNAVAILABLE) else FleetError
    return kind(operation, server_name(redis), reason, applied=applied)


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
        except UNAVAILABLE as error:
            if repeatable and attempt == 1:
                log.info("fleet %s: %s; trying once more", operation, type(error).__name__)
                continue
            raise fleet_error(error, operation, redis, applied=applied) from error
        except REDIS_ERRORS as error:
            raise fleet_error(error, operation, redis, applied=applied) from error
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

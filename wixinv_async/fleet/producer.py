"""FleetProducer: hand deltas to Redis, durably, for the fleet's workers to deliver.

``submit`` validates, then ``XADD``s one entry to the site's shard stream and returns once Redis
has acknowledged it (with ``appendfsync always``, once it is on disk). The event id is the
delta's identity: a retry with the same id (after a timeout, a crash, a lost reply) may add a
second stream entry, and the worker's fold drops it, so the delta is applied once. ``outcome``
waits for the event's outcome record (APPLIED, REJECTED, IN_DOUBT or NETTED).

Both are safe to repeat, so a connection that died with its server (a Redis restart) costs
one more try on a fresh connection, not an error; what still fails raises
:class:`~wixinv_async.errors.FleetUnavailable` (``applied`` MAYBE for ``submit``: submit
again with the same event id) or :class:`~wixinv_async.errors.FleetError`, never redis-py's
own exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import redis.asyncio as aioredis

from ..errors import Applied, ConfigurationError, InvalidInputError
from ..settings import is_int
from . import _lua
from ._boundary import redis_call
from ._connect import FleetRedis, connect
from .scripts import text
from .shards import EventStatus, KeySpace, ingest_fields, shard_of

__all__ = [
    "INGEST",
    "EventOutcome",
    "FleetProducer",
    "check_delta",
    "ensure_config",
    "ingest_packed",
]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_AMOUNT = 99_999
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What became of one event: ``status``, the ``batch_id`` that carried it (``""`` when
    NETTED) and Wix's error ``code`` for a rejection (``TAKEOVER`` for a takeover's doubt)."""

    event_id: str
    status: EventStatus
    batch_id: str
    code: str


def check_delta(
    site: str,
    product_id: str,
    variant_id: str,
    delta: int,
    event_id: str,
    location_id: str | None = None,
) -> None:
    """Refuse, by field and value, what the worker could never send (or store unambiguously)."""
    for field, value, limit in (("site", site, 200), ("productId", product_id, 36)):
        if not isinstance(value, str) or not value or len(value) > limit or "\n" in value:
            raise InvalidInputError(field, value, f"must be 1 to {limit} characters, no newline")
    if not isinstance(variant_id, str) or not _GUID.match(variant_id):
        raise InvalidInputError("variantId", variant_id, "must be a GUID")
    if not is_int(delta) or not 0 < abs(delta) <= MAX_AMOUNT:
        raise InvalidInputError("delta", delta, f"must be a nonzero int within +-{MAX_AMOUNT}")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200 or "\x1e" in event_id:
        raise InvalidInputError("event_id", event_id, "must be 1 to 200 characters")
    if location_id is not None and not (isinstance(location_id, str) and _GUID.match(location_id)):
        raise InvalidInputError("locationId", location_id, "must be a GUID (or None)")


INGEST = "ingest"
"""The fleet config field saying how producers write ingest entries: ``packed`` (one field,
:func:`~wixinv_async.fleet.shards.ingest_fields`), set by :meth:`FleetAdmin.pack_ingest`
once every worker reads it; anything else, the separate fields every worker reads."""


async def ingest_packed(redis: FleetRedis, keys: KeySpace) -> bool:
    """Whether the fleet's producers write packed ingest entries."""
    return text(await redis.hget(keys.config, INGEST)) == "packed"


async def ensure_config(redis: FleetRedis, keys: KeySpace) -> None:
    """Record the shard count on first use; refuse a process configured with another one
    (its sites would map to other shards and their deltas never be read)."""
    await redis.hsetnx(keys.config, "shards", keys.shards)
    stored = text(await redis.hget(keys.config, "shards"))
    if stored and int(stored) != keys.shards:
        raise ConfigurationError(
            f"shards={keys.shards}: the fleet under prefix {keys.prefix!r} uses {stored}"
        )


class FleetProducer:
    """Submit deltas to the fleet. ``async with FleetProducer(url) as producer: ...``

    ``redis``: a URL (``cluster=True``: of any node of a Redis Cluster) or a client to use
    (``decode_responses=True``), kept as :attr:`client`."""

    def __init__(
        self,
        redis: str | FleetRedis,
        *,
        prefix: str = "wixfleet",
        shards: int = 1024,
        cluster: bool = False,
    ) -> None:
        self.keys = KeySpace(prefix, shards)
        if isinstance(redis, str):
            self.client: FleetRedis = connect(redis, cluster=cluster)
            self._owned = True
        else:
            self.client, self._owned = redis, False
        self._checked = self._packed = False
        self._lookup = self.client.register_script(_lua.OUTCOME)

    @property
    def redis(self) -> aioredis.Redis:
        """The client of a producer on one server (on a cluster: :attr:`client`)."""
        if not isinstance(self.client, aioredis.Redis):
            raise ConfigurationError("a producer on a Redis Cluster: its client is .client")
        return self.client

    def __repr__(self) -> str:
        return f"FleetProducer(prefix={self.keys.prefix!r}, shards={self.keys.shards})"

    async def __aenter__(self) -> Self:
        await self._check()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

    async def _check(self) -> None:
        if not self._checked:
            await redis_call(
                self.client,
                "config check",
                lambda: ensure_config(self.client, self.keys),
                repeatable=True,
            )
            self._packed = await redis_call(
                self.client,
                "config check",
                lambda: ingest_packed(self.client, self.keys),
                repeatable=True,
            )
            self._checked = True

    async def submit(
        self,
        site: str,
        product_id: str,
        variant_id: str,
        delta: int,
        *,
        event_id: str = "",
        location_id: str | None = None,
    ) -> str:
        """Durably queue ``delta`` (positive: increment, negative: decrement); returns the
        event id (a new UUID when none is given). Resubmitting the same id applies once.
        ``location_id``: the Catalog V3 location (``None``: the site's default location; a
        V1 site has no other, so a delta naming one is REJECTED ``LOCATION_NEEDS_V3``)."""
        event_id = event_id or uuid.uuid4().hex
        check_delta(site, product_id, variant_id, delta, event_id, location_id)
        await self._check()
        stream = self.keys.key(shard_of(site, self.keys.shards), "in")
        fields = ingest_fields(
            site, product_id, variant_id, delta, event_id, location_id, packed=self._packed
        )
        await redis_call(
            self.client,
            "submit",
            lambda: self.client.xadd(stream, fields),  # type: ignore[arg-type]
            repeatable=True,
            applied=Applied.MAYBE,
        )
        return event_id

    async def outcome(self, site: str, event_id: str, *, wait: float = 30.0) -> EventOutcome | None:
        """Wait up to ``wait`` s for the event's outcome; ``None`` if none came in time.
        (Only the last outcome is kept: an IN_DOUBT its sender later settles reads as that.)"""
        shard = shard_of(site, self.keys.shards)
        out, hours, tag = (
            self.keys.key(shard, "out"),
            self.keys.key(shard, "rixb"),
            self.keys.tag(shard),
        )
        lookup = functools.partial(self._lookup, keys=[hours], args=[tag, event_id])
        last: Any = await self._read(lambda: self.client.xrevrange(out, count=1))
        since: str = last[0][0] if last else "0-0"
        deadline = time.monotonic() + wait
        while True:
            stored = text(await self._read(lookup))
            if stored:
                status, batch_id, code = stored.split("|", 2)
                return EventOutcome(event_id, EventStatus(status), batch_id, code)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            block = max(1, int(min(left, 1.0) * 1000))
            read = functools.partial(self.client.xread, {out: since}, block=block, count=1000)
            replies: Any = await self._read(read)
            for _, records in replies:
                since = records[-1][0]
            await asyncio.sleep(0)

    async def _read(self, step: Callable[[], Awaitable[_T]]) -> _T:
        return await redis_call(self.client, "outcome", step, repeatable=True)

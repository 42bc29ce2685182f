"""The reader's wake-up on a Redis Cluster: wait until an owned stream may have an entry after
the last one read, without asking every stream again and again while the fleet is idle.

One XREAD over many shards' streams names keys of many slots (``CROSSSLOT``), so a cluster
worker cannot block on them all at once. Instead, per node of the cluster:

- a **poll** asks each stream on its own: a non-blocking ``XREAD COUNT 1`` after the shard's
  last read id (it consumes nothing), all of the node's in one pipeline, written straight on
  a connection of the worker's own. Not through the cluster client's pipeline: the cluster
  client cannot place XREAD's keys itself (they move with its arguments) and asks the server
  (``COMMAND GETKEYS``, one round trip per XREAD, one after another) before sending anything;
  a stream's key names its slot, so its node is known from the client's slot map.
- a **doorbell**: that connection has ``CLIENT TRACKING ON`` (Redis 6.0; no server setting),
  so the node remembers every stream it polled and, the first time one of them is written
  (an XADD, a trim), sends its name to a second connection of ours subscribed to
  ``__redis__:invalidate``. A stream polled empty is *armed*: it need not be polled again
  until its name rings. An empty poll and the arming are one server step (the read
  registers the key), so an entry added after the poll always rings.

So while the fleet is idle the reader sends almost nothing (each stream once every
``REPOLL_S``), and a new entry wakes its owner at once. What keeps this from missing an
entry: a stream is armed only by a poll on a tracked connection that is still the one the
node tracks for (any error on either connection of a node, or a subscription confirmed
again, disarms every stream of that node and opens both anew); a node's flush rings every
stream of it; a tracked connection with nothing to poll is probed (PING) every ``PROBE_S``,
since a node that dropped it would not say so; and every ``REPOLL_S`` each owned stream is
polled again anyway. A node that refuses tracking (an ACL, a managed server) has its streams
polled every ``UNTRACKED_S`` while none has anything new. A stream whose node answers a poll
with an error (``MOVED`` after a resharding, ``TRYAGAIN``...) is reported as having entries:
its ``read_fold``, routed by the cluster client (which follows the redirection and refreshes
its map), finds out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

__all__ = ["REPOLL_S", "UNTRACKED_S", "ClusterWakeup"]

log = logging.getLogger("wixinv_async.fleet")

CHANNEL = "__redis__:invalidate"
CLOSE_S = 1.0
"""How long closing waits for a doorbell's listener to read its closing message."""
REPOLL_S = 5.0
"""Every owned stream is polled again at least this often, armed or not."""
PROBE_S = 1.0
"""While every stream of a node is armed, its tracked connection is probed this often."""
UNTRACKED_S = 0.1
"""The longest wait between two polls of the streams of a node that refused tracking."""


class _Bell:
    """One node's tracked connection (the polls) and subscribed connection (the rings)."""

    def __init__(self, node: ClusterNode, ring: asyncio.Event) -> None:
        self.node = node
        self.ring = ring
        self.rung: set[str] = set()
        self.flushed = False
        self.broken = False
        self.tracking = True
        self.polled = 0.0  # loop time of the last poll or probe on the tracked connection
        self.tracked: Connection | None = None
        self.listener: asyncio.Task[None] | None = None
        self._subscriber: Connection | None = None
        self._closing = False
        self._wake = f"wixinv:wakeup:{uuid.uuid4().hex}"  # ours alone: close() writes to it

    async def open(self) -> None:
        subscriber, tracked = self._connection(), self._connection()
        try:
            await self._track(subscriber, tracked)
        except ResponseError as error:  # refused (an ACL, a managed server): no doorbell
            log.warning(
                "%s refused client tracking (%s): its streams are polled", self.node.name, error
            )
            self.tracking = False
            await subscriber.disconnect()
        except BaseException:
            await subscriber.disconnect()
            await tracked.disconnect()
            raise
        else:
            self._subscriber = subscriber
            self.listener = asyncio.create_task(self._listen(subscriber))
        self.tracked = tracked

    async def _track(self, subscriber: Connection, tracked: Connection) -> None:
        await subscriber.send_command("CLIENT", "ID")
        client_id = await subscriber.read_response()
        # The parser would hand an invalidation to a handler of the client-side cache and
        # answer None: have it answered as it came.
        parser: Any = subscriber._parser
        parser.set_invalidation_push_handler(_as_is)
        await subscriber.send_command("SUBSCRIBE", CHANNEL, self._wake)
        for _ in range(2):
            await subscriber.read_response(push_request=True)
        await tracked.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id)
        await tracked.read_response()

    def _connection(self) -> Connection:
        # Our own connections, kept out of the node's pool: one is tracked, one subscribed.
        connection: Connection = self.node.connection_class(**self.node.connection_kwargs)
        return connection

    async def _listen(self, subscriber: Connection) -> None:
        # An untimed read: a read cut off by a client-side timeout was seen to leave its task
        # stuck cancelling in redis-py; close() ends it with a message on our own channel.
        try:
            while not self._closing:
                message: Any = await subscriber.read_response(
                    timeout=math.inf, disconnect_on_error=False, push_request=True
                )
                self._heard(message)
        except Exception as error:  # the node or the connection is gone: disarm, reopen later
            log.info("wake-up doorbell of %s lost: %r", self.node.name, error)
            self.broken = True
            self.ring.set()
        finally:
            await subscriber.disconnect(nowait=True)

    def _heard(self, message: list[Any] | None) -> None:
        if message is None:  # a message the parser kept: what it named is unknown
            self.flushed = True
            self.ring.set()
            return
        kind = _text(message[0])
        if kind == "invalidate" or (kind == "message" and _text(message[1]) == CHANNEL):
            keys = message[-1]  # a RESP3 push, a RESP2 subscriber's message
            if keys is None:  # the node was flushed: every stream of it may have changed
                self.flushed = True
            else:
                self.rung.update(_text(k) for k in keys)
        elif kind == "subscribe":  # confirmed again: not the subscription tracking points to
            self.broken = True
        self.ring.set()

    async def poll(self, streams: list[tuple[str, str]]) -> list[bool]:
        assert self.tracked is not None
        tracked = self.tracked
        self.polled = asyncio.get_running_loop().time()
        commands = [("XREAD", "COUNT", 1, "STREAMS", key, last) for key, last in streams]
        try:
            await tracked.send_packed_command(tracked.pack_commands(commands))
            answers = []
            for _ in commands:
                try:
                    reply: Any = await tracked.read_response()
                except ResponseError:
                    reply = True
                answers.append(bool(reply))
        except BaseException:
            self.broken = True  # a reply left unread would answer the next poll
            raise
        return answers

    async def probe(self) -> None:
        """A PING on the tracked connection: a node that dropped it tracks nothing of ours
        any more, and no doorbell would say so."""
        if self.broken or not self.tracking or self.tracked is None:
            return
        self.polled = asyncio.get_running_loop().time()
        try:
            await self.tracked.send_command("PING")
            await self.tracked.read_response()
        except Exception as error:
            log.info("wake-up connection to %s lost: %r", self.node.name, error)
            self.broken = True

    async def close(self) -> None:
        self._closing = True
        listener, subscriber = self.listener, self._subscriber
        if listener is not None and not listener.done():
            if await self._say_closing():
                await asyncio.wait([listener], timeout=CLOSE_S)
            if not listener.done() and subscriber is not None:
                # No message came through: end its read by closing its connection under it.
                await subscriber.disconnect(nowait=True)
                await asyncio.wait([listener], timeout=CLOSE_S)
        if self.tracked is not None:
            await self.tracked.disconnect()

    async def _say_closing(self) -> bool:
        """A message on our own channel, which the listener reads and then sees it closes."""
        if self.tracked is None or self.broken:
            return False
        try:
            await self.tracked.send_command("PUBLISH", self._wake, "close")
            await self.tracked.read_response()
        except Exception:
            return False
        return True


def _settled(results: list[Any]) -> list[Any]:
    """``gather(..., return_exceptions=True)``'s results, or its first exception raised."""
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def _as_is(message: Any) -> Any:
    return message


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterWakeup:
    """Which owned streams of a cluster have entries after their last read id (see the
    module docstring); made per worker, closed when its reader ends."""

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._bells: dict[str, _Bell] = {}
        self._armed: dict[str, tuple[str, str, float]] = {}  # key -> (last id, node, when)
        self._ring = asyncio.Event()
        self._untracked = False  # a node polled last refused tracking: wait UNTRACKED_S

    async def ready(
        self, streams: Sequence[tuple[str, str]], wait: float, stopping: asyncio.Event
    ) -> list[bool]:
        """For each ``(stream key, last id)``: whether it may have an entry after that id.
        When none has, first wait up to ``wait`` seconds for a doorbell (or ``stopping``)."""
        news = await self._check(streams)
        if not any(news):
            await self._probe()
            await self._wait(UNTRACKED_S if self._untracked else wait, stopping)
        return news

    async def _probe(self) -> None:
        now = asyncio.get_running_loop().time()
        stale = [b for b in self._bells.values() if now - b.polled >= PROBE_S]
        await asyncio.gather(*(bell.probe() for bell in stale))

    async def _check(self, streams: Sequence[tuple[str, str]]) -> list[bool]:
        self._ring.clear()  # a ring from here on wakes the next wait
        self._disarm(streams)
        now = asyncio.get_running_loop().time()
        await self._cluster.initialize()  # the slot map (a no-op once known)
        news = [False] * len(streams)
        by_node: dict[str, list[int]] = {}
        for index, (key, last) in enumerate(streams):
            armed = self._armed.get(key)
            if armed is not None and armed[0] == last and now - armed[2] < REPOLL_S:
                continue
            node = self._cluster.get_node_from_key(key)
            if node is None:  # no node serves the slot: let read_fold report it
                news[index] = True
                continue
            by_node.setdefault(node.name, []).append(index)
        if not by_node:
            return news
        bells = _settled(
            await asyncio.gather(*(self._bell(n) for n in by_node), return_exceptions=True)
        )
        # Every node's poll ends before this returns, even when one fails: a poll still
        # running on a connection would meet the next one there.
        answers = _settled(
            await asyncio.gather(
                *(
                    bell.poll([streams[i] for i in at])
                    for bell, at in zip(bells, by_node.values(), strict=True)
                ),
                return_exceptions=True,
            )
        )
        self._untracked = False
        for bell, (name, at), found in zip(bells, by_node.items(), answers, strict=True):
            self._untracked |= not bell.tracking
            for index, new in zip(at, found, strict=True):
                key, last = streams[index]
                news[index] = new
                if new or not bell.tracking:
                    self._armed.pop(key, None)
                else:
                    self._armed[key] = (last, name, now)
        return news

    def _disarm(self, streams: Sequence[tuple[str, str]]) -> None:
        """Forget what rang, what a broken or flushed node armed, and streams not owned."""
        owned = {key for key, _ in streams}
        for name, bell in list(self._bells.items()):
            if bell.broken or bell.flushed:
                self._armed = {k: v for k, v in self._armed.items() if v[1] != name}
                bell.flushed = False
            for key in bell.rung:
                self._armed.pop(key, None)
            bell.rung.clear()
        for key in [k for k in self._armed if k not in owned]:
            del self._armed[key]

    async def _bell(self, name: str) -> _Bell:
        bell = self._bells.get(name)
        if bell is not None and not bell.broken:
            return bell
        if bell is not None:
            await bell.close()
        node = self._cluster.get_node(node_name=name)
        if node is None:  # gone from the slot map since: the next poll places its streams
            raise RedisConnectionError(f"{name} is no longer a node of the cluster")
        bell = _Bell(node, self._ring)
        self._bells[name] = bell
        try:
            await bell.open()
        except BaseException:
            bell.broken = True
            raise
        return bell

    async def _wait(self, wait: float, stopping: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._ring.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()  # an Event's wait, not a read: safe to cancel
            await asyncio.gather(*waiters, return_exceptions=True)

    async def close(self) -> None:
        """End every doorbell and its connections."""
        bells, self._bells = list(self._bells.values()), {}
        for bell in bells:
            with contextlib.suppress(Exception):
                await bell.close()

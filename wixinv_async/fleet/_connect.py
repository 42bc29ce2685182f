"""The fleet's Redis connection: one server, or a Redis Cluster.

A user asks for a cluster explicitly (``cluster=True``, the CLI's ``--cluster``) and gives any
node's ordinary ``redis://`` URL: the cluster client learns the other nodes from it. A flag
rather than a URL scheme of our own (``redis+cluster://``) because redis-py and every other
Redis tool reject such a URL, and rather than asking the server (``INFO cluster``) because the
two clients behave differently (routing, pipelines) and the choice should be visible in the
code or command line that makes it.

What differs on a cluster, and is handled here or where it is used:

- every fleet script declares keys of one shard (one hash tag, one slot), so it runs on the
  node holding that slot, against that node's clock (``TIME`` for GCRA and leases: every key
  of a site's pacing is on one node, so one clock per budget);
- a pipeline of scripts (``read_fold_many``) is split by node by the cluster client; scripts
  are sent as plain ``EVALSHA`` commands and loaded on every primary when a node answers
  ``NOSCRIPT`` (:func:`evalsha_many`);
- an ``XREAD`` over many shards' streams would name keys of many slots (``CROSSSLOT``), so a
  cluster worker polls each owned stream instead of one blocking read;
- the server check (version, ``appendfsync always``) runs on every primary
  (:func:`server_settings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

__all__ = [
    "FleetRedis",
    "connect",
    "evalsha_many",
    "node_of",
    "redis_password",
    "server_name",
    "server_settings",
]

FleetRedis: TypeAlias = aioredis.Redis | RedisCluster
"""What the fleet talks to: one server's client or a cluster's."""

_NO_CAP = 2**31
ScriptCall: TypeAlias = tuple[Sequence[str], Sequence[str | int]]


def connect(url: str, *, cluster: bool = False) -> FleetRedis:
    """A decoding client for ``url``: a cluster client (``url`` names any node) or not."""
    # No cap on connections (per node on a cluster): a worker has a step in flight per owned
    # shard, and redis-py's default cap (100) raises MaxConnectionsError instead of waiting.
    if cluster:
        return RedisCluster.from_url(url, decode_responses=True, max_connections=_NO_CAP)
    return aioredis.Redis.from_url(url, decode_responses=True, max_connections=_NO_CAP)


def server_name(redis: FleetRedis) -> str:
    """``host:port/db`` (``unix:path/db``, ``cluster host:port`` of the seed node) of the
    client's server: never its password."""
    if isinstance(redis, RedisCluster):
        seeds = list(redis.nodes_manager.startup_nodes) or ["?"]
        return f"cluster {seeds[0]}"
    kwargs = redis.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix:{kwargs['path']}/{db}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def redis_password(redis: FleetRedis) -> str | None:
    """The client's password (to keep it out of error messages)."""
    if isinstance(redis, RedisCluster):
        kwargs = redis.connection_kwargs
    else:
        kwargs = redis.connection_pool.connection_kwargs
    password = kwargs.get("password")
    return str(password) if password else None


async def node_of(redis: FleetRedis, key: str) -> str:
    """The server holding ``key`` (``host:port``; on a cluster, the primary of its slot)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()  # the slot map (a no-op once known)
        node = redis.get_node_from_key(key)
        return str(node.name) if node is not None else "(slot not covered)"
    return server_name(redis)


async def server_settings(
    redis: FleetRedis,
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """``(server, INFO server, CONFIG GET append*)`` of the server (with ``INFO cluster``), or
    of every primary of a cluster (``None`` for a CONFIG refused, as on managed servers)."""
    if not isinstance(redis, RedisCluster):
        # INFO cluster too: a cluster node reached by a plain client is refused by name.
        single = {**await redis.info("server"), **await redis.info("cluster")}
        return [(server_name(redis), single, await _config(redis))]
    await redis.initialize()
    found = []
    for node in redis.get_primaries():
        info: dict[str, Any] = await redis.info("server", target_nodes=node)
        found.append((str(node.name), info, await _config(redis, node)))
    return found


async def _config(redis: FleetRedis, node: Any = None) -> dict[str, Any] | None:
    try:
        if node is None:
            raw: Any = await redis.config_get("append*")
        else:
            assert isinstance(redis, RedisCluster)
            raw = await redis.config_get("append*", target_nodes=node)
    except ResponseError:
        return None
    return dict(raw)


async def evalsha_many(
    redis: FleetRedis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Run ``script`` once per ``(keys, args)`` in one pipeline (split by node on a cluster,
    where redis-py refuses a registered script in a pipeline); a reply is the script's result
    or its ``ResponseError``. Servers without the script (a restart, a new node) get it loaded
    and those calls run once more."""
    replies = await _pipelined(redis, script.sha, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await redis.script_load(script.script)  # on a cluster: on every primary
        again = await _pipelined(redis, script.sha, [calls[i] for i in missing])
        for index, reply in zip(missing, again, strict=True):
            replies[index] = reply
    return replies


async def _pipelined(redis: FleetRedis, sha: str, calls: Sequence[ScriptCall]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies

"""The cluster reader's wake-up (wixinv_async.fleet._wakeup) on a real two-node Redis Cluster:
a stream polled empty is reported again when it is written, through its node's doorbell,
also after that doorbell's connection was killed; closing ends every doorbell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster

from wixinv_async.fleet._connect import connect, node_of
from wixinv_async.fleet._redis_cluster import LocalRedisCluster, command
from wixinv_async.fleet._wakeup import REPOLL_S, ClusterWakeup

pytestmark = pytest.mark.slow

STREAMS = [f"{{wake{i}}}:in" for i in range(12)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster(tmp_path_factory.mktemp("wakeup"), nodes=2) as started:
        yield started


@pytest.fixture
async def client(cluster: LocalRedisCluster) -> AsyncIterator[RedisCluster]:
    for port in cluster.ports:
        command(port, "FLUSHALL")
    redis = connect(cluster.url, cluster=True)
    assert isinstance(redis, RedisCluster)
    yield redis
    await redis.aclose()


async def _until_ready(wakeup: ClusterWakeup, streams: list[tuple[str, str]]) -> list[str]:
    """The streams reported, within 3 s: less than REPOLL_S, so only a doorbell reports."""
    assert REPOLL_S > 3
    stopping = asyncio.Event()
    for _ in range(6):
        news = await wakeup.ready(streams, 0.5, stopping)
        if any(news):
            return [key for (key, _), new in zip(streams, news, strict=True) if new]
    return []


async def test_a_stream_written_after_an_empty_poll_is_reported_and_no_other(
    client: RedisCluster,
) -> None:
    assert len({await node_of(client, key) for key in STREAMS}) == 2  # both nodes polled
    wakeup = ClusterWakeup(client)
    try:
        streams = [(key, "0-0") for key in STREAMS]
        assert not any(await wakeup.ready(streams, 0.05, asyncio.Event()))
        entry = await client.xadd(STREAMS[5], {"m": "x"})
        assert await _until_ready(wakeup, streams) == [STREAMS[5]]
        # Caught up (read up to the entry): nothing to report until the next write.
        streams[5] = (STREAMS[5], entry)
        assert not any(await wakeup.ready(streams, 0.05, asyncio.Event()))
        await client.xadd(STREAMS[5], {"m": "y"})
        assert await _until_ready(wakeup, streams) == [STREAMS[5]]
    finally:
        await wakeup.close()


async def test_a_write_after_the_doorbell_connection_was_killed_is_still_reported(
    client: RedisCluster, cluster: LocalRedisCluster
) -> None:
    wakeup = ClusterWakeup(client)
    try:
        streams = [(key, "0-0") for key in STREAMS]
        assert not any(await wakeup.ready(streams, 0.05, asyncio.Event()))
        for port in cluster.ports:  # every subscribed connection: the doorbells
            command(port, "CLIENT", "KILL", "TYPE", "pubsub")
        await asyncio.sleep(0.2)
        await client.xadd(STREAMS[2], {"m": "x"})
        assert await _until_ready(wakeup, streams) == [STREAMS[2]]
    finally:
        await wakeup.close()


async def test_closing_ends_every_doorbell(client: RedisCluster) -> None:
    before = set(asyncio.all_tasks())
    wakeup = ClusterWakeup(client)
    await wakeup.ready([(key, "0-0") for key in STREAMS], 0.05, asyncio.Event())
    assert len(set(asyncio.all_tasks()) - before) == 2  # a listener per node
    await wakeup.close()
    await asyncio.sleep(0)
    assert set(asyncio.all_tasks()) - before == set()


def _tracking_clients(port: int) -> list[str]:
    """The ids of the node's clients with tracking on (flag ``t``)."""
    found = []
    for line in command(port, "CLIENT", "LIST").splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "t" in fields.get("flags", ""):
            found.append(fields["id"])
    return found


async def test_a_write_after_the_tracked_connection_was_killed_is_still_reported(
    client: RedisCluster, cluster: LocalRedisCluster
) -> None:
    """The node forgets what a killed connection tracked and tells no one: the probe finds
    the connection gone, and the streams are polled again."""
    wakeup = ClusterWakeup(client)
    try:
        streams = [(key, "0-0") for key in STREAMS]
        assert not any(await wakeup.ready(streams, 0.05, asyncio.Event()))
        killed = 0
        for port in cluster.ports:
            for client_id in _tracking_clients(port):
                command(port, "CLIENT", "KILL", "ID", client_id)
                killed += 1
        assert killed == 2
        await client.xadd(STREAMS[7], {"m": "x"})
        assert await _until_ready(wakeup, streams) == [STREAMS[7]]
    finally:
        await wakeup.close()

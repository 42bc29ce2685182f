"""The fleet on a real Redis Cluster: three redis-server processes (cluster-enabled,
appendfsync always) joined from Python, worker processes started with ``--cluster``, the
emulator over HTTP. Every shard's keys are in one slot; the shards spread over the nodes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError

from wixinv_async import ApiKeyAuth, Applied, ConfigurationError, FleetError, FleetUnavailable
from wixinv_async.cli import build_parser
from wixinv_async.fleet._boundary import fleet_error, redis_call
from wixinv_async.fleet._connect import node_of
from wixinv_async.fleet._redis_cluster import LocalRedisCluster, command
from wixinv_async.fleet._redis_server import MIN_VERSION
from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, check_server

from .cluster_harness import ClusterFleet, open_cluster_fleet
from .harness import CONDITION_S, PREFIX, SHARDS, settle_and_check

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """Three masters for the module; each test gets them empty."""
    with LocalRedisCluster(tmp_path_factory.mktemp("cluster"), nodes=3) as started:
        yield started


@pytest.fixture
def cluster_url(cluster: LocalRedisCluster) -> str:
    for port in cluster.ports:
        command(port, "FLUSHALL")
    return cluster.url


@pytest.fixture
async def cluster_fleet(cluster_url: str, tmp_path: Path) -> AsyncIterator[ClusterFleet]:
    async with open_cluster_fleet(cluster_url, tmp_path, sites=6) as fleet:
        nodes = {await node_of(fleet.redis, _lease(site)) for site in fleet.emulator.sites}
        assert len(nodes) >= 2, f"every site's shard is on one node: {nodes}"
        yield fleet


def _lease(site: str) -> str:
    return KeySpace(PREFIX, SHARDS).key(shard_of(site, SHARDS), "lease")


def test_the_cluster_is_real_durable_and_covers_every_slot(cluster: LocalRedisCluster) -> None:
    """Three redis-server processes, each appendfsync always, all 16384 slots served: ok."""
    assert len({pid for pid in cluster.pids if pid}) == 3
    for port in cluster.ports:
        info = dict(
            line.split(":", 1) for line in command(port, "CLUSTER", "INFO").splitlines() if line
        )
        assert (info["cluster_state"], info["cluster_slots_assigned"]) == ("ok", "16384")
        with redis.Redis(port=port, decode_responses=True) as node:
            assert node.config_get("append*") | {"appendfilename": ""} == {
                "appendonly": "yes",
                "appendfsync": "always",
                "appendfilename": "",
            }
            assert node.info("server")["process_id"] in cluster.pids
    with pytest.raises(ConfigurationError):
        command(cluster.ports[0], "NO-SUCH-COMMAND")


async def test_server_check_runs_on_every_node(cluster: LocalRedisCluster) -> None:
    """A worker refuses the cluster when one of its masters is not appendfsync always."""
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    weak = cluster.ports[2]
    try:
        version = await check_server(client, allow_weak_fsync=False)
        assert tuple(int(p) for p in version.split(".")) >= MIN_VERSION
        command(weak, "CONFIG", "SET", "appendfsync", "everysec")
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{weak}: .*appendfsync"):
            await check_server(client, allow_weak_fsync=False)
    finally:
        command(weak, "CONFIG", "SET", "appendfsync", "always")
        await client.aclose()


async def test_two_workers_on_a_cluster_deliver_every_delta_once(
    cluster_fleet: ClusterFleet,
) -> None:
    """Two --cluster workers, shards on three nodes: every event settles, the emulator applied
    exactly what was produced per key, nothing in doubt, 0 x 429; status shows the nodes."""
    fleet = cluster_fleet
    fleet.start_worker(worker_id="a")
    fleet.start_worker(worker_id="b")
    await fleet.produce(random.Random(11), 240)
    retried, (key, delta) = next(iter(fleet.produced.items()))
    await fleet.submit(key, delta, event_id=retried)  # a producer retry: the same event id
    outcomes, records = await settle_and_check(fleet)
    assert {o.status for o in outcomes.values()} <= {EventStatus.APPLIED, EventStatus.NETTED}
    produced: Counter[tuple[str, str, str, str]] = Counter()
    for produced_key, produced_delta in fleet.produced.values():  # the retried event once
        produced[produced_key] += produced_delta
    assert _nonzero(fleet.applied_by_emulator()) == _nonzero(produced)
    assert fleet.journal() == records["APPLIED"]

    status = await _every_shard_owned(fleet.url)
    assert set(status["workers"]) == {"a", "b"}
    shards = status["active_shards"]
    assert {s["owner"] for s in shards} <= {"a", "b"}
    assert len({s["node"] for s in shards}) >= 2
    for shard in shards:
        assert shard["node"] == await node_of(
            fleet.redis, KeySpace(PREFIX, SHARDS).key(shard["shard"], "in")
        )


async def test_kill_9_of_a_worker_on_a_cluster_loses_nothing(cluster_fleet: ClusterFleet) -> None:
    """kill -9 one of two --cluster workers mid-run: the survivor takes its shards over on
    their nodes; every event settles, nothing sent twice, per key emulator = APPLIED + doubt."""
    fleet = cluster_fleet
    rng = random.Random(12)
    victim = fleet.start_worker(worker_id="victim")
    fleet.start_worker(worker_id="survivor")
    await fleet.wait_for_workers(2)
    await fleet.produce(rng, 120)
    await fleet.first_outcome()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    await fleet.produce(rng, 120)
    outcomes, records = await settle_and_check(fleet)
    assert outcomes.keys() == fleet.produced.keys()
    assert fleet.journal() - sum(records.values(), Counter()) == Counter()
    await fleet.until_leases("all", "survivor")
    async with FleetAdmin(fleet.url, prefix=PREFIX, shards=SHARDS, cluster=True) as admin:
        doubted = await admin.in_doubt()
    in_doubt = {o.batch_id for o in outcomes.values() if o.status is EventStatus.IN_DOUBT}
    assert {b.batch_id for b in doubted} == in_doubt


async def test_a_worker_without_the_cluster_flag_is_refused(cluster_url: str) -> None:
    """A worker given a cluster node's URL without cluster=True refuses to start, saying so."""
    worker = FleetWorker(cluster_url, ApiKeyAuth("k"), base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="cluster=True"):
        await worker.run()


def _nonzero(counts: Counter[tuple[str, str, str, str]]) -> dict[tuple[str, str, str, str], int]:
    return {key: count for key, count in counts.items() if count}


async def _every_shard_owned(url: str) -> dict[str, Any]:
    """The fleet's status once every shard with work has an owner (or after CONDITION_S): a
    shard one worker gives up to the other has none until the other's next claim."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONDITION_S
    while True:
        status = await asyncio.to_thread(_fleet_status, url)
        if all(s["owner"] for s in status["active_shards"]) or loop.time() > deadline:
            return status
        await asyncio.sleep(0.05)


def _fleet_status(url: str) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(
        [
            "fleet",
            "status",
            "--cluster",
            "--redis",
            url,
            "--prefix",
            PREFIX,
            "--shards",
            str(SHARDS),
        ]
    )
    out = io.StringIO()
    assert args.func(args, out) == 0
    status: dict[str, Any] = json.loads(out.getvalue())
    return status


async def test_cluster_errors_are_translated_at_the_boundary(cluster_url: str) -> None:
    """redis-py's cluster exceptions become ours: a command naming two slots is a FleetError
    naming the cluster; CLUSTERDOWN is FleetUnavailable."""
    client = RedisCluster.from_url(cluster_url, decode_responses=True)
    two_slots: Any = {KeySpace().key(0, "in"): "0-0", KeySpace().key(1, "in"): "0-0"}
    try:
        with pytest.raises(FleetError, match=r"cluster 127\.0\.0\.1") as refused:
            await redis_call(client, "read", lambda: client.xread(two_slots), repeatable=True)
        assert not isinstance(refused.value, FleetUnavailable)
        down = ClusterDownError("CLUSTERDOWN The cluster is down")
        assert isinstance(fleet_error(down, "x", client, applied=Applied.NO), FleetUnavailable)
    finally:
        await client.aclose()


async def test_kill_9_and_restart_of_a_node_mid_run_loses_nothing(
    cluster: LocalRedisCluster, cluster_fleet: ClusterFleet
) -> None:
    """kill -9 of one cluster node (appendfsync always) while two workers deliver, then its
    restart on its port: its shards come back from its append-only file; nothing lost or
    sent twice, per key emulator = APPLIED + some IN_DOUBT, 0 x 429."""
    fleet = cluster_fleet
    rng = random.Random(13)
    fleet.start_worker(worker_id="a")
    fleet.start_worker(worker_id="b")
    await fleet.wait_for_workers(2)
    await fleet.produce(rng, 120)
    await fleet.first_outcome()
    victim = cluster.node(1)
    victim.kill()
    await _until_a_worker_saw_it_down(fleet)
    await asyncio.to_thread(victim.restart)
    await asyncio.to_thread(cluster.wait_ok)
    await fleet.produce(rng, 120)
    outcomes, records = await settle_and_check(fleet)
    assert outcomes.keys() == fleet.produced.keys()
    assert fleet.journal() - sum(records.values(), Counter()) == Counter()


async def _until_a_worker_saw_it_down(fleet: ClusterFleet) -> None:
    """Until a worker's log says a call failed on the dead node (the outage was seen)."""
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        logs = [p.read_text() for p in fleet.logs.glob("worker*.log")]
        if any("redis unavailable" in log for log in logs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker saw the node down: {fleet.log_tail()}")

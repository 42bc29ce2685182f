"""The fleet's pure core: shards, assignment, GCRA, verdicts, bisection."""

from __future__ import annotations

import ast
import inspect
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async import (
    ConnectError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimit,
    RequestTimeoutError,
    ServerError,
)
from wixinv_async.core.ratelimit import max_in_window
from wixinv_async.fleet import shards as core
from wixinv_async.fleet.shards import (
    KeySpace,
    Verdict,
    assign_shards,
    bisect_cap,
    gcra_decide,
    gcra_interval_us,
    shard_of,
    verdict_for,
)

workers_st = st.sets(st.text("abcdef0123456789", min_size=1, max_size=8), min_size=1, max_size=8)


def test_core_imports_nothing_async() -> None:
    """The shard core is sans-IO: no asyncio, redis or aiohttp import."""
    tree = ast.parse(inspect.getsource(core))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {"asyncio", "redis", "aiohttp", "time", "random"} & names


def test_shard_of_is_crc32() -> None:
    """A site's shard is crc32 of its id modulo the shard count (stable across processes)."""
    assert shard_of("site-a", 1024) == zlib.crc32(b"site-a") % 1024
    assert shard_of("x", 7) == shard_of("x", 7)


def test_keys_of_a_shard_share_one_hash_tag() -> None:
    """Every per-shard key starts with the shard's hash tag, so one shard is one cluster slot."""
    keys = KeySpace("p", 16)
    names = [keys.key(3, "in"), keys.site_key(3, "acc", "s{x}"), keys.batch(3, "b1")]
    assert all(name.startswith("{p:3}:") for name in names)


@pytest.mark.parametrize(("prefix", "shards"), [("a:b", 4), ("", 4), ("p", 0), ("p", 20000)])
def test_keyspace_refuses_bad_settings(prefix: str, shards: int) -> None:
    """A prefix with a colon or brace, or a shard count out of range, is refused by name."""
    with pytest.raises(ValueError, match=r"prefix|shards"):
        KeySpace(prefix, shards)


@given(workers_st, st.integers(1, 300))
def test_every_shard_has_exactly_one_owner(workers: set[str], shards: int) -> None:
    """Assignment partitions the shards among the live workers."""
    owned = assign_shards(shards, workers)
    assert set(owned) == workers
    all_owned = [s for mine in owned.values() for s in mine]
    assert sorted(all_owned) == list(range(shards))


@given(workers_st, st.text("ghijk", min_size=1, max_size=4))
def test_join_moves_only_shards_to_the_newcomer(workers: set[str], newcomer: str) -> None:
    """When a worker joins, the only shards that change owner go to it."""
    before = assign_shards(256, workers)
    after = assign_shards(256, workers | {newcomer})
    for worker in workers:
        assert after[worker] <= before[worker]


@given(workers_st.filter(lambda w: len(w) >= 2), st.data())
def test_leave_moves_only_the_leavers_shards(workers: set[str], data: st.DataObject) -> None:
    """When a worker leaves, the others keep all they had."""
    leaver = data.draw(st.sampled_from(sorted(workers)))
    before = assign_shards(256, workers)
    after = assign_shards(256, workers - {leaver})
    for worker in workers - {leaver}:
        assert before[worker] <= after[worker]


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_assignment_is_about_even(count: int) -> None:
    """With 1024 shards each worker gets within 25 % of 1024 / workers."""
    owned = assign_shards(1024, [f"worker-{i}" for i in range(count)])
    fair = 1024 / count
    assert all(abs(len(mine) - fair) <= 0.25 * fair for mine in owned.values())


def test_interval_matches_the_library_rate_limit() -> None:
    """The fleet paces a site like the client does: RateLimit.interval, in microseconds."""
    rate = RateLimit(200, 60)
    assert gcra_interval_us(rate.requests, rate.period, rate.safety) == pytest.approx(
        rate.interval * 1e6, abs=1
    )


@settings(max_examples=200)
@given(
    st.integers(1, 20),
    st.sampled_from([0.5, 1.0, 60.0]),
    st.lists(st.integers(0, 5_000_000), min_size=1, max_size=200),
)
def test_gcra_never_allows_more_than_n_per_rolling_period(
    requests: int, period: float, asks: list[int]
) -> None:
    """Whatever the ask times (any workers, any order on one clock), grants stay <= N per period."""
    interval = gcra_interval_us(requests, period, 0.02)
    tat, granted = 0, []
    for now in sorted(asks):
        decision = gcra_decide(tat, now, interval)
        if decision.allowed:
            granted.append(now / 1e6)
            tat = decision.tat
        else:
            assert decision.wait_us == tat - now > 0
    assert max_in_window(granted, period) <= requests


def test_gcra_allows_when_idle_and_refuses_too_soon() -> None:
    """An idle site sends at once; the next ask before the interval waits the remainder."""
    first = gcra_decide(0, 1_000, 300)
    assert first.allowed and first.tat == 1_300
    second = gcra_decide(first.tat, 1_100, 300)
    assert not second.allowed and second.wait_us == 200


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (None, Verdict.APPLIED),
        (ConnectError("refused"), Verdict.RETURNED),
        (ServerError(503, "unavailable"), Verdict.RETURNED),
        (ServerError(500, "boom"), Verdict.IN_DOUBT),
        (OutcomeUnknownError("reset", request=None), Verdict.IN_DOUBT),
        (TimeoutError(), Verdict.IN_DOUBT),
        (RequestTimeoutError("timed out connecting", sent=False), Verdict.RETURNED),
        (RequestTimeoutError("timed out waiting", sent=True), Verdict.IN_DOUBT),
        (PreconditionFailedError(428, "insufficient"), Verdict.REFUSED),
        (NotFoundError(404, "no such"), Verdict.REFUSED),
    ],
)
def test_verdict_table(error: BaseException | None, verdict: Verdict) -> None:
    """Only provably-unsent failures return deltas; ambiguous ones are in doubt."""
    assert verdict_for(error) is verdict


@given(st.integers(1, 300))
def test_bisection_isolates_one_entry_in_log_steps(entries: int) -> None:
    """Halving after each refusal reaches a single entry in ceil(log2(n)) refusals."""
    cap, steps = entries, 0
    while cap > 1:
        cap = bisect_cap(cap, cap, refused=True)
        steps += 1
    assert steps == (entries - 1).bit_length()
    assert bisect_cap(1, 1, refused=False) == 2
    assert bisect_cap(200, 200, refused=False) == 300

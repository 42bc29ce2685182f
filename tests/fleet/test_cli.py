"""``wixinv-async fleet``: the worker's server checks and settings, ``fleet status`` and
``fleet ingest`` on a real server."""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from wixinv_async import ApiKeyAuth, ConfigurationError, RateLimit
from wixinv_async.cli import EXIT_CONFIG, EXIT_OK, build_parser
from wixinv_async.cli.fleet import _print_tasks, run_status
from wixinv_async.fleet._redis_server import RedisServer
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.shards import KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings, check_server, judge_server

from .helpers import VARIANTS


async def test_worker_refuses_a_server_without_appendfsync_always(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """With appendfsync everysec the worker refuses to start unless told otherwise."""
    server = redis_server_factory(fsync="everysec")
    conn = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="appendfsync always"):
            await check_server(conn, allow_weak_fsync=False)
        assert await check_server(conn, allow_weak_fsync=True) == ".".join(map(str, server.version))
    finally:
        await conn.aclose()


def test_worker_command_exits_2_on_a_weak_server(
    redis_server_factory: Callable[..., RedisServer], capsys: pytest.CaptureFixture[str]
) -> None:
    """``fleet worker`` against an everysec server exits 2 naming the setting."""
    server = redis_server_factory(fsync="everysec")
    args = build_parser().parse_args(
        ["fleet", "worker", "--redis", server.url, "--api-key", "k", "--shards", "4"]
    )
    assert args.func(args) == EXIT_CONFIG
    assert "appendfsync" in capsys.readouterr().err


def test_lease_must_cover_two_requests() -> None:
    """A lease shorter than twice (timeout + margin) is refused by name."""
    with pytest.raises(ConfigurationError, match="lease_ms=1000"):
        WorkerSettings(lease_ms=1000, http_timeout=5.0)


@pytest.mark.parametrize("value", [-1.0, -0.001, math.inf, math.nan, True, "1"])
def test_max_defer_must_be_seconds_at_least_0_and_finite(value: object) -> None:
    """A negative, infinite (a full stream would never deliver), NaN or non-number
    max_defer is refused by name and value; 0 (send at once) and 60 are taken."""
    with pytest.raises(ConfigurationError, match=r"max_defer=.* must be a number of seconds"):
        WorkerSettings(max_defer=value)  # type: ignore[arg-type]
    assert [WorkerSettings(max_defer=s).max_defer for s in (0, 60.0)] == [0, 60.0]


def test_worker_command_passes_max_defer_to_its_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``fleet worker --max-defer -1`` exits 2 naming the setting and the value given."""
    args = build_parser().parse_args(
        ["fleet", "worker", "--redis", "redis://x", "--api-key", "k", "--max-defer", "-1"]
    )
    assert args.func(args) == EXIT_CONFIG
    assert "max_defer=-1.0 must be" in capsys.readouterr().err


def test_status_shows_backlog_per_site(redis_url: str) -> None:
    """``fleet status`` reports the stream entries waiting for a worker, by shard."""

    async def submit() -> None:
        async with FleetProducer(redis_url, prefix="st", shards=4) as producer:
            await producer.submit("site-9", "p1", "00000000-0000-0000-0000-000000000000", 3)

    asyncio.run(submit())
    args = build_parser().parse_args(
        ["fleet", "status", "--redis", redis_url, "--prefix", "st", "--shards", "4"]
    )
    out = io.StringIO()
    assert run_status(args, out) == EXIT_OK
    status = json.loads(out.getvalue())
    assert [s["stream_entries"] for s in status["active_shards"]] == [1]
    assert status["in_doubt_batches"] == 0
    assert status["ingest"] == "fields"


def fleet_command(url: str, *argv: str) -> object:
    """``wixinv-async fleet ARGV --redis URL --prefix ing --shards 4``: its JSON output (exit
    0)."""
    flags = ["--redis", url, "--prefix", "ing", "--shards", "4"]
    args = build_parser().parse_args(["fleet", *argv, *flags])
    out = io.StringIO()
    assert args.func(args, out) == EXIT_OK
    return json.loads(out.getvalue())


def written_as(fields: dict[str, str]) -> tuple[str, str]:
    """An ingest entry's event id and format (``packed``: the one field ``m``)."""
    if list(fields) == ["m"]:
        return fields["m"].split("\x1e")[1], "packed"
    assert "m" not in fields
    return fields["e"], "fields"


async def test_fleet_ingest_shows_and_switches_what_producers_made_after_it_write(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """``fleet ingest`` shows ``fields``; after ``--packed`` a producer made then writes packed
    entries (one made before keeps writing fields until it is made again) and ``fleet status``
    says ``packed``; after ``--fields`` a new producer writes fields again."""
    site, product, variant = "site-9", "p1", VARIANTS[1]

    def producer() -> FleetProducer:
        return FleetProducer(redis_conn, prefix="ing", shards=4)

    before = producer()
    await before.submit(site, product, variant, 1, event_id="before-1")  # records the fleet
    shown = [await asyncio.to_thread(fleet_command, redis_url, "ingest")]
    shown.append(await asyncio.to_thread(fleet_command, redis_url, "ingest", "--packed"))
    shown.append(await asyncio.to_thread(fleet_command, redis_url, "ingest"))
    await producer().submit(site, product, variant, 1, event_id="after-packed")
    await before.submit(site, product, variant, 1, event_id="before-2")
    status = await asyncio.to_thread(fleet_command, redis_url, "status")
    shown.append(await asyncio.to_thread(fleet_command, redis_url, "ingest", "--fields"))
    await producer().submit(site, product, variant, 1, event_id="after-fields")
    stream = KeySpace("ing", 4).key(shard_of(site, 4), "in")
    written = [written_as(fields) for _, fields in await redis_conn.xrange(stream)]
    assert shown == [
        {"prefix": "ing", "ingest": "fields"},
        {"prefix": "ing", "ingest": "packed", "was": "fields"},
        {"prefix": "ing", "ingest": "packed"},
        {"prefix": "ing", "ingest": "fields", "was": "packed"},
    ]
    assert isinstance(status, dict) and status["ingest"] == "packed"
    assert written == [
        ("before-1", "fields"),
        ("after-packed", "packed"),
        ("before-2", "fields"),
        ("after-fields", "fields"),
    ]


@pytest.mark.parametrize(
    ("prefix", "shards", "message"),
    [
        ("ingx", 4, "prefix='ingx': no fleet uses it"),
        ("ing", 8, "shards=8: the fleet under prefix 'ing' uses 4"),
    ],
)
def test_fleet_ingest_refuses_a_prefix_or_shard_count_no_fleet_uses(
    redis_url: str,
    prefix: str,
    shards: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped prefix, or another shard count than the fleet's: ``fleet ingest --packed``
    exits 2 saying which, and producers under that prefix still write fields."""

    async def submit() -> list[str]:
        async with FleetProducer(redis_url, prefix="ing", shards=4) as producer:
            await producer.submit("site-9", "p1", VARIANTS[1], 1, event_id="e1")
            stream = producer.keys.key(shard_of("site-9", 4), "in")
            return [written_as(f)[1] for _, f in await producer.client.xrange(stream)]

    asyncio.run(submit())
    flags = ["--redis", redis_url, "--prefix", prefix, "--shards", str(shards), "--packed"]
    args = build_parser().parse_args(["fleet", "ingest", *flags])
    out = io.StringIO()
    assert args.func(args, out) == EXIT_CONFIG
    assert f"fleet ingest: {message}" in capsys.readouterr().err
    assert out.getvalue() == ""
    assert asyncio.run(submit()) == ["fields", "fields"]
    assert fleet_command(redis_url, "ingest") == {"prefix": "ing", "ingest": "fields"}


@pytest.mark.parametrize(
    "command", [["ingest", "--packed"], ["status"], ["resolve", "b1", "--applied"], ["worker"]]
)
def test_fleet_commands_refuse_a_redis_url_of_no_redis_scheme(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--redis host:6379`` (no scheme): exit 2 saying what a URL must be, without echoing
    it (a URL may hold the password)."""
    credentials = ["--api-key", "k"] if command == ["worker"] else []
    argv = ["fleet", *command, "--redis", "h:secret@host:6379", *credentials]
    args = build_parser().parse_args(argv)
    assert args.func(args, io.StringIO()) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "must be a redis://, rediss:// or unix:// URL" in err
    assert "secret" not in err


def test_fleet_ingest_takes_one_format(capsys: pytest.CaptureFixture[str]) -> None:
    """``--packed`` and ``--fields`` together: a usage error (exit 2) naming both."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["fleet", "ingest", "--packed", "--fields"])
    assert exited.value.code == EXIT_CONFIG
    assert "--fields: not allowed with argument --packed" in capsys.readouterr().err


def test_a_worker_with_another_site_budget_is_refused(redis_url: str) -> None:
    """The first worker records the fleet's pacing; one started with another rate exits 2."""
    asyncio.run(_record_budget(redis_url, RateLimit(200, 60)))
    with pytest.raises(ConfigurationError, match="rate_limit=RateLimit"):
        asyncio.run(_record_budget(redis_url, RateLimit(100, 60)))


async def _record_budget(url: str, rate: RateLimit) -> None:
    settings = WorkerSettings(prefix="bud", shards=4, rate_limit=rate)
    worker = FleetWorker(url, ApiKeyAuth("k"), settings=settings)
    worker.stop()  # run() checks the server and the config, then stops at once
    await worker.run()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--app-id", "a"], "--app-id and --app-secret go together"),
        ([], "--api-key (or --app-id and --app-secret) is required"),
    ],
)
def test_worker_command_names_missing_credentials(
    flags: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fleet worker`` without usable credentials exits 2 saying which are missing."""
    for name in ("WIX_API_KEY", "WIX_APP_ID", "WIX_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["fleet", "worker", "--redis", "redis://x", *flags])
    assert args.func(args) == EXIT_CONFIG
    assert message in capsys.readouterr().err


DURABLE = {"appendonly": "yes", "appendfsync": "always"}


@pytest.mark.parametrize("version", ["6.0.16", "5.0.14", "6.1.9", "", "unstable"])
def test_a_server_older_than_6_2_is_refused_by_its_info_reply(version: str) -> None:
    """INFO's redis_version below 6.2 (or unreadable): refused, even with allow_weak_fsync,
    by a ConfigurationError that says the fleet needs 6.2 and the commands it needs."""
    info = {"redis_version": version} if version else {}
    with pytest.raises(
        ConfigurationError,
        match=r"the fleet needs 6\.2 or later \(XAUTOCLAIM, ZMSCORE, XTRIM MINID\)",
    ):
        judge_server(info, DURABLE, allow_weak_fsync=True)


@pytest.mark.parametrize("version", ["6.2.0", "6.2.14", "7.0.15", "7.2.4", "10.0"])
def test_a_server_of_6_2_or_later_with_appendfsync_always_is_accepted(version: str) -> None:
    """6.2 and later with appendonly yes and appendfsync always pass; the version is returned."""
    assert judge_server({"redis_version": version}, DURABLE, allow_weak_fsync=False) == version


def test_a_server_that_refuses_config_get_is_refused_unless_allowed() -> None:
    """CONFIG disabled (managed Redis): the settings are unknown, so refused unless allowed."""
    info = {"redis_version": "7.0.15"}
    with pytest.raises(ConfigurationError, match="CONFIG GET refused"):
        judge_server(info, None, allow_weak_fsync=False)
    assert judge_server(info, None, allow_weak_fsync=True) == "7.0.15"


async def test_kill_usr2_prints_each_tasks_chain_of_awaits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a stuck worker's task waits on, innermost last (not only its outer frame)."""
    gate = asyncio.Event()

    async def inner_step() -> None:
        await gate.wait()

    async def outer_loop() -> None:
        await inner_step()

    task = asyncio.create_task(outer_loop(), name="stuck-loop")
    await asyncio.sleep(0)
    _print_tasks()
    gate.set()
    await task
    printed = capsys.readouterr().err
    chain = printed[printed.index("task stuck-loop:") :].splitlines()[1:4]
    assert "outer_loop" in chain[0] and "inner_step" in chain[1] and "Event.wait" in chain[2]

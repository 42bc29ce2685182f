"""``wixinv-async fleet``: run a fleet worker, or show the fleet's state.

    wixinv-async fleet worker --redis redis://host:6379/0 --api-key KEY [--shards 1024 ...]
    wixinv-async fleet status --redis redis://host:6379/0 [--shards 1024]
    wixinv-async fleet resolve --redis redis://host:6379/0 BATCH_ID --applied | --not-applied
    wixinv-async fleet ingest --redis redis://host:6379/0 [--packed | --fields]

On a Redis Cluster add ``--cluster`` to each and give any node's URL (``redis://host:7000``).

The worker serves until SIGTERM or Ctrl-C, then stops gracefully: requests in flight finish
and are settled, leases are released (another worker takes the shards at once, nothing in
doubt). Credentials: the app's id and secret (``--app-id`` / ``--app-secret`` or
``WIX_APP_ID`` / ``WIX_APP_SECRET``: a site is an app instance id, each with its own token), or
an account-level API key (``--api-key`` or ``WIX_API_KEY``: ``wix-site-id`` picks each site);
the base URL from ``--base-url`` or ``WIX_BASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import os
import signal
import sys
import types
from typing import TYPE_CHECKING, TextIO

from . import EXIT_CONFIG, EXIT_OK

if TYPE_CHECKING:
    from ..auth import ApiKeyAuth, AppCredentials

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fleet", help="a fleet of worker processes on Redis (worker, status, resolve, ingest)"
    )
    commands = parser.add_subparsers(dest="fleet_command", required=True, metavar="FLEET_COMMAND")
    worker = commands.add_parser("worker", help="own shards and deliver their deltas")
    _common(worker)
    add = worker.add_argument
    add("--base-url", help="API host [WIX_BASE_URL, default https://www.wixapis.com]")
    add("--api-key", help="account-level API key [WIX_API_KEY]; a site is a site id")
    add("--app-id", help="the app's id [WIX_APP_ID]; with --app-secret a site is an instance id")
    add("--app-secret", help="the app's secret [WIX_APP_SECRET]")
    add("--idle-timeout", type=float, default=300.0, help="close idle sites' clients, s [300]")
    add("--rate-limit", default="200/60", help="requests per period per site, fleet-wide [200/60]")
    add("--safety", type=float, default=0.02, help="pacing slack as a fraction [0.02]")
    add("--lease-ms", type=int, default=15_000, help="shard lease [15000]")
    add("--http-timeout", type=float, default=5.0, help="request timeout, s [5]")
    add("--margin", type=float, default=1.0, help="lease time kept beyond the timeout, s [1]")
    add(
        "--max-defer",
        type=float,
        default=1.0,
        help="longest wait for a shard's reader to fold a backlog before sending, s [1]",
    )
    add("--worker-id", help="this worker's id [random]")
    add("--allow-weak-fsync", action="store_true", help="run without appendfsync always")
    worker.set_defaults(func=run_worker)
    status = commands.add_parser("status", help="workers, shard owners, backlog, in-doubt batches")
    _common(status)
    status.set_defaults(func=run_status)
    resolve = commands.add_parser(
        "resolve", help="settle a batch in doubt: its deltas were applied, or were not"
    )
    _common(resolve)
    resolve.add_argument("batch", help="the batch id (fleet status lists the batches in doubt)")
    verdict = resolve.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--applied", dest="applied", action="store_true", default=None)
    verdict.add_argument("--not-applied", dest="applied", action="store_false")
    resolve.set_defaults(func=run_resolve)
    ingest = commands.add_parser(
        "ingest",
        help="show how producers write ingest entries, or switch it (--packed only once every "
        "worker reads packed entries: docs/FLEET.md)",
    )
    _common(ingest)
    form = ingest.add_mutually_exclusive_group()
    form.add_argument(
        "--packed",
        dest="ingest",
        action="store_const",
        const="packed",
        help="producers that connect from now on write one packed field per entry",
    )
    form.add_argument(
        "--fields",
        dest="ingest",
        action="store_const",
        const="fields",
        help="they write separate fields again (every worker version reads them)",
    )
    ingest.set_defaults(func=run_ingest)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", help="Redis URL [WIXINV_REDIS_URL]")
    parser.add_argument(
        "--cluster", action="store_true", help="--redis is a node of a Redis Cluster"
    )
    parser.add_argument("--prefix", default="wixfleet", help="key prefix [wixfleet]")
    parser.add_argument("--shards", type=int, default=1024, help="shard count [1024]")


def _redis_url(args: argparse.Namespace) -> str:
    from ..errors import ConfigurationError

    url = args.redis or os.environ.get("WIXINV_REDIS_URL")
    if not url:
        raise ConfigurationError("--redis (or WIXINV_REDIS_URL) is required")
    if str(url).partition("://")[0] not in ("redis", "rediss", "unix"):
        # Not shown: a URL may hold the password.
        raise ConfigurationError(
            "--redis (or WIXINV_REDIS_URL) must be a redis://, rediss:// or unix:// URL"
        )
    return str(url)


def run_worker(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from .. import ConfigurationError, RateLimit
    from ..emulator.ratelimit import parse_rate
    from ..fleet.worker import FleetWorker, WorkerSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if sys.__stderr__ is not None:  # kill -USR1 PID prints every thread's stack
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__)
    try:
        auth = _auth(args)
        requests, period = parse_rate(args.rate_limit)
        settings = WorkerSettings(
            prefix=args.prefix,
            shards=args.shards,
            rate_limit=RateLimit(requests, period, args.safety),
            lease_ms=args.lease_ms,
            http_timeout=args.http_timeout,
            margin=args.margin,
            allow_weak_fsync=args.allow_weak_fsync,
            idle_timeout=args.idle_timeout,
            max_defer=args.max_defer,
        )
        base_url = args.base_url or os.environ.get("WIX_BASE_URL") or "https://www.wixapis.com"
        worker = FleetWorker(
            _redis_url(args),
            auth,
            base_url=base_url,
            settings=settings,
            worker_id=args.worker_id,
            cluster=args.cluster,
        )
    except (ConfigurationError, ValueError) as error:
        print(f"fleet worker: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_serve(worker, out))


def _auth(args: argparse.Namespace) -> AppCredentials | ApiKeyAuth:
    """The app's credentials when an app id or secret is given, else the account's API key."""
    from .. import ApiKeyAuth, AppCredentials, ConfigurationError

    app_id = args.app_id or os.environ.get("WIX_APP_ID")
    app_secret = args.app_secret or os.environ.get("WIX_APP_SECRET")
    if app_id or app_secret:
        if not (app_id and app_secret):
            raise ConfigurationError("--app-id and --app-secret go together")
        return AppCredentials(app_id, app_secret)
    api_key = args.api_key or os.environ.get("WIX_API_KEY")
    if not api_key:
        raise ConfigurationError("--api-key (or --app-id and --app-secret) is required")
    return ApiKeyAuth(api_key)


async def _serve(worker: object, out: TextIO) -> int:
    from ..errors import ConfigurationError, FleetError
    from ..fleet.worker import FleetWorker

    assert isinstance(worker, FleetWorker)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    loop.add_signal_handler(signal.SIGUSR2, _print_tasks)
    print(f"fleet worker {worker.worker_id} started", file=out, flush=True)
    try:
        await worker.run()
    except (ConfigurationError, FleetError) as error:
        print(f"fleet worker: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"fleet worker {worker.worker_id} stopped after {worker.sent} requests", file=out)
    return EXIT_OK


def _print_tasks() -> None:
    """kill -USR2 PID: every asyncio task and the chain of awaits it is suspended in (the
    innermost last), for a worker that seems stuck."""
    for task in asyncio.all_tasks():
        print(f"task {task.get_name()}:", file=sys.stderr)
        for where in _awaits(task.get_coro()):
            print(f"  {where}", file=sys.stderr)
    sys.stderr.flush()


def _awaits(awaitable: object) -> list[str]:
    chain = []
    while True:
        if isinstance(awaitable, types.CoroutineType):
            frame, awaitable = awaitable.cr_frame, awaitable.cr_await
        elif isinstance(awaitable, types.GeneratorType):
            frame, awaitable = awaitable.gi_frame, awaitable.gi_yieldfrom
        else:
            if awaitable is not None:
                chain.append(repr(awaitable)[:200])
            return chain
        if frame is not None:
            chain.append(
                f"{frame.f_code.co_qualname} at {frame.f_code.co_filename}:{frame.f_lineno}"
            )


def run_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from ..errors import ConfigurationError, FleetError

    try:
        url = _redis_url(args)
        status = asyncio.run(_status(url, args.prefix, args.shards, args.cluster))
    except (ConfigurationError, FleetError) as error:
        print(f"fleet status: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(status, indent=2), file=out)
    return EXIT_OK


async def _status(url: str, prefix: str, shards: int, cluster: bool) -> dict[str, object]:
    from ..fleet._boundary import redis_call
    from ..fleet._connect import connect
    from ..fleet.shards import KeySpace
    from ..fleet.status import fleet_status

    redis = connect(url, cluster=cluster)
    try:
        return await redis_call(
            redis, "status", lambda: fleet_status(redis, KeySpace(prefix, shards)), repeatable=True
        )
    finally:
        await redis.aclose()


def run_resolve(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print ``{"batch", "state", "resolved"}``; exit 2 when the batch is not in doubt."""
    from ..errors import ConfigurationError, FleetError, InvalidInputError

    try:
        url = _redis_url(args)
        resolution = asyncio.run(
            _resolve(url, args.prefix, args.shards, args.batch, args.applied, args.cluster)
        )
    except (ConfigurationError, FleetError, InvalidInputError) as error:
        print(f"fleet resolve: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(resolution), file=out)
    if not resolution["resolved"]:
        print(f"fleet resolve: batch {args.batch} is {resolution['state']}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


async def _resolve(
    url: str, prefix: str, shards: int, batch: str, applied: bool, cluster: bool
) -> dict[str, object]:
    from ..fleet.admin import FleetAdmin

    async with FleetAdmin(url, prefix=prefix, shards=shards, cluster=cluster) as admin:
        done = await admin.resolve(batch, applied=applied)
    return {"batch": done.batch_id, "state": done.state, "resolved": done.resolved}


def run_ingest(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print ``{"prefix", "ingest"}`` (after a switch, with ``"was"``); exit 2 when no fleet
    uses the prefix, or it uses another shard count."""
    from ..errors import ConfigurationError, FleetError

    try:
        url = _redis_url(args)
        shown = asyncio.run(_ingest(url, args.prefix, args.shards, args.cluster, args.ingest))
    except (ConfigurationError, FleetError) as error:
        print(f"fleet ingest: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(shown), file=out)
    return EXIT_OK


async def _ingest(
    url: str, prefix: str, shards: int, cluster: bool, wanted: str | None
) -> dict[str, object]:
    from ..fleet.admin import FleetAdmin

    async with FleetAdmin(url, prefix=prefix, shards=shards, cluster=cluster) as admin:
        await admin.check_fleet()
        was = await admin.ingest_format()
        if wanted is None:
            return {"prefix": prefix, "ingest": was}
        await admin.pack_ingest(wanted == "packed")
    return {"prefix": prefix, "ingest": wanted, "was": was}

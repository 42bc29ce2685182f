"""Instruction counts (valgrind's callgrind) of the hub's client side: repeatable on a loaded
machine, where CPU seconds are not.

Streams (each run in a child process under ``valgrind --tool=callgrind``, the emulator in
another process, outside valgrind, with no rate limit):

- ``budget``: ``bench_hub.py --only budget`` in virtual time. ``--sites`` sites paced at
  ``200/60`` each by the client (the emulator does not limit, so virtual time cannot meet a
  real-time window), each fed ``--rate`` decrements a virtual second over ``--variants``
  variants in 10 ms ticks by bench_hub's lean feeder. The event loop's clock is virtual: when
  nothing is ready and no HTTP exchange is outstanding, it jumps to the next timer, so the run
  is the same on every machine and every load (an exchange takes no virtual time). Reports
  instructions per delta submitted and per variant committed over ``--seconds`` after
  ``--warmup``, and the feeder's own share (the same feeder into a stub, measured apart).
- ``overhead``: ``bench_hub.py --only overhead``'s stream (one site, unpaced, waves of one
  delta per key, each flushed) through the hub and through one InventoryAdjuster over one
  InventoryClient: instructions per committed variant and their ratio (target <= 1.05).

Only the measured phase is counted: the child calls ``os.getppid()`` at its start and end, and
``--dump-before=os_getppid`` cuts the counts there (``callgrind.out.N.2`` is the phase).
``--profile`` runs the budget stream without valgrind under cProfile instead and prints the
cumulative table (the breakdown by component; cProfile inflates small functions' share).
``--opcodes N`` counts the Python bytecodes the measured phase executes (``sys.settrace`` with
opcode events, no valgrind) and prints the total and the N busiest functions, per delta: the
per-delta path's steps by function, where a profiler's timings blur small ones (a step is
not a fixed cost, but on CPython 3.11 most of a delta's instructions are spent in them).

``--catalog v3`` runs the budget stream on Catalog V3 sites (bulk V3 calls) instead of V1 ones.

    .venv/bin/python benchmarks/callgrind_hub.py [--stream budget|overhead] [--sites 10]
                                                 [--catalog v1|v3]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import selectors
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._trace import OpcodeCounter, mark, run_counted, tracing  # noqa: E402
from benchmarks.bench_hub import (  # noqa: E402
    emit,
    emulator,
    feed,
    key_stream,
    overhead_stream,
)
from wixinv_async import AppCredentials, InventoryHub, RateLimit, Ticket  # noqa: E402
from wixinv_async import transport as _transport  # noqa: E402

_OUTSTANDING = [0]
"""HTTP exchanges under way: virtual time stands still while one is."""


def _count_exchanges() -> None:
    """Count the transport's exchanges (one coroutine layer a request: a few hundred
    instructions, a request carrying hundreds of deltas)."""
    real = _transport.AiohttpTransport.handle_request

    async def handle_request(self: Any, request: Any) -> Any:
        _OUTSTANDING[0] += 1
        try:
            return await real(self, request)
        finally:
            _OUTSTANDING[0] -= 1

    _transport.AiohttpTransport.handle_request = handle_request  # type: ignore[method-assign]


class _VirtualSelector:
    """The loop's selector, jumping the virtual clock instead of sleeping when idle."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if _OUTSTANDING[0] or timeout is None:  # an answer is due (or nothing is scheduled)
            events = self._real.select(5.0)
            if events:
                return events
        if timeout is not None:
            self._loop.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[assignment]

    def time(self) -> float:
        return self.now


async def budget_child(emu: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    v3 = args.catalog == "v3"
    keys = emu["keys_v3" if v3 else "keys"]
    stream = key_stream([tuple(k) for k in keys][: args.variants])  # type: ignore[misc]
    sites = emu["v3_instances" if v3 else "instances"][: args.sites]
    loop = asyncio.get_running_loop()
    async with InventoryHub(
        AppCredentials(emu["app_id"], emu["app_secret"]),
        base_url=emu["url"],
        rate_limit=RateLimit(200, 60.0),
        max_pending=args.variants * 2,
    ) as hub:
        if args.feeder_only:

            def stub(site: str, product_id: str, variant_id: str, delta: int) -> None:
                return None

            submit: Callable[[str, str, str, int], object] = stub
        else:
            submit = hub.submit_nowait
        feeder = loop.create_task(feed(submit, sites, stream, args.rate))
        await asyncio.sleep(args.warmup)
        before, t0, cpu0 = hub.stats().total, loop.time(), time.process_time()
        mark()
        await asyncio.sleep(args.seconds)
        mark()
        after, t1, cpu1 = hub.stats().total, loop.time(), time.process_time()
        feeder.cancel()
    ticks = round((t1 - t0) / 0.01)
    return {
        "deltas": round(args.rate * args.sites * (t1 - t0)),
        "ticks": ticks,
        "committed": after.committed - before.committed,
        "requests": after.requests - before.requests,
        "entries_sent": after.entries_sent - before.entries_sent,
        "rate_limited": after.rate_limited,
        "virtual_seconds": round(t1 - t0, 2),
        "cpu_us_per_delta": round((cpu1 - cpu0) / (args.rate * args.sites * (t1 - t0)) * 1e6, 3),
    }


async def overhead_child(emu: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """bench_hub's overhead round, counted by callgrind."""
    keys = [tuple(k) for k in emu["keys"]]
    return await overhead_stream(emu, keys, args.deltas, args.via == "hub", _waves)


async def _waves(
    waves: list[Any],
    submit: Callable[[Any], Ticket],
    flush: Callable[[], Awaitable[None]],
    sent: Callable[[], int],
) -> dict[str, Any]:
    for key in waves[0]:
        submit(key)
    await flush()
    before = sent()
    mark()
    for wave in waves[1:]:
        for key in wave:
            submit(key)
        await flush()
    mark()
    return {"committed": sent() - before, "deltas": sum(map(len, waves[1:]))}


def child(args: argparse.Namespace) -> None:
    emu = json.loads(Path(args.child).read_text())
    _count_exchanges()
    if args.stream == "budget":
        with asyncio.Runner(loop_factory=VirtualLoop) as runner:
            result = runner.run(budget_child(emu, args))
    else:
        result = asyncio.run(overhead_child(emu, args))
    print(json.dumps(result), flush=True)


def counted(emu: Mapping[str, Any], args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """Run the child under callgrind; its report and the measured phase's instructions."""
    keep = f"{args.keep}{''.join(extra).replace('-', '')}" if args.keep else None
    report, instructions = run_counted(__file__, emu, [*_passed(args), *extra], keep, _total)
    report["instructions"] = instructions
    return report


def _passed(args: argparse.Namespace) -> list[str]:
    return [
        f"--stream={args.stream}",
        f"--sites={args.sites}",
        f"--rate={args.rate}",
        f"--variants={args.variants}",
        f"--seconds={args.seconds}",
        f"--warmup={args.warmup}",
        f"--deltas={args.deltas}",
        f"--catalog={args.catalog}",
    ]


def _total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def budget(args: argparse.Namespace) -> None:
    with emulator(args.sites, args.variants // 2 + 50, None, args.catalog) as emu:
        if args.profile:
            return _profiled(emu, args)
        if args.opcodes:
            return _opcodes(emu, args)
        if args.native:  # e.g. under a sampling profiler
            with asyncio.Runner(loop_factory=VirtualLoop) as runner:
                _count_exchanges()
                return print(json.dumps(runner.run(budget_child(emu, args))))
        hub = counted(emu, args)
        feeder = counted(emu, args, "--feeder-only")
    per_delta = hub["instructions"] / hub["deltas"]
    feed = feeder["instructions"] / feeder["deltas"]
    emit(
        bench="callgrind_budget",
        catalog=args.catalog,
        sites=args.sites,
        rate_per_site=args.rate,
        virtual_seconds=hub["virtual_seconds"],
        deltas=hub["deltas"],
        committed=hub["committed"],
        requests=hub["requests"],
        batch_fill=round(hub["entries_sent"] / hub["requests"] / 300, 3),
        rate_limited=hub["rate_limited"],
        instructions_per_delta=round(per_delta),
        instructions_per_committed=round(hub["instructions"] / hub["committed"]),
        feeder_per_delta=round(feed),
        library_per_delta=round(per_delta - feed),
    )
    return None


def _profiled(emu: Mapping[str, Any], args: argparse.Namespace) -> None:
    _count_exchanges()
    profile = cProfile.Profile()
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        profile.enable()
        result = runner.run(budget_child(emu, args))
        profile.disable()
    print(json.dumps(result))
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)


def _opcodes(emu: Mapping[str, Any], args: argparse.Namespace) -> None:
    _count_exchanges()
    with asyncio.Runner(loop_factory=VirtualLoop) as runner, tracing(OpcodeCounter()) as counter:
        result = runner.run(budget_child(emu, args))
    deltas = result["deltas"]
    total = sum(counter.counts.values())
    emit(
        bench="opcodes_budget", sites=args.sites, deltas=deltas, per_delta=round(total / deltas, 1)
    )
    for (file, name, line), count in counter.counts.most_common(args.opcodes):
        print(f"{count / deltas:9.2f}  {Path(file).name}:{line}({name})")


def overhead(args: argparse.Namespace) -> None:
    with emulator(1, 1000, None) as emu:
        plain = counted(emu, args, "--via=plain")
        hub = counted(emu, args, "--via=hub")
    per_plain = plain["instructions"] / plain["committed"]
    per_hub = hub["instructions"] / hub["committed"]
    emit(
        bench="callgrind_overhead",
        deltas=hub["deltas"],
        plain_per_committed=round(per_plain),
        hub_per_committed=round(per_hub),
        hub_over_plain=round(per_hub / per_plain, 3),
        meets_target=per_hub / per_plain <= 1.05,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", choices=["budget", "overhead"], default="budget")
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument(
        "--catalog", choices=["v1", "v3"], default="v1", help="the budget stream's sites' catalog"
    )
    parser.add_argument("--rate", type=float, default=1100.0)
    parser.add_argument("--variants", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="virtual seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="virtual seconds before")
    parser.add_argument("--deltas", type=int, default=20_000, help="overhead stream's deltas")
    parser.add_argument("--profile", type=int, default=0, help="cProfile, print N rows")
    parser.add_argument("--opcodes", type=int, default=0, help="bytecodes a delta, N rows")
    parser.add_argument("--native", action="store_true", help="run once, no valgrind")
    parser.add_argument("--keep", help="copy the measured phase's callgrind file here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the emulator's JSON file
    parser.add_argument("--feeder-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--via", choices=["hub", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    (budget if args.stream == "budget" else overhead)(args)
    return None


if __name__ == "__main__":
    main()

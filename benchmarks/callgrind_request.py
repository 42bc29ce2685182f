"""Client CPU per HTTP request: ``--requests`` 300-entry V1 decrement batches sent with
``InventoryClient.send_batch_body`` (as the adjuster and the hub send them) over one shared
aiohttp session, ``--concurrency`` at a time, to the emulator.

The emulator (``wixinv_async.emulator.Emulator``, one V1 site, no rate limit) runs in
**another process**, outside valgrind, pinned to the other CPU; only the client is counted.
The client is an :class:`~wixinv_async.auth.AppOAuth` installation (a bearer token, as a hub's
site), unpaced (``rate_limit=None``): the run measures the cost of a request, not the budget.
Every batch carries the same pre-encoded body (the body's encoding is not what is measured).

Modes (each counts only the measured phase, after ``--warmup`` requests: token fetched,
connections open):

- default: the child runs under ``valgrind --tool=callgrind --dump-before=os_getppid``;
  prints instructions per request, total and by shared object (``python`` is the interpreter
  running every Python line, ours, aiohttp's and asyncio's alike; ``aiohttp`` its C parser
  and writer; ``multidict``, ``yarl``, ``msgspec`` (JSON), ``libc``, ``kernel/other``).
- ``--opcodes``: Python bytecodes executed per request by package (``wixinv_async``,
  ``aiohttp``, ``asyncio``, ``yarl``, ``multidict``, other), via ``sys.settrace``, no valgrind:
  the split of the interpreter's share between our code and aiohttp's.
- ``--native``: no valgrind; client CPU (``time.process_time()``) in microseconds a request
  (load-affected on a shared machine: prefer the instruction count).

    .venv/bin/python benchmarks/callgrind_request.py [--requests 2000] [--concurrency 4]
    .venv/bin/python benchmarks/callgrind_request.py --opcodes 25
    .venv/bin/python benchmarks/callgrind_request.py --native
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import msgspec  # noqa: E402

from benchmarks._cpus import CLIENT_CPU, pin  # noqa: E402
from benchmarks._trace import OpcodeCounter, mark, run_counted, tracing  # noqa: E402
from benchmarks.bench_hub import emit, emulator  # noqa: E402
from wixinv_async import AppCredentials, DecrementData, InventoryClient  # noqa: E402
from wixinv_async.models import DecrementInventoryRequest  # noqa: E402

ENTRIES = 300


def _body(keys: list[tuple[str, str]]) -> bytes:
    entries = [DecrementData(product_id=p, variant_id=v, decrement_by=1) for p, v in keys]
    assert len(entries) >= ENTRIES, len(entries)
    return msgspec.json.encode(DecrementInventoryRequest(decrement_data=entries[:ENTRIES]))


async def run(emu: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    body = _body([(p, v) for p, v in emu["keys"]])
    auth = AppCredentials(emu["app_id"], emu["app_secret"]).for_instance(emu["instances"][0])
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=100)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        InventoryClient(auth, base_url=emu["url"], session=session, rate_limit=None) as client,
    ):

        async def sender(count: int) -> None:
            for _ in range(count):
                await client.send_batch_body("decrement", body, ENTRIES)

        async def wave(total: int) -> None:
            share, extra = divmod(total, args.concurrency)
            counts = [share + (i < extra) for i in range(args.concurrency)]
            await asyncio.gather(*(sender(n) for n in counts if n))

        await wave(args.warmup)
        cpu0 = time.process_time()
        mark()
        await wave(args.requests)
        mark()
        cpu1 = time.process_time()
    return {"requests": args.requests, "cpu_us_per_request": (cpu1 - cpu0) / args.requests * 1e6}


def child(args: argparse.Namespace) -> None:
    emu = json.loads(Path(args.child).read_text())
    print(json.dumps(asyncio.run(run(emu, args))), flush=True)


_OBJECTS = (
    ("aiohttp", re.compile(r"/aiohttp/")),
    ("multidict", re.compile(r"/multidict/")),
    ("yarl", re.compile(r"/yarl/|/propcache/")),
    ("msgspec", re.compile(r"/msgspec/")),
    ("python", re.compile(r"python3|libpython")),
    ("libc", re.compile(r"libc[.-]|libm[.-]|ld-linux")),
)


def _by_object(path: Path) -> tuple[int, dict[str, int]]:
    """The measured phase's total and its self cost by shared object (callgrind's format:
    ``ob=`` switches the object; the cost line after a ``calls=`` line is a call's inclusive
    cost, counted in the callee)."""
    names: dict[str, str] = {}
    costs: collections.Counter[str] = collections.Counter()
    current, after_call, total = "", False, 0
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            total = int(line.split()[1])
        elif line.startswith(("ob=", "cob=")):  # a name is given once, where first seen
            key, _, rest = line.partition("=")
            ref, _, name = rest.partition(" ")
            if name:
                names[ref] = name
            if key == "ob":
                current = ref
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False
                continue
            parts = line.split()
            if len(parts) >= 2:
                costs[current] += int(parts[1])
    grouped: collections.Counter[str] = collections.Counter()
    for ref, cost in costs.items():
        name = names.get(ref, ref)
        group = next((g for g, pattern in _OBJECTS if pattern.search(name)), "kernel/other")
        grouped[group] += cost
    return total, dict(grouped)


def counted(emu: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    flags = [
        f"--requests={args.requests}",
        f"--warmup={args.warmup}",
        f"--concurrency={args.concurrency}",
    ]
    report, (total, by_object) = run_counted(__file__, emu, flags, args.keep, _by_object)
    per = report["requests"]
    del report["cpu_us_per_request"]  # under valgrind: meaningless
    report["instructions_per_request"] = round(total / per)
    report["by_object"] = {k: round(v / per) for k, v in sorted(by_object.items())}
    return report


_PACKAGES = ("wixinv_async", "aiohttp", "asyncio", "yarl", "multidict")


def _package(filename: str) -> str:
    parts = Path(filename).parts
    return next((p for p in _PACKAGES if p in parts), "other")


def opcodes(emu: Mapping[str, Any], args: argparse.Namespace) -> None:
    with tracing(OpcodeCounter()) as counter:
        result = asyncio.run(run(emu, args))
    per = result["requests"]
    by_package: collections.Counter[str] = collections.Counter()
    for (file, _, _), count in counter.counts.items():
        by_package[_package(file)] += count
    emit(
        bench="opcodes_request",
        requests=per,
        per_request=round(sum(counter.counts.values()) / per, 1),
        by_package={k: round(v / per, 1) for k, v in sorted(by_package.items())},
    )
    for (file, name, line), count in counter.counts.most_common(args.opcodes):
        print(f"{count / per:9.2f}  {_package(file)}/{Path(file).name}:{line}({name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--opcodes", type=int, default=0, help="bytecodes a request, N rows")
    parser.add_argument("--native", action="store_true", help="CPU time, no valgrind")
    parser.add_argument("--keep", help="copy the measured phase's callgrind file here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the emulator's JSON file
    args = parser.parse_args()
    if args.child:
        return child(args)
    with emulator(1, ENTRIES // 2 + 50, None) as emu:
        pin(CLIENT_CPU)
        if args.opcodes:
            return opcodes(emu, args)
        if args.native:
            return emit(bench="cpu_request", **asyncio.run(run(emu, args)))
        report = counted(emu, args)
    emit(bench="callgrind_request", concurrency=args.concurrency, **report)
    return None


if __name__ == "__main__":
    main()

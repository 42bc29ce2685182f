"""Instruction counts (valgrind's callgrind) of the emulator serving 300 sites: repeatable on a
loaded machine, where CPU seconds are not.

The server (``sites300``'s emulator, all V1 or all V3, or the bare handler that only
msgspec-parses the bodies) runs under ``valgrind --tool=callgrind --instr-atstart=no``, so
seeding its 300 sites runs uninstrumented; the load generator runs outside valgrind. After a
warm-up pass (one 300-entry decrement a site), instrumentation is switched on
(``callgrind_control -i on``) and each measured phase (``--per-site`` decrements a site, then
as many increments, round robin over the sites, every answer a 200) is cut out by the server
calling ``os.getppid()`` on ``SIGUSR1`` (``--dump-before=os_getppid``). Prints one JSON line
per server and call: instructions per request and, for the emulator, the ratio to the bare
handler's. ``--annotate N`` prints the N costliest functions (by their own instructions) of each phase.

    .venv/bin/python benchmarks/emulator/callgrind.py [--catalog v1|v3] [--per-site 2]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.emulator.load import fire_sites  # noqa: E402
from benchmarks.emulator.servers import (  # noqa: E402
    SITES,
    emit,
    serve_bare,
    serve_sites,
    site_keys,
)
from benchmarks.emulator.sites import V1_PATHS, V3_PATHS, site_bodies, site_heads, tokens  # noqa: E402

KINDS = ("decrement", "increment")


class _Ready:
    """The child's side of the handshake: the server's details as one JSON line on stdout."""

    def send(self, info: dict[str, Any]) -> None:
        print(json.dumps(info), flush=True)


def serve(server: str, profile: str | None) -> None:
    """The child: serve until SIGTERM; each SIGUSR1 calls ``os.getppid`` (a callgrind dump),
    or with ``profile`` the first starts cProfile and the second writes its stats there."""
    stop = threading.Event()
    cuts = [0]
    profiler = cProfile.Profile()

    def cut() -> None:
        os.getppid()
        cuts[0] += 1
        if profile is not None and cuts[0] == 1:
            profiler.enable()
        elif profile is not None and cuts[0] == 2:
            profiler.disable()
            profiler.dump_stats(profile)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, cut)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if server == "bare":
            await serve_bare(_Ready(), stop, "bare_sites")
        else:
            await serve_sites(_Ready(), stop, server)

    asyncio.run(run())


class _Traced:
    """The server under callgrind, its dumps counted as they land."""

    def __init__(self, server: str, out: Path, profile: bool) -> None:
        self.out = out
        self.profile = out / "profile.pstats" if profile else None
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--dump-before=os_getppid",
            f"--callgrind-out-file={out}/cg.out",
        ]
        command = [*([] if profile else valgrind), sys.executable, str(Path(__file__).resolve())]
        command += ["--serve", server]
        if self.profile is not None:
            command += ["--profile-to", str(self.profile)]
        self.process = subprocess.Popen(  # noqa: S603
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        self.info: dict[str, Any] = json.loads(self.process.stdout.readline())
        self.info["pid"] = self.process.pid
        self.dumps = 0

    def instrument(self) -> None:
        if self.profile is not None:
            return
        subprocess.run(  # noqa: S603
            ["callgrind_control", "-i", "on", str(self.process.pid)],  # noqa: S607
            check=True,
            capture_output=True,
        )

    def cut(self) -> Path:
        """End the phase under way: the server dumps it; returns that dump's file."""
        self.dumps += 1
        path = self.out / f"cg.out.{self.dumps}"
        os.kill(self.process.pid, signal.SIGUSR1)
        if self.profile is not None:
            time.sleep(1.0)
            return path
        while not (path.exists() and b"\ntotals:" in path.read_bytes()):
            time.sleep(0.2)
        return path

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)


def _instructions(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"{path}: no totals")


def _annotate(path: Path, top: int) -> str:
    done = subprocess.run(  # noqa: S603
        ["callgrind_annotate", str(path)],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "file:function" in line)
    return "\n".join(lines[start : start + top + 1])


def measure(
    server: str, catalog: str, per_site: int, annotate: int, profile: int = 0
) -> dict[str, float]:
    """Instructions per request of each call on one server (``profile``: instead, cProfile's
    ``profile`` costliest functions of the decrement phase, by own time, outside valgrind)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        traced = _Traced(server, Path(scratch), bool(profile))
        try:
            info = traced.info
            bare = server == "bare"
            heads = site_heads(["-" * 43] * SITES if bare else asyncio.run(tokens(info)))
            keys = site_keys(catalog)
            paths = V1_PATHS if catalog == "v1" else V3_PATHS
            warm = site_bodies(catalog, "decrement", keys, 1)
            url, pid = info["url"], info["pid"]
            asyncio.run(fire_sites(url, paths["decrement"], heads, warm, 1, 8, None, pid))
            traced.instrument()
            traced.cut()
            for kind in KINDS:
                bodies = site_bodies(catalog, kind, keys, per_site)
                requests, _, _, statuses = asyncio.run(
                    fire_sites(url, paths[kind], heads, bodies, per_site, 8, None, pid)
                )
                dump = traced.cut()
                if traced.profile is not None:
                    stats = pstats.Stats(str(traced.profile))
                    stats.sort_stats("tottime").print_stats(profile)
                    return out
                out[kind] = _instructions(dump) / requests
                label = "bare" if bare else "emulator"
                emit(
                    bench="callgrind_sites300",
                    server=f"{label}/{catalog}/{kind}",
                    requests=requests,
                    instructions_per_request=round(out[kind]),
                    statuses=statuses,
                )
                if annotate:
                    print(_annotate(dump, annotate), flush=True)
        finally:
            traced.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", choices=["v1", "v3"], action="append")
    parser.add_argument("--per-site", type=int, default=2, help="requests a site per call")
    parser.add_argument("--annotate", type=int, default=0, metavar="N")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare handler")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile instead: N functions"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.profile_to)
        return 0
    for catalog in args.catalog or ["v1", "v3"]:
        if args.profile:
            measure(catalog, catalog, args.per_site, 0, args.profile)
            continue
        ours = measure(catalog, catalog, args.per_site, args.annotate)
        if args.no_bare:
            continue
        bare = measure("bare", catalog, args.per_site, 0)
        for kind in KINDS:
            emit(
                bench="callgrind_sites300",
                name=f"{SITES} sites, 300-entry {catalog}/{kind}: emulator / bare instructions",
                ratio=round(ours[kind] / bare[kind], 3),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Raw HTTP/1.1 load generators over asyncio streams: far cheaper than a full client, so the
server, not the load generator, sets the pace."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks.emulator.servers import cpu_seconds

__all__ = ["fire", "fire_sites"]


async def fire(
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    concurrency: int,
    server_pid: int | None = None,
) -> tuple[float, dict[int, int], float | None]:
    """POST every body twice (a warm-up pass, then the measured one) over ``concurrency``
    keep-alive connections; returns the measured pass's seconds, statuses and the CPU
    seconds the server process used meanwhile (``None`` without ``/proc``)."""
    split = urlsplit(url)
    head = "".join(
        f"{k}: {v}\r\n" for k, v in {**headers, "Content-Type": "application/json"}.items()
    )
    requests = [
        (
            f"POST {split.path} HTTP/1.1\r\nHost: {split.netloc}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    statuses: dict[int, int] = {}
    streams = [
        await asyncio.open_connection(split.hostname, split.port) for _ in range(concurrency)
    ]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, todo: Any) -> None:
        for request in todo:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1

    try:
        for measured in (False, True):
            todo = iter(requests)
            statuses.clear()
            cpu = cpu_seconds(server_pid)
            started = time.perf_counter()
            await asyncio.gather(*(worker(r, w, todo) for r, w in streams))
            if measured:
                seconds = time.perf_counter() - started
                after = cpu_seconds(server_pid)
                used = after - cpu if after is not None and cpu is not None else None
                return seconds, statuses, used
    finally:
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
    raise AssertionError("unreachable")


async def fire_sites(
    url: str,
    path: str,
    heads: list[bytes],
    bodies: list[bytes],
    per_site: int,
    concurrency: int,
    rate: float | None,
    pid: int,
) -> tuple[int, float, float, dict[int, int]]:
    """``per_site`` requests to every site, round robin over the sites (site ``n % sites``
    gets body ``n // sites``), over ``concurrency`` keep-alive connections; ``rate``: paced
    at that many a second, else as fast as the server answers. Returns requests, wall
    seconds, the server's CPU seconds meanwhile and the statuses."""
    split = urlsplit(url)
    start = f"POST {path} HTTP/1.1\r\nHost: {split.netloc}\r\n".encode()
    streams = [
        await asyncio.open_connection(split.hostname, split.port) for _ in range(concurrency)
    ]
    total = per_site * len(heads)
    todo = iter(range(total))
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in todo:
            if rate is not None:
                delay = began + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            body = bodies[n // len(heads)]
            writer.write(start + heads[n % len(heads)] + b"Content-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1

    cpu, wall = cpu_seconds(pid), time.perf_counter()
    try:
        await asyncio.gather(*(worker(r, w) for r, w in streams))
    finally:
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
    wall = time.perf_counter() - wall
    used = (cpu_seconds(pid) or 0.0) - (cpu or 0.0)
    return total, wall, used, statuses

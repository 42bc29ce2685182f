"""Answers whose body is lost after the status line: the status decides where it can."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.errors import (
    ConnectionLostError,
    OutcomeUnknownError,
    PreconditionFailedError,
)
from wixinv_async.models import DEFAULT_VARIANT_ID, DecrementData

Serve = Callable[[int, bool], Any]


class CutServer:
    """A raw HTTP server that answers every request with ``status`` and a Content-Length of
    100, sends 2 bytes of body and closes: aiohttp gets the status line, then loses the body.
    With ``answer=False`` it closes without answering at all."""

    def __init__(self) -> None:
        self.requests = 0
        self.status = 200
        self.answer = True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        self.requests += 1
        if self.answer:
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                "Content-Length: 100\r\nx-wix-request-id: cut-1\r\n\r\n{}".encode()
            )
            await writer.drain()
        writer.close()


@pytest.fixture
async def cut() -> AsyncIterator[tuple[CutServer, InventoryClient]]:
    server = CutServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    retry = RetryPolicy(base_delay=0.001, max_delay=0.01, max_attempts=3, seed=1)
    client = InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"),
        base_url=f"http://127.0.0.1:{port}",
        rate_limit=None,
        retry=retry,
    )
    async with listener, client:
        yield server, client


def entries() -> list[DecrementData]:
    return [DecrementData(product_id="p1", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)]


async def test_a_write_answered_2xx_is_applied_though_its_body_is_lost(
    cut: tuple[CutServer, InventoryClient],
) -> None:
    """The 200 arrived: the decrement was applied, not 'maybe applied', and is not resent."""
    server, client = cut
    await client.decrement_inventory(entries())
    assert server.requests == 1


async def test_a_write_refused_is_refused_though_its_body_is_lost(
    cut: tuple[CutServer, InventoryClient],
) -> None:
    """A 428 whose body is lost is still a refusal (nothing applied), with its request id."""
    server, client = cut
    server.status = 428
    with pytest.raises(PreconditionFailedError) as caught:
        await client.decrement_inventory(entries())
    assert caught.value.request_id == "cut-1" and server.requests == 1


async def test_a_write_answered_500_stays_in_doubt(cut: tuple[CutServer, InventoryClient]) -> None:
    """A 500 may have been applied, body or not."""
    server, client = cut
    server.status = 500
    with pytest.raises(OutcomeUnknownError):
        await client.decrement_inventory(entries())
    assert server.requests == 1


async def test_a_write_cut_before_any_answer_stays_in_doubt(
    cut: tuple[CutServer, InventoryClient],
) -> None:
    """No status line: nothing is known, as before."""
    server, client = cut
    server.answer = False
    with pytest.raises(OutcomeUnknownError):
        await client.decrement_inventory(entries())
    assert server.requests == 1


async def test_a_read_needs_its_body_and_is_retried(cut: tuple[CutServer, InventoryClient]) -> None:
    """A query's 200 without its body is useless: retried, then the loss is raised."""
    server, client = cut
    with pytest.raises(ConnectionLostError) as caught:
        await client.query_inventory()
    assert caught.value.status == 200 and server.requests == 3

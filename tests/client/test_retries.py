"""Safe retries through the client: reads retried, ambiguous writes never, 429 waited out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectError,
    ConnectionLostError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from wixinv_async.models import DecrementData
from wixinv_async.transport import VirtualClock

from .conftest import Routes

BASE = "https://www.wixapis.com"
DECREMENT = f"{BASE}/stores/v2/inventoryItems/decrement"
QUERY = f"{BASE}/stores-reader/v2/inventoryItems/query"
Entries = Callable[..., list[DecrementData]]
Sent = Callable[[Routes, str, str], list[Any]]
# What AiohttpTransport raises for aiohttp's failures (its translation: test_transport.py).
READ_TIMEOUT = RequestTimeoutError("timed out waiting for the response", sent=True)
CONNECT_TIMEOUT = RequestTimeoutError("timed out connecting", sent=False)
DISCONNECTED = ConnectionLostError("connection lost (ServerDisconnectedError)")
RESET = ConnectionLostError("connection lost (ClientOSError)")
REFUSED = ConnectError("could not connect (ClientConnectorError)")


async def test_retry_after_is_honoured(
    client: InventoryClient, http: Routes, clock: VirtualClock, decrements: Entries
) -> None:
    """A 429 with Retry-After: 3 waits exactly 3 s, then the batch goes through."""
    http.post(DECREMENT, status=429, headers={"Retry-After": "3"})
    http.post(DECREMENT, payload={})
    await client.decrement_inventory(decrements(2))
    assert clock.slept == [3.0]
    assert client.stats().rate_limited == 1
    assert client.stats().requests_by_endpoint["decrement_inventory"] == 2


async def test_429_without_retry_after_backs_off_exponentially(
    client: InventoryClient, http: Routes, clock: VirtualClock, decrements: Entries
) -> None:
    """Without Retry-After the waits are jittered and bounded by the exponential ceiling."""
    for _ in range(3):
        http.post(DECREMENT, status=429)
    http.post(DECREMENT, payload={})
    await client.decrement_inventory(decrements())
    assert len(clock.slept) == 3
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(clock.slept))  # base 0.5
    assert len(set(clock.slept)) == 3  # jittered
    assert client.stats().retries == 3


async def test_too_long_retry_after_is_raised_not_waited(
    client: InventoryClient, http: Routes, clock: VirtualClock, decrements: Entries
) -> None:
    """A Retry-After beyond max_retry_after raises RateLimitedError carrying it."""
    http.post(DECREMENT, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitedError) as caught:
        await client.decrement_inventory(decrements())
    assert caught.value.retry_after == 3600.0
    assert clock.slept == []


async def test_429s_run_out_and_raise(
    new_client: Callable[..., InventoryClient], http: Routes, decrements: Entries
) -> None:
    """After max_attempts 429s the last RateLimitedError is raised (nothing applied)."""
    http.post(DECREMENT, status=429, headers={"Retry-After": "1"}, repeat=True)
    async with new_client(retry=RetryPolicy(max_attempts=3, seed=1)) as client:
        with pytest.raises(RateLimitedError):
            await client.decrement_inventory(decrements())
        assert client.stats().requests == 3


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_ambiguous_server_errors_on_writes_are_not_retried(
    client: InventoryClient, http: Routes, sent: Sent, decrements: Entries, status: int
) -> None:
    """500/502/504 on a decrement raise OutcomeUnknownError after one request."""
    http.post(DECREMENT, status=status, headers={"x-wix-request-id": "req-9"}, repeat=True)
    entries = decrements(3)
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.decrement_inventory(entries)
    assert len(sent(http, "POST", DECREMENT)) == 1
    request = caught.value.request
    assert (request.method, request.path) == ("POST", "/stores/v2/inventoryItems/decrement")
    assert len(request.json()["decrementData"]) == 3
    assert request.headers == {}
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.__cause__.request_id == "req-9"
    assert client.stats().outcome_unknown == 1


@pytest.mark.parametrize(
    ("raised", "cause"),
    [
        (READ_TIMEOUT, RequestTimeoutError),
        (DISCONNECTED, ConnectionLostError),
        (RESET, ConnectionLostError),
    ],
)
async def test_failures_after_sending_make_writes_unknown(
    client: InventoryClient,
    http: Routes,
    sent: Sent,
    decrements: Entries,
    raised: TransportError,
    cause: type[Exception],
) -> None:
    """A read timeout or reset after sending a decrement is not retried: outcome unknown."""
    http.post(DECREMENT, exception=raised, repeat=True)
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.decrement_inventory(decrements())
    assert isinstance(caught.value.__cause__, cause)
    assert len(sent(http, "POST", DECREMENT)) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503},
        {"status": 429},
        {"exception": CONNECT_TIMEOUT},
        {"exception": REFUSED},
    ],
)
async def test_unsent_write_failures_are_retried(
    client: InventoryClient, http: Routes, sent: Sent, decrements: Entries, failure: Any
) -> None:
    """503, 429, connect timeouts and refusals provably did not apply: the write is retried."""
    http.post(DECREMENT, **failure)
    http.post(DECREMENT, payload={})
    await client.decrement_inventory(decrements())
    bodies = sent(http, "POST", DECREMENT)
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]


async def test_refused_connections_run_out_as_connect_error(
    client: InventoryClient, http: Routes, clock: VirtualClock, decrements: Entries
) -> None:
    """When every attempt is refused, ConnectError says the batch was never sent."""
    http.post(DECREMENT, exception=REFUSED, repeat=True)
    with pytest.raises(ConnectError):
        await client.decrement_inventory(decrements())
    assert len(clock.slept) == 4  # five attempts, four backoffs


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"status": 502},
        {"status": 504},
        {"exception": READ_TIMEOUT},
        {"exception": DISCONNECTED},
    ],
)
async def test_reads_are_retried_on_transient_failures(
    client: InventoryClient, http: Routes, sent: Sent, failure: Any
) -> None:
    """A query survives a 5xx, a read timeout or a dropped connection."""
    http.post(QUERY, **failure)
    http.post(QUERY, payload={"inventoryItems": [{"id": "i1", "numericId": "7"}]})
    page = await client.query_inventory()
    assert page.inventory_items[0].numeric_id == "7"
    assert len(sent(http, "POST", QUERY)) == 2


async def test_read_failures_run_out_as_the_last_error(
    client: InventoryClient, http: Routes
) -> None:
    """A read failing every time raises the last error (a ServerError here)."""
    http.post(QUERY, status=500, repeat=True)
    with pytest.raises(ServerError):
        await client.query_inventory()
    assert client.stats().retries == 4
    assert client.stats().failures == 1


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            428,
            {
                "message": "not enough",
                "details": {"applicationError": {"code": "INSUFFICIENT_INVENTORY", "data": {}}},
            },
            PreconditionFailedError,
            "INSUFFICIENT_INVENTORY",
        ),
        (
            404,
            {"message": "gone", "details": {"applicationError": {"code": "NOT_FOUND"}}},
            NotFoundError,
            "NOT_FOUND",
        ),
        (401, {}, AuthenticationError, None),
    ],
)
async def test_refusals_are_raised_once_with_their_code(
    client: InventoryClient,
    http: Routes,
    sent: Sent,
    decrements: Entries,
    status: int,
    body: Any,
    error: type[Exception],
    code: str | None,
) -> None:
    """4xx refusals raise their ApiError subclass with code and request id, unretried."""
    http.post(DECREMENT, status=status, payload=body, headers={"x-wix-request-id": "r-1"})
    with pytest.raises(error) as caught:
        await client.decrement_inventory(decrements())
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.request_id == "r-1"  # type: ignore[attr-defined]
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert len(sent(http, "POST", DECREMENT)) == 1


async def test_field_violations_are_decoded(
    client: InventoryClient, http: Routes, decrements: Entries
) -> None:
    """A validation error body gives field violations on the BadRequestError."""
    violation = {"field": "decrementData[0].decrementBy", "description": "must be positive"}
    body = {"message": "invalid", "details": {"validationError": {"fieldViolations": [violation]}}}
    http.post(DECREMENT, status=400, payload=body)
    with pytest.raises(BadRequestError) as caught:
        await client.decrement_inventory(decrements())
    assert caught.value.field_violations[0].field == "decrementData[0].decrementBy"
    assert "must be positive" in str(caught.value)


async def test_empty_and_garbled_error_bodies_still_raise_typed_errors(
    client: InventoryClient, http: Routes
) -> None:
    """A 5xx with an HTML body becomes a ServerError, not a decode error."""
    http.post(QUERY, status=502, body=b"<html>bad gateway</html>", repeat=True)
    with pytest.raises(ServerError, match="bad gateway"):
        await client.query_inventory()

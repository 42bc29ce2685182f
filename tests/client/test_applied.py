"""Every error the client raises says whether its request may have been applied; on_wire is
awaited right before each attempt goes on the wire."""

from __future__ import annotations

import pytest

from wixinv_async import Applied, InventoryClient, RetryPolicy
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.errors import (
    ConfigurationError,
    InvalidInputError,
    OutcomeUnknownError,
    RateLimitedError,
    WixInventoryError,
)
from wixinv_async.models import DEFAULT_VARIANT_ID, DecrementData
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

ENTRY = [DecrementData(product_id="p1", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)]


def _client(status: int, events: list[str] | None = None) -> InventoryClient:
    def handler(request: HttpRequest) -> HttpResponse:
        if events is not None:
            events.append("request")
        return HttpResponse.from_json(status, {"message": "no"}, {"Retry-After": "0"})

    return InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"),
        transport=MockTransport(handler),
        retry=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0),
        rate_limit=None,
    )


@pytest.mark.parametrize(
    ("status", "error", "applied"),
    [
        (429, RateLimitedError, Applied.NO),
        (404, WixInventoryError, Applied.NO),
        (500, OutcomeUnknownError, Applied.MAYBE),
    ],
)
async def test_a_failed_write_is_stamped_with_whether_it_was_applied(
    status: int, error: type[Exception], applied: Applied
) -> None:
    """429 (after the retries) and 404 say NO; a 500 on a write is outcome unknown: MAYBE."""
    async with _client(status) as client:
        with pytest.raises(error) as caught:
            await client.decrement_inventory(ENTRY)
    assert isinstance(caught.value, WixInventoryError) and caught.value.applied is applied


async def test_errors_raised_before_sending_say_not_applied() -> None:
    """Bad input and a closed client: nothing was sent."""
    client = _client(200)
    with pytest.raises(InvalidInputError) as bad:
        await client.decrement_inventory([])
    await client.aclose()
    with pytest.raises(ConfigurationError) as closed:
        await client.decrement_inventory(ENTRY)
    assert bad.value.applied is closed.value.applied is Applied.NO


async def test_on_wire_is_awaited_right_before_each_attempt() -> None:
    """A 429 then retried: on_wire ran before each of the two requests, never after."""
    events: list[str] = []

    async def on_wire() -> None:
        events.append("on_wire")

    async with _client(429, events) as client:
        with pytest.raises(RateLimitedError):
            await client.decrement_inventory(ENTRY, on_wire=on_wire)
    assert events == ["on_wire", "request", "on_wire", "request"]


async def test_a_failing_on_wire_sends_nothing() -> None:
    """If on_wire raises, its error propagates and no request is made."""
    events: list[str] = []

    async def on_wire() -> None:
        raise RuntimeError("journal full")

    async with _client(200, events) as client:
        with pytest.raises(RuntimeError, match="journal full"):
            await client.decrement_inventory(ENTRY, on_wire=on_wire)
    assert events == []

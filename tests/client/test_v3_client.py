"""The V3 calls of InventoryClient: checked input, typed errors, safe retries, one budget."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.core.ratelimit import max_in_window
from wixinv_async.errors import (
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    RevisionConflictError,
    TransportError,
)
from wixinv_async.models import DEFAULT_VARIANT_ID, DecrementData
from wixinv_async.models_v3 import (
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    PreorderInfoV3,
    UpdateInventoryItem,
)
from wixinv_async.transport import (
    HttpRequest,
    HttpResponse,
    MockTransport,
    RateLimit,
    VirtualClock,
)

ID = "11111111-1111-1111-1111-111111111111"
OTHER = "55555555-5555-5555-5555-555555555555"
Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


def client_for(handler: Handler, **options: Any) -> tuple[InventoryClient, MockTransport]:
    transport = MockTransport(handler)
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(seed=1))
    options.setdefault("clock", VirtualClock())
    return InventoryClient(ApiKeyAuth("KEY", site_id="SITE"), transport=transport, **options), (
        transport
    )


def never(request: HttpRequest) -> HttpResponse:
    raise AssertionError(f"nothing should be sent, got {request!r}")


def dec(item_id: str = ID, by: Any = 1, **extra: Any) -> DecrementDataById:
    return DecrementDataById(inventory_item_id=item_id, decrement_by=by, **extra)


@pytest.mark.parametrize(
    ("call", "field", "value"),
    [
        (lambda c: c.bulk_decrement_inventory_items([]), "decrementData", 0),
        (lambda c: c.bulk_decrement_inventory_items([dec()] * 301), "decrementData", 301),
        (lambda c: c.bulk_decrement_inventory_items([dec("nope")]), "inventoryItemId", "nope"),
        (lambda c: c.bulk_decrement_inventory_items([dec(by=0)]), "decrementBy", 0),
        (lambda c: c.bulk_decrement_inventory_items([dec(by=100_000)]), "decrementBy", 100_000),
        (lambda c: c.bulk_decrement_inventory_items([dec(by=True)]), "decrementBy", True),
        (
            lambda c: c.bulk_decrement_inventory_items([dec(preorder_request=1)]),
            "preorderRequest",
            1,
        ),
        (
            lambda c: c.bulk_decrement_inventory_items([dec()], reason="REFUND"),
            "reason",
            "REFUND",
        ),
        (
            lambda c: c.bulk_decrement_inventory_items([dec()], restrict_inventory="no"),
            "restrictInventory",
            "no",
        ),
        (
            lambda c: c.bulk_decrement_inventory_items(
                [IncrementDataById(inventory_item_id=ID, increment_by=1)]
            ),
            "decrementData",
            IncrementDataById(inventory_item_id=ID, increment_by=1),
        ),
        (
            lambda c: c.bulk_decrement_inventory_items_by_variant_and_location(
                [DecrementDataByVariantAndLocation(variant_id=ID, location_id="x", decrement_by=1)]
            ),
            "locationId",
            "x",
        ),
        (lambda c: c.get_inventory_item("../x"), "inventoryItemId", "../x"),
        (lambda c: c.update_inventory_item(ID, revision="r4", quantity=1), "revision", "r4"),
        (
            lambda c: c.update_inventory_item(ID, revision="4", quantity=100_000),
            "quantity",
            100_000,
        ),
        (
            lambda c: c.update_inventory_item(ID, revision="4", quantity=1, in_stock=True),
            "quantity",
            1,
        ),
        (
            lambda c: c.update_inventory_item(
                ID, revision="4", preorder_info=PreorderInfoV3(limit=100_001)
            ),
            "preorderInfo.limit",
            100_001,
        ),
        (
            lambda c: c.bulk_update_inventory_items(
                [UpdateInventoryItem(id=ID, revision="x", quantity=1)]
            ),
            "revision",
            "x",
        ),
        (lambda c: c.bulk_update_inventory_items([]), "inventoryItems", 0),
        (lambda c: c.query_inventory_items(limit=1001), "cursorPaging.limit", 1001),
        (lambda c: c.query_inventory_items(limit=0), "cursorPaging.limit", 0),
        (lambda c: c.query_inventory_items(cursor=""), "cursorPaging.cursor", ""),
        (
            lambda c: c.query_inventory_items(cursor="c", filter={"a": 1}),
            "cursorPaging.cursor",
            "c",
        ),
        (lambda c: c.search_inventory_items(filter=[1]), "filter", [1]),
        (lambda c: c.search_inventory_items(sort=[{"fieldName": "a"}] * 11), "sort", 11),
        (
            lambda c: c.search_inventory_items(sort=[{"fieldName": "a", "order": "UP"}]),
            "sort",
            {"fieldName": "a", "order": "UP"},
        ),
        (lambda c: c.set_inventory_quantity(ID, 1, max_attempts=0), "max_attempts", 0),
    ],
)
async def test_bad_input_is_refused_before_sending(
    call: Callable[[InventoryClient], Awaitable[object]], field: str, value: Any
) -> None:
    """Each limit of the typings is checked client-side, naming the field and the value."""
    client, _ = client_for(never)
    async with client:
        with pytest.raises(InvalidInputError) as caught:
            await call(client)
    assert caught.value.field == field and caught.value.value == value


async def test_an_ambiguous_bulk_decrement_is_reported_and_never_resent() -> None:
    """A 500 after sending: OutcomeUnknownError, one request only (no idempotency key)."""
    client, transport = client_for(lambda r: HttpResponse(500, b""))
    async with client:
        with pytest.raises(OutcomeUnknownError):
            await client.bulk_decrement_inventory_items([dec()])
    assert len(transport.requests) == 1


async def test_a_read_is_retried_after_a_transient_failure() -> None:
    """Get Inventory Item after a 502 is simply asked again."""
    answers = [HttpResponse(502, b""), HttpResponse.from_json(200, {"inventoryItem": {"id": ID}})]
    client, transport = client_for(lambda r: answers.pop(0))
    async with client:
        assert (await client.get_inventory_item(ID)).id == ID
    assert len(transport.requests) == 2


async def test_a_503_bulk_write_is_retried_it_never_reached_wix() -> None:
    """503 is provably not processed: resent, and the second answer counts."""
    body = {"results": [{"itemMetadata": {"id": ID, "originalIndex": 0, "success": True}}]}
    answers = [HttpResponse(503, b""), HttpResponse.from_json(200, body)]
    client, transport = client_for(lambda r: answers.pop(0))
    async with client:
        result = await client.bulk_decrement_inventory_items([dec()])
    assert result.all_applied and len(transport.requests) == 2


async def test_a_whole_bulk_refusal_raises_nothing_applied() -> None:
    """A 404 for the whole request is an error, not a result."""
    client, _ = client_for(lambda r: HttpResponse.from_json(404, {"message": "no"}))
    async with client:
        with pytest.raises(NotFoundError):
            await client.bulk_increment_inventory_items(
                [IncrementDataById(inventory_item_id=ID, increment_by=1)]
            )


class Item:
    """A mock item under revisions: each update must send the current one (409 otherwise)."""

    def __init__(self, quantity: int = 10) -> None:
        self.quantity, self.revision = quantity, 1
        self.before_write: Callable[[], None] | None = None

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            return HttpResponse.from_json(200, {"inventoryItem": self.wire()})
        if self.before_write is not None:
            self.before_write()
        sent = request.json()["inventoryItem"]
        if sent["revision"] != str(self.revision):
            return HttpResponse.from_json(
                409,
                {
                    "message": "stale",
                    "details": {"applicationError": {"code": "REVISION_MISMATCH"}},
                },
            )
        self.quantity, self.revision = sent["quantity"], self.revision + 1
        return HttpResponse.from_json(200, {"inventoryItem": self.wire()})

    def wire(self) -> dict[str, Any]:
        return {
            "id": ID,
            "revision": str(self.revision),
            "trackQuantity": True,
            "quantity": self.quantity,
        }


async def test_an_update_with_a_stale_revision_is_a_typed_conflict() -> None:
    """409 to an update: RevisionConflictError naming the item and the revision sent."""
    item = Item()
    client, _ = client_for(item.handle)
    async with client:
        with pytest.raises(RevisionConflictError) as caught:
            await client.update_inventory_item(ID, revision=7, quantity=3)
    assert caught.value.inventory_item_id == ID and caught.value.revision == "7"
    assert caught.value.code == "REVISION_MISMATCH" and item.quantity == 10


async def test_set_inventory_quantity_rereads_after_a_conflict() -> None:
    """Another writer slips in once: the helper reads again and applies on the new value."""
    item = Item(10)
    slipped = []

    def other_writer() -> None:
        if not slipped:
            slipped.append(1)
            item.quantity, item.revision = 4, item.revision + 1

    item.before_write = other_writer
    client, transport = client_for(item.handle)
    async with client:
        result = await client.set_inventory_quantity(ID, lambda read: read.quantity + 5)
    assert item.quantity == 9 and result.quantity == 9
    assert [r.method for r in transport.requests] == ["GET", "PATCH", "GET", "PATCH"]


async def test_set_inventory_quantity_gives_up_after_its_attempts() -> None:
    """A writer that always wins: after max_attempts writes, the last conflict is raised."""
    item = Item()

    def always() -> None:
        item.revision += 1

    item.before_write = always
    client, transport = client_for(item.handle)
    async with client:
        with pytest.raises(RevisionConflictError):
            await client.set_inventory_quantity(ID, 3, max_attempts=3)
    assert [r.method for r in transport.requests].count("PATCH") == 3


async def test_set_inventory_quantity_never_retries_an_ambiguous_write() -> None:
    """A 504 to the write: OutcomeUnknownError at once, no second read or write."""
    item = Item()

    def handle(request: HttpRequest) -> HttpResponse:
        return item.handle(request) if request.method == "GET" else HttpResponse(504, b"")

    client, transport = client_for(handle)
    async with client:
        with pytest.raises(OutcomeUnknownError):
            await client.set_inventory_quantity(ID, 3)
    assert [r.method for r in transport.requests] == ["GET", "PATCH"]


async def test_set_inventory_quantity_skips_a_write_already_done() -> None:
    """A tracked item at the target already: one read, no write."""
    item = Item(3)
    client, transport = client_for(item.handle)
    async with client:
        assert (await client.set_inventory_quantity(ID, 3)).quantity == 3
    assert [r.method for r in transport.requests] == ["GET"]


async def test_a_2xx_update_whose_body_was_lost_still_counts_as_applied() -> None:
    """The item returned carries its id only; no error for a write that landed."""
    client, _ = client_for(lambda r: HttpResponse(200, b""))
    async with client:
        item = await client.update_inventory_item(ID, revision="1", in_stock=False)
    assert item.id == ID and item.revision is msgspec.UNSET


async def test_a_2xx_bulk_write_whose_body_was_lost_is_unknown_per_entry() -> None:
    """Unlike V1, a V3 200 does not mean all applied: without the body every entry is unknown."""
    client, _ = client_for(lambda r: HttpResponse(200, b""))
    async with client:
        result = await client.bulk_decrement_inventory_items([dec(), dec(OTHER)])
    assert [r.status.value for r in result] == ["unknown", "unknown"]


def paged(pages: int, per_page: int) -> Handler:
    """A mock query/search endpoint serving ``pages`` pages by cursor."""

    def handle(request: HttpRequest) -> HttpResponse:
        query = request.url.split(".r=", 1)[1]
        sent = msgspec.json.decode(base64.urlsafe_b64decode(query + "=" * (-len(query) % 4)))
        paging = next(iter(sent.values()))["cursorPaging"]
        page = int(paging.get("cursor", "c0")[1:])
        items = [{"id": f"{page}-{i}"} for i in range(per_page)]
        cursors = {"next": f"c{page + 1}"} if page + 1 < pages else {}
        meta = {"count": per_page, "cursors": cursors, "hasNext": page + 1 < pages}
        return HttpResponse.from_json(200, {"inventoryItems": items, "pagingMetadata": meta})

    return handle


@pytest.mark.parametrize("method", ["query_all_inventory_items", "search_all_inventory_items"])
async def test_the_iterators_walk_every_page_by_cursor(method: str) -> None:
    """Every item of every page, once, in order; later pages send only the cursor."""
    client, transport = client_for(paged(4, 3))
    async with client:
        ids = [item.id async for item in getattr(client, method)(filter={"a": 1}, limit=3)]
    assert ids == [f"{p}-{i}" for p in range(4) for i in range(3)]
    assert len(transport.requests) == 4


async def test_a_cursor_that_never_moves_on_is_an_error() -> None:
    """A server answering the same next cursor forever would loop: TransportError."""
    meta = {"cursors": {"next": "same"}, "hasNext": True}
    client, _ = client_for(lambda r: HttpResponse.from_json(200, {"pagingMetadata": meta}))
    async with client:
        with pytest.raises(TransportError):
            async for _ in client.query_all_inventory_items():
                pass


async def test_v1_and_v3_calls_share_the_sites_429_pause() -> None:
    """A 429 with Retry-After: 10 on a V3 call holds the client's V1 calls too (one budget
    per site)."""
    clock = VirtualClock()
    arrivals: list[tuple[float, str]] = []
    throttled = asyncio.Event()

    async def handle(request: HttpRequest) -> HttpResponse:
        arrivals.append((clock.time(), request.path))
        await asyncio.sleep(0)
        if "/v3/" in request.path and not throttled.is_set():
            throttled.set()
            return HttpResponse(429, b"", {"retry-after": "10"})
        if "/v3/" in request.path:
            return HttpResponse.from_json(200, {"results": []})
        return HttpResponse.from_json(200, {})

    client, _ = client_for(handle, clock=clock)
    v1_entry = DecrementData(product_id="p", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)
    async with client:
        first = asyncio.create_task(client.bulk_decrement_inventory_items([dec()]))
        await throttled.wait()
        await asyncio.sleep(0)  # its 429 reaches the client: the site pauses
        await client.decrement_inventory([v1_entry])
        await first
    v1_at = [t for t, path in arrivals if "/v2/" in path]
    assert v1_at and min(v1_at) >= 10.0
    assert client.stats().rate_limited == 1
    assert client.stats().requests_by_endpoint["bulk_decrement_inventory_items"] == 2


async def test_v1_and_v3_calls_share_one_pacing_budget(virtual_time: Any) -> None:
    """40 V1 and 40 V3 calls of one client under RateLimit(20, 10): at most 20 in any 10 s."""
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    def handle(request: HttpRequest) -> HttpResponse:
        arrivals.append(loop.time())
        return HttpResponse.from_json(200, {"results": []} if "/v3/" in request.path else {})

    client, _ = client_for(handle, rate_limit=RateLimit(20, 10), clock=None)
    v1_entry = DecrementData(product_id="p", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)
    async with client:
        await asyncio.gather(
            *(client.decrement_inventory([v1_entry]) for _ in range(40)),
            *(client.bulk_decrement_inventory_items([dec()]) for _ in range(40)),
        )
    assert len(arrivals) == 80 and max_in_window(arrivals, 10.0) <= 20


async def test_validate_false_checks_only_the_batch_size() -> None:
    """``validate=False`` sends the entries as given (the adjuster checked them at submit);
    an empty batch is still refused before sending."""
    transport = MockTransport(lambda request: HttpResponse.from_json(200, {"results": []}))
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        odd = [DecrementDataByVariantAndLocation(variant_id="not-a-guid", decrement_by=1)]
        with pytest.raises(InvalidInputError):
            await client.bulk_decrement_inventory_items_by_variant_and_location(odd)
        assert transport.requests == []
        result = await client.bulk_decrement_inventory_items_by_variant_and_location(
            odd, validate=False
        )
        with pytest.raises(InvalidInputError):
            await client.bulk_decrement_inventory_items_by_variant_and_location([], validate=False)
    assert [r.status.value for r in result] == ["unknown"]
    assert transport.requests[0].json()["decrementData"] == [
        {"variantId": "not-a-guid", "decrementBy": 1}
    ]

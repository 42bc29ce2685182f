"""Client-side validation: bad input raises InvalidInputError and sends nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.core import validation
from wixinv_async.errors import (
    ConfigurationError,
    InvalidInputError,
    OffsetLimitError,
    TransportError,
)
from wixinv_async.models import DEFAULT_VARIANT_ID as V0
from wixinv_async.models import DecrementData, IncrementData, VariantUpdate
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

Call = Callable[[InventoryClient], Awaitable[object]]
GOOD = {"product_id": "p1", "variant_id": V0}


def dec(**fields: Any) -> DecrementData:
    return DecrementData(**{**GOOD, "decrement_by": 1, **fields})


def inc(**fields: Any) -> IncrementData:
    return IncrementData(**{**GOOD, "increment_by": 1, **fields})


def item_answer(track: bool | None) -> Callable[[HttpRequest], HttpResponse]:
    """A Wix that answers getVariants with an item tracked or not, and {} otherwise."""

    def handle(request: HttpRequest) -> HttpResponse:
        if request.path.endswith("/getVariants"):
            item: dict[str, Any] = {"id": "i1", "productId": "p1", "variants": []}
            if track is not None:
                item["trackQuantity"] = track
            return HttpResponse.from_json(200, {"inventoryItem": item})
        return HttpResponse.from_json(200, {})

    return handle


async def run(
    call: Call, handler: Callable[[HttpRequest], HttpResponse] | None = None
) -> MockTransport:
    transport = MockTransport(handler or item_answer(True))
    async with InventoryClient(
        ApiKeyAuth("K", site_id="S"), transport=transport, rate_limit=None
    ) as c:
        await call(c)
    return transport


BAD_BATCHES: list[tuple[str, Call, int | None, str, object]] = [
    ("empty", lambda c: c.decrement_inventory([]), None, "decrementData", 0),
    ("301 entries", lambda c: c.increment_inventory([inc()] * 301), None, "incrementData", 301),
    (
        "zero amount",
        lambda c: c.decrement_inventory([dec(), dec(decrement_by=0)]),
        1,
        "decrementBy",
        0,
    ),
    (
        "huge amount",
        lambda c: c.increment_inventory([inc(increment_by=100_000)]),
        0,
        "incrementBy",
        100_000,
    ),
    (
        "bool amount",
        lambda c: c.increment_inventory([inc(increment_by=True)]),
        0,
        "incrementBy",
        True,
    ),
    (
        "long id",
        lambda c: c.decrement_inventory([dec(product_id="x" * 37)]),
        0,
        "productId",
        "x" * 37,
    ),
    (
        "long inventory id",
        lambda c: c.decrement_inventory([dec(product_id=UNSET, inventory_id="y" * 37)]),
        0,
        "inventoryId",
        "y" * 37,
    ),
    (
        "bad variant",
        lambda c: c.decrement_inventory([dec(), dec(), dec(variant_id="v1")]),
        2,
        "variantId",
        "v1",
    ),
    ("both ids", lambda c: c.decrement_inventory([dec(inventory_id="i1")]), 0, "productId", "p1"),
    ("wrong entry type", lambda c: c.decrement_inventory([inc()]), 0, "decrementData", inc()),  # type: ignore[list-item]
    (
        "preorder not bool",
        lambda c: c.decrement_inventory([dec(preorder_request="yes")]),
        0,
        "preorderRequest",
        "yes",
    ),
    ("page limit", lambda c: c.query_inventory(limit=101), None, "paging.limit", 101),
    ("negative offset", lambda c: c.query_inventory(offset=-1), None, "paging.offset", -1),
    ("filter not a dict", lambda c: c.query_inventory(filter="{}"), None, "query.filter", "{}"),  # type: ignore[arg-type]
    (
        "variant ids",
        lambda c: c.get_inventory_variants(inventory_id="i1", variant_ids=[V0, "nope"]),
        1,
        "variantIds",
        "nope",
    ),
    (
        "two ids",
        lambda c: c.get_inventory_variants(inventory_id="i1", product_id="p1"),
        None,
        "inventoryId",
        "i1",
    ),
    (
        "no track",
        lambda c: c.update_inventory_variants("p1", [], track_quantity=None),
        None,
        "trackQuantity",
        None,
    ),  # type: ignore[arg-type]
    (
        "bad quantity",
        lambda c: c.update_inventory_variants(
            "p1", [VariantUpdate(variant_id=V0, quantity=-1)], track_quantity=True
        ),
        0,
        "quantity",
        -1,
    ),
]


@pytest.mark.parametrize(
    ("call", "index", "field", "value"),
    [case[1:] for case in BAD_BATCHES],
    ids=[case[0] for case in BAD_BATCHES],
)
async def test_bad_input_is_refused_before_sending(
    call: Call, index: int | None, field: str, value: object
) -> None:
    """The error names entry index, field and value, and no request leaves."""
    transport = MockTransport(item_answer(True))
    async with InventoryClient(
        ApiKeyAuth("K", site_id="S"), transport=transport, rate_limit=None
    ) as c:
        with pytest.raises(InvalidInputError) as caught:
            await call(c)
    assert (caught.value.index, caught.value.field, caught.value.value) == (index, field, value)
    assert isinstance(caught.value, ValueError)
    assert transport.requests == []


async def test_validate_false_sends_prechecked_entries_unchecked() -> None:
    """validate=False trusts the caller's entries: even one the check would refuse is sent."""
    transport = await run(lambda c: c.decrement_inventory([dec(decrement_by=0)], validate=False))
    assert transport.requests[0].json()["decrementData"][0]["decrementBy"] == 0


@pytest.mark.parametrize("size", [0, 301])
async def test_validate_false_still_checks_the_batch_size(size: int) -> None:
    """Even unvalidated, a batch holds 1 to 300 entries."""
    with pytest.raises(InvalidInputError, match="incrementData"):
        await run(lambda c: c.increment_inventory([inc()] * size, validate=False))


@pytest.mark.parametrize(("offset", "limit"), [(10_000, 1), (9_950, 100), (9_999, 2)])
async def test_offsets_past_10000_point_to_the_crawler(offset: int, limit: int) -> None:
    """A page reaching past Wix's 10,000 items raises OffsetLimitError before sending."""
    with pytest.raises(OffsetLimitError, match="crawl"):
        await run(lambda c: c.query_inventory(offset=offset, limit=limit))


async def test_the_last_page_within_10000_is_sent() -> None:
    """offset + limit = 10,000 is the last page offset paging may ask for."""
    transport = await run(lambda c: c.query_inventory(offset=9_900, limit=100))
    assert len(transport.requests) == 1


async def test_a_full_batch_of_300_is_accepted() -> None:
    """300 entries, the most Wix takes, go out in one request."""
    transport = await run(
        lambda c: c.decrement_inventory([dec(product_id=f"p{i}") for i in range(300)])
    )
    assert len(transport.requests[0].json()["decrementData"]) == 300


@pytest.mark.parametrize("track", [True, False])
async def test_keep_reads_tracking_first_and_sends_it(track: bool) -> None:
    """track_quantity="keep" reads the item, then sends its trackQuantity explicitly."""
    update = [VariantUpdate(variant_id=V0, quantity=3)]
    transport = await run(
        lambda c: c.update_inventory_variants("p1", update, track_quantity="keep"),
        item_answer(track),
    )
    read, write = transport.requests
    assert read.json() == {"productId": "p1"}
    assert read.path == "/stores-reader/v2/inventoryItems/p1/getVariants"
    assert write.method == "PATCH"
    assert write.json()["inventoryItem"]["trackQuantity"] is track


async def test_keep_refuses_to_guess_when_wix_omits_tracking() -> None:
    """If the item read back lacks trackQuantity, nothing is written."""
    transport = MockTransport(item_answer(None))
    async with InventoryClient(
        ApiKeyAuth("K", site_id="S"), transport=transport, rate_limit=None
    ) as c:
        with pytest.raises(TransportError, match="trackQuantity"):
            await c.update_inventory_variants("p1", [], track_quantity="keep")
    assert [r.method for r in transport.requests] == ["POST"]


async def test_closed_client_refuses_calls() -> None:
    """A call after aclose fails clearly instead of reopening a session."""
    transport = MockTransport(item_answer(True))
    client = InventoryClient(ApiKeyAuth("K", site_id="S"), transport=transport)
    await client.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await client.query_inventory()


async def test_a_batch_mixing_product_and_inventory_ids_is_accepted() -> None:
    """Entries may name items either way within one batch."""
    batch = [dec(), dec(product_id=UNSET, inventory_id="i1")]
    transport = await run(lambda c: c.decrement_inventory(batch))
    assert [sorted(e) for e in transport.requests[0].json()["decrementData"]] == [
        ["decrementBy", "preorderRequest", "productId", "variantId"],
        ["decrementBy", "inventoryId", "preorderRequest", "variantId"],
    ]


_ids = st.one_of(st.just(UNSET), st.text(max_size=40), st.just("p" * 36), st.integers(), st.none())
_variants = st.one_of(
    st.sampled_from([V0, "5e6f7a8b-0000-4000-8000-00000000abcd", "not-a-guid", V0.upper()]),
    st.integers(),
)
_amounts = st.one_of(st.integers(-2, 100_001), st.booleans(), st.floats(0, 10))
_entries = st.builds(
    DecrementData,
    product_id=_ids,
    inventory_id=_ids,
    variant_id=_variants,
    decrement_by=_amounts,
    preorder_request=st.one_of(st.booleans(), st.integers(0, 1)),
)


def _verdict(check: Callable[[], None]) -> tuple[int | None, str] | None:
    try:
        check()
    except InvalidInputError as exc:
        return (exc.index, exc.field)
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(_entries, min_size=1, max_size=12))
def test_the_fast_path_agrees_with_entry_by_entry_checks(entries: list[DecrementData]) -> None:
    """Whatever the batch, the batch-wide fast path and the per-entry checks agree."""

    def fast() -> None:
        validation.check_entries("decrementData", entries, DecrementData, "decrementBy")

    def slow() -> None:
        for index, entry in enumerate(entries):
            validation.check_entry(entry, index, "decrementBy")

    assert _verdict(fast) == _verdict(slow)


_GUIDS = [V0, "5e6f7a8b-0000-4000-8000-00000000abcd", "ABCDEF01-2345-6789-abcd-ef0123456789"]
_guid_like = st.one_of(
    st.sampled_from(_GUIDS),
    st.sampled_from(_GUIDS).map(lambda g: g[:-1]),  # 35 characters
    st.sampled_from(_GUIDS).map(lambda g: g + "0"),
    st.sampled_from(_GUIDS).map(lambda g: g.replace("-", "_", 1)),
    st.lists(st.sampled_from(_GUIDS), min_size=2, max_size=3).map("\n".join),  # hides newlines
    st.sampled_from(_GUIDS).map(lambda g: g[:7] + "-" + g[7] + g[9:]),  # a dash moved
    st.sampled_from(_GUIDS).map(lambda g: g[:2] + "-" + g[3:]),  # a dash too many
    st.sampled_from(_GUIDS).map(lambda g: g[:8] + "\n" + g[9:]),  # a newline for a dash
    st.sampled_from(_GUIDS).map(lambda g: g[:-1] + "\u00e9"),  # not ASCII
    st.sampled_from(_GUIDS).map(lambda g: g[:-1] + "g"),
    st.text(alphabet="0123456789abcdef-\n", max_size=80),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_guid_like, st.text(max_size=40), st.integers()), max_size=8))
def test_the_batch_guid_check_agrees_with_is_guid(values: list[Any]) -> None:
    """Checking GUIDs joined in a few scans equals checking each one."""
    from wixinv_async.core.validation import is_guid

    assert validation.all_guids(values) == all(map(is_guid, values))


_id_like = st.one_of(
    st.sampled_from(_GUIDS),
    st.sampled_from(["p1", "p" * 36, "p" * 37, "", "a\nb", "\n", "product-00001"]),
    st.text(alphabet="ab\n", max_size=40),
    st.integers(),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_id_like, max_size=8))
def test_the_batch_id_check_agrees_with_check_entity_id(values: list[Any]) -> None:
    """Checking ids joined in a few scans equals checking each one."""

    def one_by_one() -> bool:
        try:
            for value in values:
                validation.check_entity_id("productId", value)
        except InvalidInputError:
            return False
        return True

    assert validation.all_short_ids(values) == one_by_one()


LONE_SURROGATE = "p-\ud800"


@pytest.mark.parametrize("size", [1, 300])
async def test_an_id_utf8_cannot_encode_is_refused_naming_its_entry(size: int) -> None:
    """A lone surrogate in a product id fails validation (entry, field, value), nothing sent."""
    entries = [dec(product_id=f"p{i}") for i in range(size - 1)] + [dec(product_id=LONE_SURROGATE)]
    with pytest.raises(InvalidInputError) as caught:
        await run(lambda c: c.decrement_inventory(entries))
    assert (caught.value.index, caught.value.field) == (size - 1, "productId")
    assert caught.value.value == LONE_SURROGATE


async def test_non_ascii_ids_that_utf8_encodes_are_accepted() -> None:
    """Only ids the body cannot carry are refused: other non-ASCII text goes out."""
    transport = await run(lambda c: c.decrement_inventory([dec(product_id="produit-été")] * 2))
    assert transport.requests[0].json()["decrementData"][0]["productId"] == "produit-été"


async def test_an_unencodable_entry_is_refused_before_sending_even_unvalidated() -> None:
    """With validate=False, a body that cannot be encoded is an InvalidInputError naming the
    entry (not a bare UnicodeEncodeError that reads as 'maybe sent')."""
    entries = [dec(product_id="p0"), dec(product_id=LONE_SURROGATE)]
    with pytest.raises(InvalidInputError) as caught:
        await run(lambda c: c.decrement_inventory(entries, validate=False))
    assert (caught.value.index, caught.value.field) == (1, "decrementData")


def test_the_batch_id_check_refuses_what_utf8_cannot_encode() -> None:
    """The batch fast path never vouches for an id the body cannot carry."""
    assert not validation.all_short_ids(["p0", LONE_SURROGATE])
    assert validation.all_short_ids(["p0", "produit-été"])

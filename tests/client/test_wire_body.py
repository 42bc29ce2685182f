"""The adjuster's batch bodies, written from its entries, are the bytes the wire structs encode
to (and so the official SDK's body, which ``test_wire`` checks for the structs)."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.core import wirebody
from wixinv_async.core.planner import decrement_entries, increment_entries
from wixinv_async.core.table import Entry
from wixinv_async.errors import InvalidInputError
from wixinv_async.models import (
    DEFAULT_VARIANT_ID,
    DecrementData,
    DecrementInventoryRequest,
    IncrementData,
    IncrementInventoryRequest,
)
from wixinv_async.transport import HttpResponse, MockTransport

ENCODE = msgspec.json.encode
ids = st.text(min_size=1, max_size=36)


def _entries(draws: list[tuple[str, bool, bool, int]]) -> list[Entry]:
    entries = []
    for index, (text, by_inventory, preorder, net) in enumerate(draws):
        key = (
            (None, text, DEFAULT_VARIANT_ID, preorder)
            if by_inventory
            else (text, None, f"v{index}", preorder)
        )
        entries.append(Entry(key, 0.0, net, 1))
    return entries


entry_draws = st.lists(
    st.tuples(
        ids,
        st.booleans(),
        st.booleans(),
        st.integers(1, 99_999),
    ),
    min_size=1,
    max_size=40,
)


def _encodable(draws: list[tuple[str, bool, bool, int]]) -> bool:
    try:
        for text, *_ in draws:
            text.encode()
    except UnicodeEncodeError:
        return False
    return True


@given(entry_draws.filter(_encodable))
def test_decrement_body_is_the_structs_encoding(draws: list[tuple[str, bool, bool, int]]) -> None:
    """Any ids (quotes, backslashes, control and non-ASCII characters), amounts and preorder
    flags: the written body equals the encoded request, twice (the second from the cache)."""
    entries = _entries([(t, i, p, -n) for t, i, p, n in draws])
    expected = ENCODE(DecrementInventoryRequest(decrement_data=decrement_entries(entries)))
    assert wirebody.decrement_body(entries) == expected
    assert wirebody.decrement_body(entries) == expected


@given(entry_draws.filter(_encodable))
def test_increment_body_is_the_structs_encoding(draws: list[tuple[str, bool, bool, int]]) -> None:
    """The same for increments (no preorder flag on the wire, an absent id left out)."""
    entries = _entries(draws)
    expected = ENCODE(IncrementInventoryRequest(increment_data=increment_entries(entries)))
    assert wirebody.increment_body(entries) == expected
    assert wirebody.increment_body(entries) == expected


def test_a_witness_entry_goes_last() -> None:
    """The extra entry (a witness's) is encoded after the batch's own."""
    entries = _entries([("p1", False, False, -3)])
    extra = DecrementData(product_id="w", variant_id="wv", decrement_by=1)
    wire = [*decrement_entries(entries), extra]
    expected = ENCODE(DecrementInventoryRequest(decrement_data=wire))
    assert wirebody.decrement_body(entries, extra) == expected
    up = IncrementData(product_id="w", variant_id="wv", increment_by=1)
    up_wire = [*increment_entries(_entries([("p1", False, False, 3)])), up]
    expected_up = ENCODE(IncrementInventoryRequest(increment_data=up_wire))
    assert wirebody.increment_body(_entries([("p1", False, False, 3)]), up) == expected_up


def test_bodies_stay_exact_when_the_cache_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the cache is emptied and refilled: every body stays the structs' bytes."""
    monkeypatch.setattr(wirebody, "_LIMIT", 7)
    rng = random.Random(5)
    for _ in range(30):
        draws = [
            (f"p{rng.randrange(20)}", rng.random() < 0.3, rng.random() < 0.5, -rng.randrange(1, 4))
            for _ in range(rng.randrange(1, 9))
        ]
        entries = _entries(draws)
        expected = ENCODE(DecrementInventoryRequest(decrement_data=decrement_entries(entries)))
        assert wirebody.decrement_body(entries) == expected
    assert wirebody._HELD[0] <= 7


def test_an_unencodable_id_raises_as_msgspec_does() -> None:
    """A lone surrogate cannot be encoded: the writer falls back to the structs on this."""
    with pytest.raises(wirebody.ENCODE_ERRORS):
        wirebody.decrement_body(_entries([("bad\ud800", False, False, -1)]))


async def test_send_batch_body_sends_it_as_decrement_inventory_would() -> None:
    """Same method, path, headers and bytes as ``decrement_inventory`` with the structs."""
    entries = _entries([("p1", False, True, -2), ("i9", True, False, -1)])
    transport = MockTransport(lambda request: HttpResponse.from_json(200, {}))
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        await client.decrement_inventory(decrement_entries(entries), validate=False)
        await client.send_batch_body("decrement", wirebody.decrement_body(entries), len(entries))
    first, second = transport.requests
    assert (first.method, first.url, dict(first.headers), first.body) == (
        second.method,
        second.url,
        dict(second.headers),
        second.body,
    )


async def test_send_batch_body_checks_the_size() -> None:
    """A body said to hold no entry (or more than 300) is refused before sending."""
    transport = MockTransport(lambda request: HttpResponse.from_json(200, {}))
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        for size in (0, 301):
            with pytest.raises(InvalidInputError):
                await client.send_batch_body("increment", b"{}", size)
    assert transport.requests == []

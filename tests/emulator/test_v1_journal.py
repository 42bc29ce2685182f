"""The V1 journal's compact records (variant numbers, amounts and flags packed; the body
kept when an entry names an inventory id) show what the entries themselves say, however
the body spells them."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.emulator import SiteStore
from wixinv_async.emulator.requests import DecrementBody, IncrementBody, decode

STORE = SiteStore(site_id="s", instance_id="i", products=6, seed=5)
KEYS = [
    (item.id, item.product_id, v.variant_id)
    for item in STORE.records()
    if item.track
    for v in item.variants.values()
][:6]
_key = st.sampled_from(KEYS)
_name = st.sampled_from(["plain", "escaped"])


def _spell(name: str, how: str) -> str:
    """A JSON key, as written or with its first letter as a unicode escape."""
    return json.dumps(name) if how == "plain" else f'"\\u{ord(name[0]):04x}{name[1:]}"'


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, bytes, list[dict[str, Any]]]:
    """A decrement or increment body, its keys spelt plainly or escaped, some entries by
    inventory id, preorder flags true, false or absent; and its entries as sent."""
    kind = draw(st.sampled_from(["decrement", "increment"]))
    amount = f"{kind}By"
    entries = []
    for inventory_id, product_id, variant_id in draw(st.lists(_key, min_size=1, max_size=5)):
        entry: dict[str, Any] = {"variantId": variant_id, amount: draw(st.integers(1, 3))}
        ids = draw(st.sampled_from(["product", "inventory", "both"]))
        if ids != "inventory":
            entry["productId"] = product_id
        if ids != "product":
            entry["inventoryId"] = inventory_id
        if kind == "decrement":
            flag = draw(st.sampled_from([None, True, False]))
            if flag is not None:
                entry["preorderRequest"] = flag
        entries.append(entry)
    how = draw(_name)
    text = ",".join(
        "{" + ",".join(f"{_spell(k, how)}:{json.dumps(v)}" for k, v in e.items()) + "}"
        for e in entries
    )
    return kind, f'{{"{kind}Data":[{text}]}}'.encode(), entries


@settings(max_examples=200, deadline=None)
@given(drawn=_bodies())
def test_a_journaled_batch_shows_its_entries_however_the_body_spells_them(
    drawn: tuple[str, bytes, list[dict[str, Any]]],
) -> None:
    """A batch naming any entry by inventory id keeps the body's entries; any other shows
    each entry normalized, with each decrement's own preorder flag."""
    kind, body, sent = drawn
    STORE.reset()
    for _, product_id, variant_id in KEYS:
        STORE.set_quantity(product_id, variant_id, 1_000)
    if kind == "decrement":
        STORE.decrement(decode(DecrementBody, body).decrement_data, "r", raw=body)
    else:
        STORE.increment(decode(IncrementBody, body).increment_data, "r", raw=body)
    (entry,) = STORE.journal
    if any("inventoryId" in e for e in sent):
        assert entry.entries == sent
        return
    amount = f"{kind}By"
    expected = [
        {"productId": e["productId"], "variantId": e["variantId"], amount: e[amount]}
        | ({"preorderRequest": e.get("preorderRequest", False)} if kind == "decrement" else {})
        for e in sent
    ]
    assert entry.entries == expected

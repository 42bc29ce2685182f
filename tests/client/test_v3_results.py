"""V3 bulk answers become one result per request entry: applied, refused or unknown."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.core.bulk_results import (
    BulkItemStatus,
    match_results,
    parse_bulk_body,
)
from wixinv_async.models_v3 import ItemError, ItemMetadata, WireBulkResult

APPLIED, REFUSED, UNKNOWN = BulkItemStatus.APPLIED, BulkItemStatus.REFUSED, BulkItemStatus.UNKNOWN


def ok(index: int, item_id: str | None = None) -> WireBulkResult:
    meta = ItemMetadata(original_index=index, success=True)
    if item_id is not None:
        meta.id = item_id
    return WireBulkResult(item_metadata=meta)


def refused(index: int, code: str = "INSUFFICIENT_INVENTORY") -> WireBulkResult:
    error = ItemError(code=code, description="no", data={"index": index})
    return WireBulkResult(
        item_metadata=ItemMetadata(original_index=index, success=False, error=error)
    )


def test_results_come_back_in_request_order_whatever_the_answer_order() -> None:
    """Matched by originalIndex, never by position."""
    out = match_results(3, [refused(2), ok(0), ok(1)])
    assert [(r.index, r.status) for r in out] == [(0, APPLIED), (1, APPLIED), (2, REFUSED)]
    assert out[2].code == "INSUFFICIENT_INVENTORY" and out[2].data == {"index": 2}


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        ([], "no result"),
        ([ok(0), ok(0)], "duplicate index"),
        ([ok(0), refused(0)], "duplicate index"),
        ([WireBulkResult(item_metadata=ItemMetadata(original_index=0))], "malformed result"),
        (
            [
                WireBulkResult(
                    item_metadata=ItemMetadata(original_index=0, success=True, error=ItemError())
                )
            ],
            "malformed result",
        ),
        ([ok(0, "99999999-9999-9999-9999-999999999999")], "id mismatch"),
        ([None], "no result"),
        ([WireBulkResult()], "no result"),
        ([WireBulkResult(item_metadata=ItemMetadata(success=True))], "no result"),
        ([ok(5)], "no result"),
        ([ok(-1)], "no result"),
    ],
)
def test_an_entry_without_a_trustworthy_result_is_unknown(
    results: list[WireBulkResult | None], reason: str
) -> None:
    """No result, two results, a malformed one, another item's: UNKNOWN, never APPLIED."""
    [only] = match_results(1, results, expected_ids=["11111111-1111-1111-1111-111111111111"])
    assert only.status is UNKNOWN and only.reason == reason


def test_a_refusal_without_details_is_still_a_refusal() -> None:
    """success false without an error: not applied, code unknown."""
    result = WireBulkResult(item_metadata=ItemMetadata(original_index=0, success=False))
    [only] = match_results(1, [result])
    assert only.status is REFUSED and only.code is None


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"results": 5}', b'{"bulkActionMetadata": {}}', b"{}"],
)
def test_an_unreadable_2xx_body_leaves_every_entry_unknown(body: bytes) -> None:
    """A lost or garbled answer says nothing about any entry."""
    result = parse_bulk_body(3, body)
    assert [r.status for r in result] == [UNKNOWN] * 3 and not result.all_applied


def test_one_malformed_element_spoils_only_its_own_entry() -> None:
    """A result whose fields have the wrong types is ignored; the others stand."""
    body = msgspec.json.encode(
        {
            "results": [
                {"itemMetadata": {"originalIndex": 0, "success": True}},
                {"itemMetadata": {"originalIndex": "1", "success": True}},
                {"itemMetadata": {"originalIndex": 2, "success": "yes"}},
            ],
            "bulkActionMetadata": {"totalSuccesses": 3, "undetailedFailures": 0},
        }
    )
    result = parse_bulk_body(3, body, request_id="r1")
    assert [r.status for r in result] == [APPLIED, UNKNOWN, UNKNOWN]
    assert result.metadata is not None and result.metadata.total_successes == 3
    assert result.request_id == "r1" and len(result.applied) == 1 and len(result.unknown) == 2


def test_the_returned_entity_rides_with_its_result() -> None:
    """With returnEntity the updated item is on its entry's result."""
    body = msgspec.json.encode(
        {
            "results": [
                {
                    "itemMetadata": {"id": "a", "originalIndex": 0, "success": True},
                    "item": {"id": "a", "quantity": 7, "revision": "3"},
                }
            ]
        }
    )
    [only] = parse_bulk_body(1, body)
    assert only.item is not None and only.item.quantity == 7 and only.inventory_item_id == "a"


# --- the invariant, for any answer ---------------------------------------------------------

_metadata = st.fixed_dictionaries(
    {},
    optional={
        "originalIndex": st.one_of(st.integers(-2, 12), st.text(max_size=2), st.none()),
        "success": st.one_of(st.booleans(), st.none(), st.integers(0, 1)),
        "error": st.one_of(
            st.fixed_dictionaries({}, optional={"code": st.sampled_from(["X", "Y", ""])}),
            st.integers(),
        ),
        "id": st.sampled_from(["i0", "i1", "other", ""]),
    },
)
_element = st.one_of(st.fixed_dictionaries({"itemMetadata": _metadata}), st.integers(), st.just({}))


def _expected(count: int, elements: list[Any], ids: list[str]) -> list[BulkItemStatus]:
    """The verdict table, restated over plain JSON."""
    claims: dict[int, list[dict[str, Any]]] = {}
    for element in elements:
        meta = element.get("itemMetadata") if isinstance(element, dict) else None
        if not isinstance(meta, dict):
            continue
        well_typed = (
            ("originalIndex" not in meta or type(meta["originalIndex"]) is int)
            and ("success" not in meta or type(meta["success"]) is bool)
            and ("error" not in meta or isinstance(meta["error"], dict))
        )
        index = meta.get("originalIndex")
        if well_typed and type(index) is int and 0 <= index < count:
            claims.setdefault(index, []).append(meta)
    verdicts = []
    for i in range(count):
        found = claims.get(i, [])
        if len(found) != 1:
            verdicts.append(UNKNOWN)
            continue
        meta = found[0]
        if meta.get("id") not in (None, "", ids[i]):
            verdicts.append(UNKNOWN)
        elif meta.get("success") is True and "error" not in meta:
            verdicts.append(APPLIED)
        elif meta.get("success") is False:
            verdicts.append(REFUSED)
        else:
            verdicts.append(UNKNOWN)
    return verdicts


@settings(max_examples=300, deadline=None)
@given(count=st.integers(1, 10), elements=st.lists(_element, max_size=14))
def test_every_entry_gets_exactly_one_verdict_by_the_table(count: int, elements: list[Any]) -> None:
    """For any answer: one result per entry, in order; APPLIED only for a unique, explicit,
    well-formed success naming the entry's item; unmatched entries UNKNOWN."""
    ids = [f"i{i}" for i in range(count)]
    body = msgspec.json.encode({"results": elements})
    result = parse_bulk_body(count, body, expected_ids=ids)
    assert [r.index for r in result] == list(range(count))
    assert [r.status for r in result] == _expected(count, elements, ids)


@settings(max_examples=200, deadline=None)
@given(
    statuses=st.lists(
        st.sampled_from(["ok", "refused", "missing", "twice"]), min_size=1, max_size=30
    ),
    order=st.randoms(use_true_random=False),
)
def test_shuffled_answers_match_the_same_entries(statuses: list[str], order: Any) -> None:
    """However the server orders its results, each entry gets the verdict of its own."""
    elements: list[WireBulkResult | None] = []
    for index, status in enumerate(statuses):
        if status == "ok":
            elements.append(ok(index))
        elif status == "refused":
            elements.append(refused(index))
        elif status == "twice":
            elements += [ok(index), ok(index)]
    order.shuffle(elements)
    expected = {"ok": APPLIED, "refused": REFUSED, "missing": UNKNOWN, "twice": UNKNOWN}
    assert [r.status for r in match_results(len(statuses), elements)] == [
        expected[s] for s in statuses
    ]


def test_one_malformed_result_leaves_the_others_matched() -> None:
    """An answer with one element that does not decode is read element by element: that
    element matches no entry, the well-formed ones still decide theirs."""
    body = (
        b'{"results":[{"itemMetadata":{"originalIndex":0,"success":true}},'
        b'{"itemMetadata":{"originalIndex":"one","success":true}}],'
        b'"bulkActionMetadata":{"totalSuccesses":1}}'
    )
    result = parse_bulk_body(2, body)
    assert [r.status for r in result] == [BulkItemStatus.APPLIED, BulkItemStatus.UNKNOWN]
    assert result.metadata is not None and result.metadata.total_successes == 1


_metas = st.builds(
    lambda success, error, item_id: (success, error, item_id),
    st.sampled_from([True, False, None]),
    st.sampled_from([None, ItemError(code="NOT_FOUND", description="gone")]),
    st.sampled_from([None, "", "id-a", "id-b"]),
)


@given(
    st.lists(st.tuples(_metas, st.sampled_from([None, "id-a"])), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
)
def test_results_in_order_match_as_the_same_results_shuffled(
    draws: list[tuple[tuple[bool | None, ItemError | None, str | None], str | None]],
    rng: Any,
) -> None:
    """An answer in request order and the same answer in any other order give every entry
    the same verdict (results are matched by originalIndex, whatever their order)."""
    results = []
    for index, ((success, error, item_id), _) in enumerate(draws):
        meta = ItemMetadata(original_index=index)
        if success is not None:
            meta.success = success
        if error is not None:
            meta.error = error
        if item_id is not None:
            meta.id = item_id
        results.append(WireBulkResult(item_metadata=meta))
    expected_ids = [expected for _, expected in draws]
    shuffled = list(results)
    rng.shuffle(shuffled)
    ordered = match_results(len(results), results, expected_ids=expected_ids)
    assert ordered == match_results(len(results), shuffled, expected_ids=expected_ids)
    assert [r.index for r in ordered] == list(range(len(results)))

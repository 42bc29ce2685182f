"""The bulk row reader: CSV and JSON Lines, line numbers, bad rows rejected and reading goes on."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wixinv_async.bulk import rows as rows_module
from wixinv_async.bulk.rows import DeltaRow, RejectedRow, RowFormat, read_rows
from wixinv_async.errors import InvalidInputError
from wixinv_async.models import DEFAULT_VARIANT_ID as V

GOOD = "11111111-2222-3333-4444-555555555555"


def test_csv_rows_parse_with_their_line_numbers() -> None:
    """Each CSV data row becomes a DeltaRow numbered by its physical line."""
    text = f"product_id,variant_id,delta,preorder\np1,{V},-2,\np2,{GOOD},+5,true\n"
    rows = list(read_rows(io.StringIO(text), "csv"))
    assert rows == [
        DeltaRow(2, "p1", None, V, -2, False),
        DeltaRow(3, "p2", None, GOOD, 5, True),
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f"p1,{V},0,", "delta"),
        (f"p1,{V},1.5,", "delta"),
        (f"p1,{V},100000,", "delta"),
        ("p1,not-a-guid,1,", "variant_id"),
        (f"{'x' * 37},{V},1,", "product_id"),
        (f",{V},1,", "product_id"),
        (f"p1,{V},1,maybe", "preorder"),
        (f"p1,{V},1,,extra", "more cells"),
    ],
)
def test_bad_csv_rows_are_rejected_and_reading_goes_on(row: str, reason: str) -> None:
    """A bad row is a RejectedRow naming the problem; the next good row still comes through."""
    text = f"product_id,variant_id,delta,preorder\n{row}\np9,{V},1,\n"
    first, second = read_rows(io.StringIO(text), "csv")
    assert isinstance(first, RejectedRow)
    assert first.line == 2
    assert reason in first.reason
    assert second == DeltaRow(3, "p9", None, V, 1, False)


def test_csv_without_required_columns_is_refused_at_once() -> None:
    """A header without variant_id or delta is a usage error, not a million rejects."""
    with pytest.raises(InvalidInputError, match="variant_id"):
        list(read_rows(io.StringIO("product_id,delta\np1,1\n"), "csv"))


def test_jsonl_rows_parse_and_bad_json_is_rejected() -> None:
    """JSON Lines rows parse; malformed JSON and non-objects are rejected with their lines."""
    text = (
        f'{{"inventory_id": "i1", "variant_id": "{V}", "delta": -3, "preorder": true}}\n'
        "\n"
        "{not json\n"
        "[1, 2]\n"
        f'{{"product_id": "p1", "inventory_id": "i1", "variant_id": "{V}", "delta": 1}}\n'
    )
    rows = list(read_rows(io.StringIO(text), "jsonl"))
    assert rows[0] == DeltaRow(1, None, "i1", V, -3, True)
    assert [(r.line, type(r).__name__) for r in rows[1:]] == [
        (3, "RejectedRow"),
        (4, "RejectedRow"),
        (5, "RejectedRow"),
    ]
    assert "exactly one of product_id, inventory_id and sku" in rows[3].reason  # type: ignore[union-attr]


def test_reading_is_lazy() -> None:
    """Rows come one at a time from a generator, so a huge file is never held in memory."""
    lines = (f"p{i},{V},1,\n" for i in range(10**9))
    stream = io.StringIO(
        "product_id,variant_id,delta,preorder\n" + "".join(next(lines) for _ in range(3))
    )
    iterator = read_rows(stream, "csv")
    assert next(iterator).line == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("delta", ["²", "٣", "\uff11", "+-5", "--5"])
def test_a_delta_of_non_ascii_digits_is_a_rejected_row(delta: str) -> None:
    """Non-ASCII digits or two signs reject the row (no ValueError ends the run); reading goes on."""
    text = f"product_id,variant_id,delta\np1,{V},{delta}\np2,{V},3\n"
    rows = list(read_rows(io.StringIO(text), "csv"))
    assert isinstance(rows[0], RejectedRow)
    assert f"delta={delta!r}" in rows[0].reason
    assert rows[1] == DeltaRow(3, "p2", None, V, 3, False)


@pytest.mark.parametrize(
    "header", ["product_id, variant_id, delta", " product_id ,variant_id\t,delta ,preorder"]
)
def test_csv_header_names_are_trimmed(header: str) -> None:
    """A header written with spaces after the commas ("product_id, delta") reads."""
    text = f"{header}\np1,{V},-2\n"
    assert list(read_rows(io.StringIO(text), "csv")) == [DeltaRow(2, "p1", None, V, -2, False)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_empty_file_has_no_rows(fmt: RowFormat) -> None:
    """A 0-byte file is no rows in either format (not a missing-header error for CSV alone)."""
    assert list(read_rows(io.StringIO(""), fmt)) == []


@pytest.mark.parametrize(
    "header",
    ["Product_ID,Variant_ID,Delta", "PRODUCT_ID,variant_id,DeLtA", "Product_Id, Variant_Id, Delta"],
)
def test_csv_header_names_match_whatever_their_case(header: str) -> None:
    """A spreadsheet's "Product_ID,Variant_ID,Delta" header reads like the lower-case one."""
    text = f"{header}\np1,{V},-2\n"
    assert list(read_rows(io.StringIO(text), "csv")) == [DeltaRow(2, "p1", None, V, -2, False)]


@pytest.mark.parametrize(
    "header", ["product_id,variant_id,delta,Delta", "product_id,variant_id,delta,delta"]
)
def test_a_csv_column_named_twice_is_refused_at_once(header: str) -> None:
    """Two columns that both mean delta are a usage error, not a silent pick of one of them."""
    with pytest.raises(InvalidInputError, match=r"repeated column.*'delta'"):
        list(read_rows(io.StringIO(f"{header}\np1,{V},1,2\n"), "csv"))


def test_a_csv_field_past_the_field_limit_is_one_rejected_row() -> None:
    """A field over csv.field_size_limit() (131,072) rejects its row, cut short; reading goes on."""
    huge = "x" * 200_000
    text = f"product_id,variant_id,delta\n{huge},{V},1\np2,{V},3\n"
    first, second = read_rows(io.StringIO(text), "csv")
    assert isinstance(first, RejectedRow)
    assert first.line == 2
    assert "field larger than field limit" in first.reason
    assert len(first.raw) < 1_100
    assert "200,040 characters in all" in first.raw
    assert second == DeltaRow(3, "p2", None, V, 3, False)


def test_a_quoted_field_past_the_limit_never_yields_its_inner_lines_as_rows() -> None:
    """A multi-line quoted field over the limit is skipped whole: a row-like line inside it is
    not applied, and the row after it keeps its line number."""
    inside = f'{"x" * 200_000}\np1,{V},7\n""quoted"", still inside\nmore'
    text = f'product_id,variant_id,delta\n"{inside}",{V},1\np2,{V},3\n'
    rows = list(read_rows(io.StringIO(text), "csv"))
    assert [type(row).__name__ for row in rows] == ["RejectedRow", "DeltaRow"]
    assert rows[1] == DeltaRow(6, "p2", None, V, 3, False)


def test_a_csv_header_past_the_field_limit_is_refused_at_once() -> None:
    """A header the csv module cannot read is a usage error naming the header, not a traceback."""
    with pytest.raises(InvalidInputError, match="header"):
        list(read_rows(io.StringIO("product_id," + "d" * 200_000 + "\n"), "csv"))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ('{"product_id": "p1", "delta": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
        (f'{{"product_id": "p1", "variant_id": "{V}", "delta": {"9" * 5_000}}}', "4300 digits"),
        (f'{{"product_id": "p1", "variant_id": "{V}", "delta": 1, "x": {"1" * 5_000}}}', "4300"),
    ],
    ids=["deeply-nested", "delta-of-5000-digits", "other-number-of-5000-digits"],
)
def test_json_lines_python_cannot_decode_are_rejected_rows(row: str, reason: str) -> None:
    """JSON nested past the recursion limit or holding a 5,000-digit number: one rejected row."""
    text = f'{row}\n{{"product_id": "p2", "variant_id": "{V}", "delta": 3}}\n'
    first, second = read_rows(io.StringIO(text), "jsonl")
    assert isinstance(first, RejectedRow)
    assert (first.line, reason in first.reason) == (1, True), first.reason
    assert len(first.raw) < 1_100
    assert second == DeltaRow(2, "p2", None, V, 3, False)


def test_a_csv_delta_of_5000_digits_is_a_rejected_row() -> None:
    """A delta too long for int() is out of range, a rejected row (int() would raise)."""
    text = f"product_id,variant_id,delta\np1,{V},{'9' * 5_000}\np2,{V},00000000000000000003\n"
    first, second = read_rows(io.StringIO(text), "csv")
    assert isinstance(first, RejectedRow)
    assert "must be within ±99999" in first.reason
    assert len(first.reason) < 1_100
    assert second == DeltaRow(3, "p2", None, V, 3, False)


@given(st.text(alphabet='a,"\r\n', max_size=40))
def test_the_quote_tracking_agrees_with_the_csv_module(text: str) -> None:
    """Whether a text ends inside a quoted field, as the skipping of a failed record sees it,
    is what the csv module makes of the line that follows it."""
    text += "\n"
    inside = rows_module._quote_state(text, rows_module._START) == rows_module._QUOTED
    *_, last = csv.reader(io.StringIO(text + "END\n", newline=""))
    assert (last != ["END"]) == inside


L = GOOD


def test_v3_columns_location_and_sku_parse() -> None:
    """location_id and sku are optional columns; a SKU stands without variant_id."""
    text = (
        "product_id,inventory_id,sku,variant_id,location_id,delta\n"
        f"p1,,,{V},{L},-2\n"
        f",item-1,,{V},,3\n"
        ",,SKU 7/blue,,,4\n"
        f",,SKU-8,,{L},-1\n"
    )
    rows = list(read_rows(io.StringIO(text), "csv"))
    assert rows == [
        DeltaRow(2, "p1", None, V, -2, False, location_id=L),
        DeltaRow(3, None, "item-1", V, 3, False),
        DeltaRow(4, None, None, None, 4, False, sku="SKU 7/blue"),
        DeltaRow(5, None, None, None, -1, False, location_id=L, sku="SKU-8"),
    ]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (f'{{"sku": "S1", "variant_id": "{V}", "delta": 1}}', "variant_id"),
        ('{"sku": "S1", "product_id": "p1", "delta": 1}', "product_id"),
        ('{"sku": 7, "delta": 1}', "sku"),
        ('{"product_id": "p1", "delta": 1}', "variant_id"),
        ('{"inventory_id": "i1", "delta": 1}', "variant_id"),
        ('{"sku": "S1", "location_id": "main", "delta": 1}', "location_id"),
        ('{"delta": 1}', "product_id"),
    ],
)
def test_bad_v3_rows_are_rejected_naming_the_field(row: str, field: str) -> None:
    """A SKU with a variant id or a product id, a non-text SKU, a non-GUID location: rejected."""
    [rejected, good] = list(
        read_rows(io.StringIO(f'{row}\n{{"sku": "S2", "delta": 1}}\n'), "jsonl")
    )
    assert isinstance(rejected, RejectedRow)
    assert rejected.reason.startswith(f"{field}=")
    assert good == DeltaRow(2, None, None, None, 1, False, sku="S2")


def test_a_header_naming_sku_needs_no_variant_id_column() -> None:
    """sku,delta is a complete header; product_id,delta still is not."""
    assert list(read_rows(io.StringIO("sku,delta\nS1,1\n"), "csv")) == [
        DeltaRow(2, None, None, None, 1, False, sku="S1")
    ]
    with pytest.raises(InvalidInputError, match="product_id, inventory_id or sku"):
        list(read_rows(io.StringIO("variant_id,delta\nx,1\n"), "csv"))


def test_a_site_column_names_each_rows_site_and_an_empty_cell_none() -> None:
    """site is an optional column, trimmed; an empty cell means the run's default site."""
    text = f"Site,product_id,variant_id,delta\n site-a ,p1,{V},1\n,p2,{V},-1\n"
    assert list(read_rows(io.StringIO(text), "csv")) == [
        DeltaRow(2, "p1", None, V, 1, False, site="site-a"),
        DeltaRow(3, "p2", None, V, -1, False),
    ]


@pytest.mark.parametrize("site", ["two words", "x" * 201, 7, "tab\there", "caf\u00e9"])
def test_a_site_that_cannot_be_an_id_is_a_rejected_row_naming_the_field(site: object) -> None:
    """A site with spaces, control or non-ASCII characters, too long or not text: rejected."""
    row = json.dumps({"site": site, "product_id": "p1", "variant_id": V, "delta": 1})
    [rejected] = list(read_rows(io.StringIO(row + "\n"), "jsonl"))
    assert isinstance(rejected, RejectedRow)
    assert rejected.reason.startswith("site=")


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("product_id,SITE,variant_id,delta\n", "csv", True),
        ("product_id,variant_id,delta\np,site,1\n", "csv", False),
        ('\n{"site": "a", "sku": "S", "delta": 1}\n{"sku": "S", "delta": 1}\n', "jsonl", True),
        ('{"sku": "site", "delta": 1}\n{"site": "a", "sku": "S", "delta": 1}\n', "jsonl", False),
        ("{not json\n", "jsonl", False),
        ("", "csv", False),
    ],
)
def test_a_file_names_sites_by_its_header_or_its_first_json_row(
    text: str, fmt: RowFormat, expected: bool
) -> None:
    """names_sites reads only the start: a CSV site column, or a site key on the first row."""
    assert rows_module.names_sites(io.StringIO(text), fmt) is expected

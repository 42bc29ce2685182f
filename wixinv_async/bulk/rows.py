"""Streaming reader of bulk adjustment files: CSV or JSON Lines, one delta per row.

Columns (CSV header or JSON keys): ``product_id`` or ``inventory_id``, ``variant_id``, ``delta``
and optionally ``preorder``; CSV header names match whatever their case (``Product_ID``), JSON
keys exactly. Rows are read one at a time, so memory stays constant however long
the file is. A row that cannot be used becomes a :class:`RejectedRow` with its line number and
the reason, and reading goes on. Open the file with ``errors="surrogateescape"``: a row holding
bytes that are not UTF-8 is then rejected like any other bad row instead of ending the read.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from ..core.validation import check_entity_id, check_variant_id
from ..errors import InvalidInputError
from ..models import MAX_QUANTITY

__all__ = ["DeltaRow", "RejectedRow", "RowFormat", "detect_format", "read_rows"]

RowFormat = Literal["csv", "jsonl"]

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})
_UNDECODED = re.compile("[\udc80-\udcff]")
"""What ``surrogateescape`` makes of a byte that is not UTF-8."""
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class DeltaRow:
    """One usable row: the delta to apply to one variant."""

    line: int
    product_id: str | None
    inventory_id: str | None
    variant_id: str
    delta: int
    preorder: bool


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that cannot be sent, with its 1-based line number and why."""

    line: int
    reason: str
    raw: str


def detect_format(path: Path) -> RowFormat:
    """JSON Lines for ``.jsonl``/``.ndjson``/``.json`` files, CSV otherwise."""
    return "jsonl" if path.suffix.lower() in {".jsonl", ".ndjson", ".json"} else "csv"


def read_rows(stream: TextIO, fmt: RowFormat) -> Iterator[DeltaRow | RejectedRow]:
    """Yield each data row of ``stream`` as a :class:`DeltaRow` or a :class:`RejectedRow`."""
    if fmt == "csv":
        yield from _read_csv(stream)
    else:
        yield from _read_jsonl(stream)


def _read_csv(stream: TextIO) -> Iterator[DeltaRow | RejectedRow]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:  # an empty file: no rows, as an empty JSON Lines file
        return
    reader.fieldnames = _column_names(reader.fieldnames)
    for record in reader:
        line = reader.line_num
        if (undecoded := _not_utf8(line, _raw_csv(record))) is not None:
            yield undecoded
            continue
        if None in record:  # more cells than header columns
            yield RejectedRow(line, "more cells than the header has columns", _raw_csv(record))
            continue
        yield _parse(line, record, _raw_csv(record))


def _read_jsonl(stream: TextIO) -> Iterator[DeltaRow | RejectedRow]:
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        raw = text.rstrip("\r\n")
        if (undecoded := _not_utf8(line, raw)) is not None:
            yield undecoded
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RejectedRow(line, f"not valid JSON: {exc.msg}", raw)
            continue
        if not isinstance(record, dict):
            yield RejectedRow(line, "a row must be a JSON object", raw)
            continue
        yield _parse(line, record, raw)


def _not_utf8(line: int, raw: str) -> RejectedRow | None:
    """The rejection of a row holding bytes that are not UTF-8 (decoded as surrogate escapes)."""
    found = _UNDECODED.search(raw)
    if found is None:
        return None
    shown = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    byte, column = ord(found.group()) - 0xDC00, found.start() + 1
    reason = f"not UTF-8 text: byte 0x{byte:02X} at column {column}; save the file as UTF-8"
    return RejectedRow(line, reason, shown)


def _column_names(header: Sequence[str]) -> list[str]:
    """The header's column names, trimmed ("product_id, delta") and lower-cased (a spreadsheet
    user writes "Product_ID"); refused when a required one is missing or one appears twice."""
    names = [name.strip().lower() for name in header]
    missing = _missing_columns(names)
    if missing:
        raise InvalidInputError("header", list(header), f"missing column(s): {missing}")
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise InvalidInputError("header", list(header), f"repeated column(s): {repeated}")
    return names


def _missing_columns(columns: Sequence[str]) -> str:
    names = set(columns)
    missing = [c for c in ("variant_id", "delta") if c not in names]
    if not names & {"product_id", "inventory_id"}:
        missing.append("product_id or inventory_id")
    return ", ".join(missing)


def _raw_csv(record: Mapping[str | None, Any]) -> str:
    return ",".join(str(v) for k, v in record.items() if k is not None and v is not None)


def _parse(line: int, record: Mapping[str | None, Any], raw: str) -> DeltaRow | RejectedRow:
    try:
        product_id, inventory_id = _entity_ids(record)
        variant_id = check_variant_id(_text(record.get("variant_id")), field="variant_id")
        return DeltaRow(
            line=line,
            product_id=product_id,
            inventory_id=inventory_id,
            variant_id=variant_id,
            delta=_delta(record.get("delta")),
            preorder=_flag(record.get("preorder")),
        )
    except InvalidInputError as exc:
        return RejectedRow(line, str(exc), raw)


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _entity_ids(record: Mapping[str | None, Any]) -> tuple[str | None, str | None]:
    product_id = _text(record.get("product_id")) or None
    inventory_id = _text(record.get("inventory_id")) or None
    for field, value in (("product_id", product_id), ("inventory_id", inventory_id)):
        if isinstance(value, str) and _SURROGATE.search(value):  # "\ud800" in JSON: no text
            raise InvalidInputError(field, value, "must be valid Unicode text")
    if (product_id is None) == (inventory_id is None):
        raise InvalidInputError(
            "product_id", product_id, "give exactly one of product_id and inventory_id"
        )
    if product_id is not None:
        return check_entity_id("product_id", product_id), None
    return None, check_entity_id("inventory_id", inventory_id)


def _delta(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):  # int() takes "٣" and refuses "²"
            raise InvalidInputError("delta", value, "must be a whole number")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError("delta", value, "must be a whole number")
    if value == 0 or abs(value) > MAX_QUANTITY:
        raise InvalidInputError("delta", value, f"must be nonzero and within ±{MAX_QUANTITY}")
    return value


def _flag(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInputError("preorder", value, "must be true or false")

"""Streaming reader of bulk adjustment files: CSV or JSON Lines, one delta per row.

Columns (CSV header or JSON keys): what the delta applies to, ``delta``, and optionally
``preorder``, ``location_id`` and ``site`` (the site the row is for: an app instance id, or a
site id with an API key; a file that names sites is run through the hub, see
:func:`names_sites`). What it applies to is one of: ``product_id`` and
``variant_id``; ``inventory_id`` (on V1 an inventory id, on V3 an inventory item id) and
``variant_id``; ``sku`` alone (a V3 variant's SKU). ``location_id`` picks a V3 location (default:
the site's default location). CSV header names match whatever their case (``Product_ID``),
JSON keys exactly. Rows are read one at a time, so memory stays constant however long
the file is. A row that cannot be used becomes a :class:`RejectedRow` with its line number and
the reason, and reading goes on. Open the file with ``errors="surrogateescape"``: a row holding
bytes that are not UTF-8 is then rejected like any other bad row instead of ending the read.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from ..core.validation import check_entity_id, check_variant_id
from ..errors import InvalidInputError
from ..models import MAX_QUANTITY
from ..settings import is_int

__all__ = ["DeltaRow", "RejectedRow", "RowFormat", "detect_format", "names_sites", "read_rows"]

RowFormat = Literal["csv", "jsonl"]

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})
_UNDECODED = re.compile("[\udc80-\udcff]")
"""What ``surrogateescape`` makes of a byte that is not UTF-8."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN = 1_000
"""Characters of a rejected row's text and reason kept in the rejects file."""
_DELTA_DIGITS = len(str(MAX_QUANTITY))


@dataclass(frozen=True, slots=True)
class DeltaRow:
    """One usable row: the delta to apply to one variant (on V3: at one location)."""

    line: int
    product_id: str | None
    inventory_id: str | None
    variant_id: str | None
    """Given with ``product_id`` or ``inventory_id``; never with ``sku``."""
    delta: int
    preorder: bool
    location_id: str | None = None
    sku: str | None = None
    site: str | None = None
    """The site named by the row (``None``: the run's default site)."""
    raw: str = dataclasses.field(default="", compare=False)
    """The row's text, for the rejects file when the server refuses it."""


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
    lines = _Lines(stream)
    reader = csv.DictReader(lines)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InvalidInputError("header", _shown(lines.record()), f"not CSV: {exc}") from None
    if header is None:  # an empty file: no rows, as an empty JSON Lines file
        return
    reader.fieldnames = _column_names(header)
    while True:
        lines.start_record()
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field past csv.field_size_limit(): this row only
            raw = lines.record()
            lines.skip_rest_of_record()
            yield _rejected(lines.count, f"not readable as CSV: {exc}", raw)
            continue
        yield _csv_row(lines.count, record)


def _csv_row(line: int, record: dict[str | None, Any]) -> DeltaRow | RejectedRow:
    raw = _raw_csv(record)
    if (undecoded := _not_utf8(line, raw)) is not None:
        return undecoded
    if None in record:  # more cells than header columns
        return _rejected(line, "more cells than the header has columns", raw)
    return _parse(line, record, raw)


class _Lines:
    """The stream's physical lines as the csv reader takes them: counted (``count`` is the
    line a record ends on), and the current record's kept, so that a record the reader fails
    on can be skipped whole."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._record: list[str] = []
        self.count = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._stream)
        self.count += 1
        self._record.append(line)
        return line

    def start_record(self) -> None:
        self._record.clear()

    def record(self) -> str:
        return "".join(self._record)

    def skip_rest_of_record(self) -> None:
        """Consume the rest of a record the reader failed in. The reader drops the rest of the
        line it failed on and starts a new record on the next line; were that line inside a
        quoted field, the field's text would be read as rows (even a valid one, applied)."""
        state = _START
        for line in self._record:
            state = _quote_state(line, state)
        while state == _QUOTED and (more := next(self._stream, None)) is not None:
            self.count += 1
            state = _quote_state(more, state)


_START, _FIELD, _QUOTED, _QUOTE_IN_QUOTED = "start", "field", "quoted", "quote in quoted"


def _quote_state(text: str, state: str) -> str:
    """Where the csv module's default dialect stands after ``text``, starting from ``state``:
    a quote opens a quoted field only at a field's start, and ``""`` inside one is a quote."""
    for char in text:
        if state == _QUOTED:
            state = _QUOTE_IN_QUOTED if char == '"' else _QUOTED
        elif state == _QUOTE_IN_QUOTED and char == '"':
            state = _QUOTED
        elif char in ",\r\n":
            state = _START
        else:
            state = _QUOTED if state == _START and char == '"' else _FIELD
    return state


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
            yield _rejected(line, f"not valid JSON: {exc.msg}", raw)
            continue
        except RecursionError:
            yield _rejected(line, "not usable JSON: nested too deeply", raw)
            continue
        except ValueError as exc:  # a number of more than sys.get_int_max_str_digits() digits
            yield _rejected(line, f"not usable JSON: {str(exc).split(';')[0]}", raw)
            continue
        if not isinstance(record, dict):
            yield _rejected(line, "a row must be a JSON object", raw)
            continue
        yield _parse(line, record, raw)


def _rejected(line: int, reason: str, raw: str) -> RejectedRow:
    """A rejected row, its reason and text cut short: a row too big to read would be too big
    for the spreadsheet that opens the rejects file too."""
    return RejectedRow(line, _shown(reason), _shown(raw))


def _shown(text: str) -> str:
    """``text``, or its start and end around how long it is (a reason ends with the why)."""
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN - 200]} [... {len(text):,} characters in all ...] {text[-200:]}"


def _not_utf8(line: int, raw: str) -> RejectedRow | None:
    """The rejection of a row holding bytes that are not UTF-8 (decoded as surrogate escapes)."""
    found = _UNDECODED.search(raw)
    if found is None:
        return None
    shown = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    byte, column = ord(found.group()) - 0xDC00, found.start() + 1
    reason = f"not UTF-8 text: byte 0x{byte:02X} at column {column}; save the file as UTF-8"
    return _rejected(line, reason, shown)


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
    missing = [] if "delta" in names else ["delta"]
    if not names & {"product_id", "inventory_id", "sku"}:
        missing.append("product_id, inventory_id or sku")
    elif "variant_id" not in names and "sku" not in names:
        missing.append("variant_id")  # every row would be refused
    return ", ".join(missing)


def _raw_csv(record: Mapping[str | None, Any]) -> str:
    return ",".join(str(v) for k, v in record.items() if k is not None and v is not None)


def _parse(line: int, record: Mapping[str | None, Any], raw: str) -> DeltaRow | RejectedRow:
    try:
        product_id, inventory_id, sku = _entity_ids(record)
        return DeltaRow(
            line=line,
            product_id=product_id,
            inventory_id=inventory_id,
            variant_id=_variant_id(record, sku),
            delta=_delta(record.get("delta")),
            preorder=_flag(record.get("preorder")),
            location_id=_location_id(record),
            sku=sku,
            site=_site(record),
            raw=raw,
        )
    except InvalidInputError as exc:
        return _rejected(line, str(exc), raw)


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _entity_ids(
    record: Mapping[str | None, Any],
) -> tuple[str | None, str | None, str | None]:
    """(product_id, inventory_id, sku): exactly one of them given."""
    given = {
        field: value
        for field in ("product_id", "inventory_id", "sku")
        if (value := _text(record.get(field))) not in (None, "")
    }
    for field, value in given.items():
        if isinstance(value, str) and _SURROGATE.search(value):  # "\ud800" in JSON: no text
            raise InvalidInputError(field, value, "must be valid Unicode text")
    if len(given) != 1:
        field = next(iter(given), "product_id")
        raise InvalidInputError(
            field, given.get(field), "give exactly one of product_id, inventory_id and sku"
        )
    [(field, value)] = given.items()
    checked = _sku(value) if field == "sku" else check_entity_id(field, value)
    return (
        checked if field == "product_id" else None,
        checked if field == "inventory_id" else None,
        checked if field == "sku" else None,
    )


def _sku(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError("sku", value, "must be text")
    return value


def _variant_id(record: Mapping[str | None, Any], sku: str | None) -> str | None:
    """Required with a product or inventory id (as the adjuster takes them); refused with a
    SKU, which names its variant (two could disagree)."""
    value = _text(record.get("variant_id"))
    if value in (None, "") and sku is not None:
        return None
    if sku is not None:
        raise InvalidInputError("variant_id", value, "give either sku or variant_id, not both")
    return check_variant_id(value, field="variant_id")


def _location_id(record: Mapping[str | None, Any]) -> str | None:
    value = _text(record.get("location_id"))
    if value in (None, ""):
        return None
    return check_variant_id(value, field="location_id")  # a location id is a GUID too


_SITE_MAX = 200
_SITE_TEXT = re.compile(r"[!-~]+")
"""Printable ASCII without spaces: a site goes into a ``wix-site-id`` header or a token
request as it is (Wix's site and instance ids are GUIDs)."""


def _site(record: Mapping[str | None, Any]) -> str | None:
    value = _text(record.get("site"))
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > _SITE_MAX or not _SITE_TEXT.fullmatch(value):
        raise InvalidInputError(
            "site", value, f"must be a site or instance id (printable, no spaces, <= {_SITE_MAX})"
        )
    return value


def names_sites(stream: TextIO, fmt: RowFormat) -> bool:
    """Whether a file names sites, read from its start only: a CSV header with a ``site``
    column, or a first JSON Lines row with a ``site`` key."""
    if fmt == "csv":
        try:
            header = next(csv.reader(_Lines(stream)), None)
        except csv.Error:  # the run reports the header
            return False
        return header is not None and "site" in {name.strip().lower() for name in header}
    for text in stream:
        if text.strip():
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                return False
            return isinstance(record, dict) and "site" in record
    return False


def _delta(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):  # int() takes "٣" and refuses "²"
            raise InvalidInputError("delta", value, "must be a whole number")
        if len(digits.lstrip("0")) > _DELTA_DIGITS:  # int() refuses over 4,300 digits
            raise InvalidInputError("delta", value, f"must be within ±{MAX_QUANTITY}")
        value = int(text)
    if not is_int(value):
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

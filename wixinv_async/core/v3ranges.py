"""productId ranges for the Catalog V3 fan-out crawler: splitting, cutting pages. Pure code.

V3 pages by cursor, and a cursor is sequential: parallel cursors need disjoint filters. The
field they split on must take range operators *and* be sortable, so that each cursor reads
its range in an order that never changes. The typings (``InventoryItemQuerySpec.wql``) give
``_id``, ``variantId`` and ``locationId`` every operator but ``sort: 'NONE'``; ``productId``
and ``_createdDate`` both take every operator and sort both ways. This module splits on
**productId**:

- it is a random GUID, so an even split of the 128-bit GUID space is balanced without any
  query to find the bounds or to estimate density (``createdDate`` clusters in bursts, and a
  migrated site may give all its items one date, which no range can split);
- it never changes (an item does not move to another product), so a cursor sorted by
  ``productId`` reads every item that exists throughout exactly once, whatever else changes.

A segment is the string range ``[lower, upper)`` of productIds (``None``: unbounded). The
segments of a crawl, in order, tile all strings exactly once: ``[None, b1), [b1, b2), ...,
[bm, None)``. Any productId, a GUID or not, so belongs to exactly one segment. Segment 0 is
the crawl's first query, unbounded, read before the split; once its first page is in, the
split puts ``b1`` above the last productId read, so what segment 0 read is its own, and its
cursor (whose query has no upper bound) goes on until a page crosses ``b1``: the part of
that page at or above ``b1`` belongs to segment 1 and is dropped (:func:`cut_page`).

Canonical GUIDs (lowercase, 8-4-4-4-12) compare as strings exactly as their 128-bit values
compare, which is what makes :func:`split_after`'s arithmetic meaningful; the comparison the
server makes on productId (a string sort) decides membership, and the crawler compares the
same way. Items of one product share a productId: pages ascend *non-strictly*.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from ..errors import TransportError

__all__ = [
    "GUID_SPACE",
    "KeyRange",
    "RangeSegment",
    "cut_page",
    "estimate_items",
    "guid_text",
    "guid_value",
    "range_filter",
    "ranges_between",
    "split_after",
]

GUID_SPACE: Final = 1 << 128
_GUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def guid_value(text: str) -> int | None:
    """The 128-bit value of a canonical lowercase GUID, or ``None`` for any other string."""
    if not _GUID.fullmatch(text):
        return None
    return int(text.replace("-", ""), 16)


def guid_text(value: int) -> str:
    """The canonical GUID of a value in ``[0, 2**128)``."""
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class KeyRange(NamedTuple):
    """productIds ``[lower, upper)``; ``None`` leaves that side open."""

    lower: str | None
    upper: str | None

    def holds(self, key: str) -> bool:
        return (self.lower is None or key >= self.lower) and (
            self.upper is None or key < self.upper
        )


def split_after(last: str, hi: str, parts: int) -> list[str]:
    """At most ``parts - 1`` boundaries, ascending, evenly spaced over the GUIDs in
    ``(last, hi]``: each above ``last`` and at most ``hi``. None when either is not a
    canonical GUID or the space between them is too small to split into ``parts``."""
    a, b = guid_value(last), guid_value(hi)
    if a is None or b is None or parts < 2 or b - a < parts:
        return []
    span = b - a
    return [guid_text(a + 1 + span * i // parts) for i in range(1, parts)]


def ranges_between(boundaries: Sequence[str]) -> list[KeyRange]:
    """The ranges that ascending ``boundaries`` cut all strings into (one more than them)."""
    edges: list[str | None] = [None, *boundaries, None]
    return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def estimate_items(first: str, last: str, hi: str, count: int) -> int | None:
    """The items a catalog holds, from a first page of ``count`` items whose productIds
    run from ``first`` to ``last``, the highest productId being ``hi``: GUIDs are uniform,
    so the page's share of the GUID span is its share of the items. ``None`` when that
    cannot be told (not GUIDs, one product on the page)."""
    a, b, top = guid_value(first), guid_value(last), guid_value(hi)
    if a is None or b is None or top is None or b <= a or count <= 0:
        return None
    return max(count, count * (top - a) // (b - a))


def range_filter(
    user_filter: Mapping[str, Any] | None, key_range: KeyRange
) -> dict[str, Any] | None:
    """The V3 filter reading ``key_range`` AND ``user_filter`` (``None``: no filter at all)."""
    clauses: list[Any] = [] if user_filter is None else [dict(user_filter)]
    if key_range.lower is not None:
        clauses.append({"productId": {"$gte": key_range.lower}})
    if key_range.upper is not None:
        clauses.append({"productId": {"$lt": key_range.upper}})
    if not clauses:
        return None
    if len(clauses) == 1:
        return dict(clauses[0])
    return {"$and": clauses}


def cut_page(keys: Sequence[str], after: str | None, key_range: KeyRange) -> int:
    """How many of a page's productIds (a prefix) belong to ``key_range``.

    The page must ascend (non-strictly) from ``after``, the last productId its segment read,
    and start inside the range; a page that does not is a malformed answer
    (:class:`~wixinv_async.errors.TransportError`), never silently trimmed.
    """
    previous = after if after is not None else key_range.lower
    for index, key in enumerate(keys):
        if previous is not None and key < previous:
            raise TransportError(
                f"malformed Query Inventory Items page: productId {key!r} (item {index}) is "
                f"below {previous!r} (a page sorted by productId must ascend)"
            )
        previous = key
    upper = key_range.upper
    if upper is None:
        return len(keys)
    keep = 0
    for key in keys:
        if key >= upper:
            break
        keep += 1
    return keep


@dataclass(slots=True, eq=False)
class RangeSegment:
    """One cursor's share of a V3 crawl: the productIds of ``range``, read by the server's
    cursor in productId order. ``cursor`` None and ``done`` false: the first read is due."""

    key: int
    """Unique within its crawl, in range order."""
    range: KeyRange
    cursor: str | None = None
    last: str | None = None
    """The last productId read."""
    items: int = 0
    pages: int = 0
    done: bool = False

    def record_page(self, keys: Sequence[str], next_cursor: str | None) -> int:
        """Account for a page answering this segment's read; how many of its items to keep
        (a prefix). The segment is done when the server has no next page, the page is
        empty, or it crossed the segment's upper bound."""
        if self.done:
            raise RuntimeError(f"segment {self.key} is done")
        keep = cut_page(keys, self.last, self.range)
        self.pages += 1
        if keep:
            self.last = keys[keep - 1]
            self.items += keep
        if keep < len(keys) or not keys or next_cursor is None:
            self.done, self.cursor = True, None
        else:
            self.cursor = next_cursor
        return keep

    def narrow(self, upper: str) -> None:
        """Lower the upper bound to ``upper`` (above everything read): the split after the
        first page hands the rest of the space to new segments."""
        if self.last is not None and upper <= self.last:
            raise ValueError(f"upper {upper!r} must be above the last productId {self.last!r}")
        self.range = KeyRange(self.range.lower, upper)

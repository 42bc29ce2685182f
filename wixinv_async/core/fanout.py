"""How many keyset cursors a crawl should run: as many as pay for themselves, measured.

Pure code, no event loop: the crawler measures, this module decides.

A cursor reads one page per round trip of ``L`` seconds (the latency). The site answers at
most one request per ``I`` seconds (the slot interval of the client's rate limiter, or a
server that answers concurrent requests one after another). ``k`` cursors read
``min(k / L, 1 / I)`` pages a second, so past ``k = L / I`` a cursor adds no speed, only
requests: every cursor ends its share on a partial page, and a cursor over an empty stretch of
numericIds spends a request to learn that. Against Wix's 200 requests a minute
(``I`` = 0.3 s) and a latency under 0.3 s, one cursor already spends the whole budget.

Neither number is configured; both are measured from the crawl's own first queries. Its two
bound queries (``limit=1``, one ascending, one descending) are sent together:

- the first answer came ``d1`` seconds after both were sent: an upper bound of ``L`` (it may
  have waited for a slot behind earlier requests of the site);
- the second answer came ``g`` seconds after the first: the site's slot interval when it paces
  (the two wait in line one slot apart), close to zero when nothing paces them.

From ``r = d1 / g``:

- ``r <= 1 + SLACK``: even an upper bound of the latency fits in one slot: **one cursor**;
- ``r >= most``: fan out to ``most`` cursors at once;
- in between the bound is ambiguous (``d1`` may hold a wait), so one cursor reads the first
  page alone and takes ``d2`` seconds: ``max(L, I)`` when paced (the cursor asks again at once
  and waits out the rest of the slot), ``L`` when not. Then ``k = ceil(min(d1, d2) / g - SLACK)``
  (:func:`probed_fanout`).

``SLACK`` (0.2) accepts a cursor that gets 1 / 1.2 = 83 % of the budget rather than pay for a
second one. Whatever the pace, a cursor is only worth it with ``MIN_PAGES_PER_CURSOR`` pages to
read (the catalog's size comes with the first bound query's ``totalResults``): a 5,000-item
catalog is not read by 256 cursors of 20 items.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

__all__ = [
    "MIN_PAGES_PER_CURSOR",
    "SLACK",
    "FanoutChoice",
    "catalog_cap",
    "first_fanout",
    "probed_fanout",
]

SLACK: Final = 0.2
"""How far above one slot the latency may be before a second cursor pays (a fraction)."""
MIN_PAGES_PER_CURSOR: Final = 4
"""Pages of items each cursor should have to read, on average, before fanning out to it."""


class FanoutChoice(NamedTuple):
    """What the bound queries' timing says."""

    cursors: int
    """Cursors to run (with ``probe``: the most that may run once the probe page is in)."""
    probe: bool
    """Ambiguous: read one page with one cursor, then decide with :func:`probed_fanout`."""


def catalog_cap(most: int, items: int | None, page_size: int) -> int:
    """At most ``most`` cursors, and no more than ``items`` give each ``MIN_PAGES_PER_CURSOR``
    pages (``items`` None: unknown, no cap)."""
    if items is None:
        return most
    pages = math.ceil(items / page_size)
    return max(1, min(most, pages // MIN_PAGES_PER_CURSOR))


def first_fanout(most: int, items: int | None, page_size: int, d1: float, g: float) -> FanoutChoice:
    """The decision from the bound queries: ``d1`` the first answer's time, ``g`` the gap to
    the second (seconds, both >= 0)."""
    cap = catalog_cap(most, items, page_size)
    if cap == 1:
        return FanoutChoice(1, probe=False)
    ratio = _ratio(d1, g)
    if ratio <= 1 + SLACK:
        return FanoutChoice(1, probe=False)
    if ratio >= cap:
        return FanoutChoice(cap, probe=False)
    return FanoutChoice(cap, probe=True)


def probed_fanout(most: int, items: int | None, page_size: int, latency: float, g: float) -> int:
    """The decision after the probe page: ``latency`` the smaller of ``d1`` and the probe's
    time, ``g`` the bound queries' gap."""
    cap = catalog_cap(most, items, page_size)
    ratio = _ratio(latency, g)
    if ratio >= cap:
        return cap
    return max(1, min(cap, math.ceil(ratio - SLACK)))


def _ratio(latency: float, g: float) -> float:
    """Latency in slots; answers that came together (``g`` == 0) mean nothing paces them."""
    if g <= 0:
        return math.inf
    return max(0.0, latency) / g

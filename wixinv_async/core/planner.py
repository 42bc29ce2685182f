"""The planner: pending entries -> increment and decrement requests, with no event loop.

- :func:`plan` packs the entries of one kind into the fewest requests of at most ``max_batch``
  entries, never one variant twice in a request. A variant can have two keys of one kind (with and
  without ``preorder``), so the minimum is ``max(ceil(n / max_batch), 2 if such a pair exists
  else 1)``, and :func:`plan` always reaches it (:func:`minimum_requests`).
- :func:`select` decides, from the table and the time, what to send *now*: a full batch as soon
  as ``max_batch`` entries of a kind are ready; the oldest entries once the oldest has waited
  ``linger``; everything on ``flush()`` and on close. It also hands back the entries that netted
  to zero, which are committed without a request, and the time of the next linger deadline.
- :func:`increment_entries` / :func:`decrement_entries` build a batch's wire entries.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import NamedTuple, TypeVar

from ..models import DecrementData, IncrementData
from ..outcomes import FlushReason, Kind, SentEntry
from .table import DeltaTable, Entry, Key, wire_identity

__all__ = [
    "Planned",
    "Selection",
    "decrement_entries",
    "increment_entries",
    "kind_of",
    "minimum_requests",
    "plan",
    "select",
    "sent_entry",
]

T = TypeVar("T")


class Planned(NamedTuple):
    """One request to send: its kind, why it goes now, and its entries."""

    kind: Kind
    reason: FlushReason
    entries: list[Entry]


class Selection(NamedTuple):
    """What :func:`select` decided."""

    batches: list[Planned]
    noops: list[Entry]
    """Entries that netted to zero: committed without a request."""
    deadline: float | None
    """When the oldest entry left pending reaches ``linger`` (``None``: nothing pending)."""


def kind_of(net: int) -> Kind:
    """An entry with a positive net is an increment, a negative one a decrement."""
    return "increment" if net > 0 else "decrement"


def plan(
    items: Sequence[T], max_batch: int, identity: Callable[[T], Hashable] = lambda x: x
) -> list[list[T]]:
    """Pack items of one kind into the fewest chunks of at most ``max_batch``, never two items of
    one identity in a chunk, full chunks first. At most two items may share an identity.

    With ``P`` pairs and ``S`` single items, the sequence ``firsts + singles + seconds`` (the
    seconds in the order of their firsts) puts the two members of a pair ``P + S`` apart;
    chunks of ``max_batch`` then never hold both when ``P + S >= max_batch``, and otherwise
    (``n < 2 * max_batch``) two chunks of ``ceil(n / 2)`` never do.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    firsts: list[T] = []
    seconds: list[T] = []
    seen: dict[Hashable, T] = {}
    for item in items:
        ident = identity(item)
        if ident in seen:
            seconds.append(item)
        else:
            seen[ident] = item
            firsts.append(item)
    paired = {identity(item): item for item in seconds}
    if len(paired) != len(seconds):
        raise ValueError("at most two items may share an identity")
    head = [item for item in firsts if identity(item) in paired]
    seconds = [paired[identity(item)] for item in head]
    singles = [item for item in firsts if identity(item) not in paired]
    sequence = head + singles + seconds
    n = len(sequence)
    if not seconds or len(head) + len(singles) >= max_batch:
        size = max_batch
    else:
        size = math.ceil(n / max(2, math.ceil(n / max_batch)))
    return [sequence[i : i + size] for i in range(0, n, size)]


def minimum_requests(keys_and_nets: Iterable[tuple[Key, int]], max_batch: int) -> int:
    """The fewest requests that can carry these (distinct) keys' nonzero nets."""
    items = list(keys_and_nets)
    total = 0
    for sign in (1, -1):
        keys = [key for key, net in items if net * sign > 0]
        if not keys:
            continue
        idents = [wire_identity(key) for key in keys]
        pairs = len(idents) != len(set(idents))
        total += max(math.ceil(len(keys) / max_batch), 2 if pairs else 1)
    return total


def select(
    table: DeltaTable,
    *,
    now: float,
    linger: float,
    max_batch: int,
    slots: int,
    drain: FlushReason | None = None,
) -> Selection:
    """What to send now, taking the chosen entries out of the table.

    ``slots`` bounds the batches returned for the full and linger triggers (the free request
    slots); a drain (``"flush"`` or ``"close"``) plans every ready entry at once.
    """
    noops: list[Entry] = []
    if drain is not None:
        batches = _select_all(table, max_batch, drain, noops)
    else:
        batches = _select_due(table, now, linger, max_batch, slots, noops)
    return Selection(batches, noops, _deadline(table, linger))


def _identity(entry: Entry) -> Hashable:
    return wire_identity(entry.key)


def _select_all(
    table: DeltaTable, max_batch: int, reason: FlushReason, noops: list[Entry]
) -> list[Planned]:
    ups: list[Entry] = []
    downs: list[Entry] = []
    ready = table.ready
    if not ready[0] and ready[1] + ready[-1] == len(table.entries):
        # Every pending entry is ready and nonzero (no key busy): no per-entry busy test.
        everything = list(table.entries.values())
        if not ready[1] or not ready[-1]:
            (ups if ready[1] else downs).extend(everything)
        else:
            for entry in everything:
                (ups if entry.net > 0 else downs).append(entry)
    else:
        for entry in list(table.ready_entries()):
            if entry.net == 0:
                table.take_resolved(entry)
                noops.append(entry)
            else:
                (ups if entry.net > 0 else downs).append(entry)
    by_kind: dict[Kind, list[Entry]] = {"increment": ups, "decrement": downs}
    batches: list[Planned] = []
    clashes = table.preorders > 0  # else no two keys share a variant: plain chunks will do
    for kind, entries in by_kind.items():
        if clashes:
            chunks = plan(entries, max_batch, _identity)
        else:
            chunks = [entries[i : i + max_batch] for i in range(0, len(entries), max_batch)]
        for chunk in chunks:
            table.take_all(chunk, 1 if kind == "increment" else -1)
            batches.append(Planned(kind, reason, chunk))
    return batches


_KINDS: tuple[tuple[Kind, int], ...] = (("increment", 1), ("decrement", -1))


def _select_due(
    table: DeltaTable, now: float, linger: float, max_batch: int, slots: int, noops: list[Entry]
) -> list[Planned]:
    batches: list[Planned] = []
    for kind, sign in _KINDS:
        while len(batches) < slots and table.ready[sign] >= max_batch:
            # Short only if variant clashes left fewer than max_batch sendable together.
            batches.append(_oldest(table, kind, max_batch, "full"))
    horizon = now - linger
    while len(batches) < slots:
        oldest = _first_due(table, horizon, noops)
        if oldest is None:
            break
        batches.append(_oldest(table, kind_of(oldest.net), max_batch, "linger"))
    return batches


def _oldest(table: DeltaTable, kind: Kind, max_batch: int, reason: FlushReason) -> Planned:
    """Take the oldest ready entries of a kind, at most ``max_batch``, no variant twice."""
    sign = 1 if kind == "increment" else -1
    if table.ready[sign] == len(table.entries) and not table.preorders:
        # Every pending entry is ready and of this kind, no two share a variant: the oldest
        # max_batch, at C speed (the steady state of a one-kind stream).
        picked = list(itertools.islice(table.entries.values(), max_batch))
        table.take_all(picked, sign)
        return Planned(kind, reason, picked)
    picked = []
    clashes = table.preorders > 0
    idents: set[Hashable] = set()
    for entry in table.ready_entries():
        if entry.net * sign <= 0:
            continue
        if clashes:
            ident = wire_identity(entry.key)
            if ident in idents:
                continue
            idents.add(ident)
        picked.append(entry)
        if len(picked) == max_batch:
            break
    table.take_all(picked, sign)
    return Planned(kind, reason, picked)


def _first_due(table: DeltaTable, horizon: float, noops: list[Entry]) -> Entry | None:
    """The oldest ready entry that has lingered long enough; zero nets on the way are noops."""
    zeros: list[Entry] = []
    found: Entry | None = None
    for entry in table.ready_entries():
        if entry.first > horizon:
            break
        if entry.net == 0:
            zeros.append(entry)
            continue
        found = entry
        break
    for entry in zeros:
        table.take_resolved(entry)
        noops.append(entry)
    return found


def _deadline(table: DeltaTable, linger: float) -> float | None:
    for entry in table.ready_entries():
        return entry.first + linger
    return None


# --- wire entries ------------------------------------------------------------------------


def sent_entry(entry: Entry) -> SentEntry:
    """The public view of an entry as sent."""
    return SentEntry(entry.public_key(), entry.net, tuple(entry.tags or ()))


def increment_entries(entries: Sequence[Entry]) -> list[IncrementData]:
    """The wire entries of an increment batch (an absent id left to its ``UNSET`` default)."""
    return [
        IncrementData(product_id=key[0], variant_id=key[2], increment_by=e.net)
        if key[1] is None
        else IncrementData(inventory_id=key[1], variant_id=key[2], increment_by=e.net)
        for e in entries
        for key in (e.key,)
    ]


def decrement_entries(entries: Sequence[Entry]) -> list[DecrementData]:
    """The wire entries of a decrement batch (``preorderRequest`` from the key)."""
    return [
        DecrementData(
            product_id=key[0], variant_id=key[2], decrement_by=-e.net, preorder_request=key[3]
        )
        if key[1] is None
        else DecrementData(
            inventory_id=key[1], variant_id=key[2], decrement_by=-e.net, preorder_request=key[3]
        )
        for e in entries
        for key in (e.key,)
    ]

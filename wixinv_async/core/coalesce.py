"""The delta table: integer stock deltas netted per key, with no event loop.

A *key* is ``(product_id, inventory_id, variant_id, preorder)``: exactly one of the two ids is
set. With ``net_opposite_signs=False`` the sign of the delta joins the key (a fifth element), so
increments and decrements of one variant are kept apart and each decrement can fail on its own.

Every pending key has one :class:`Entry`, the future wire entry: its ``net`` is the sum of the
deltas merged into it, ``count`` how many there were and ``first`` when the oldest arrived. A
delta never makes an entry leave the API's amount range: if it would, it starts a follow-up entry
for the same key (``more``), which goes out in a later request.

``preorder`` only means something on a decrement (Wix's increment has no preorder flag). A
positive delta with ``preorder=True`` is accepted and nets with that variant's preorder
decrements, so giving back a cancelled preorder costs no request; if the preorder key nets
positive, it is sent as a plain increment.

The table also tracks which keys are *busy* (an entry of theirs is in flight): their pending
entry collects deltas but is not sent until the request in flight has an outcome, so the
requests for one key never overtake each other.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import msgspec

from ..errors import InvalidInputError
from ..models import MAX_ID_LENGTH, MAX_QUANTITY
from .validation import check_entity_id, check_variant_id

match_guid: Final = re.compile("[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}").fullmatch
"""The GUID check of ``validation.is_guid`` as a bare match (``None``: no GUID), bound once for
the new-key paths. (A regex match of one id beats the C-level scans that win over many.)"""

__all__ = [
    "MAX_AMOUNT",
    "DeltaKey",
    "DeltaTable",
    "Entry",
    "Key",
    "Outcome",
    "OutcomeStatus",
    "check_delta",
    "match_guid",
    "slot_key",
    "wire_identity",
]

MAX_AMOUNT: Final = MAX_QUANTITY
"""Largest ``incrementBy`` / ``decrementBy`` one entry may carry (and one delta may be)."""

Key = tuple[Any, ...]
"""A table key: ``(product_id, inventory_id, variant_id, preorder)`` plus the sign when not netting
across signs. A plain tuple, so building one costs nothing; :class:`DeltaKey` is its public view."""


class DeltaKey(NamedTuple):
    """The public view of a key: which variant, through which id, and whether a preorder."""

    product_id: str | None
    inventory_id: str | None
    variant_id: str
    preorder: bool


class OutcomeStatus(enum.Enum):
    """What happened to a delta."""

    COMMITTED = "committed"
    """Applied by the server (or netted to zero, which needs no request)."""
    REJECTED = "rejected"
    """Definitely not applied; ``code`` and ``message`` say why."""
    IN_DOUBT = "in_doubt"
    """The request may or may not have been applied: reconcile before retrying."""
    CANCELLED = "cancelled"
    """Never sent: the adjuster was closed with ``abort=True`` or its deadline passed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The outcome of a delta, shared by every delta merged into the same entry."""

    status: OutcomeStatus
    code: str | None = None
    """Wix's code for REJECTED (``NOT_FOUND``, ``INSUFFICIENT_INVENTORY``, ...) or ours."""
    message: str | None = None
    request_id: str | None = None
    """``x-wix-request-id`` of the request that decided it, when there was one."""
    retriable: bool = False
    """For REJECTED: the request was refused for no fault of this delta (credentials refused,
    429 or 503 to the last attempt, a closed client, ``on_send`` failed). Nothing was applied,
    and the same delta may succeed once the cause is fixed. ``False``: the server (or the
    client's validation) refused this delta itself (``NOT_FOUND``, ``INSUFFICIENT_INVENTORY``,
    a field violation...)."""


NOOP: Final = Outcome(OutcomeStatus.COMMITTED, code="NETTED_TO_ZERO")


def slot_key(
    product_id: str | None,
    inventory_id: str | None,
    variant_id: str,
    preorder: bool,
    delta: int,
    net_opposite_signs: bool,
) -> Key:
    """The table key of a delta."""
    if net_opposite_signs:
        return (product_id, inventory_id, variant_id, preorder)
    return (product_id, inventory_id, variant_id, preorder, delta > 0)


def wire_identity(key: Key) -> Hashable:
    """What the server sees as one variant: two keys with one identity never share a request."""
    return key[:3]


class Entry(msgspec.Struct, eq=False, gc=False):
    """One future wire entry: the deltas of one key merged so far, and their shared outcome.

    Attributes are read by the adjuster and the planner; user code reads ``outcome`` only.
    ``Entry(key, now)`` is an empty entry; ``Entry(key, now, delta, 1)`` one holding ``delta``.

    A (mutable, identity-compared) msgspec Struct rather than a ``__slots__`` class, for the cost
    of a new key: its C constructor costs a third of a Python ``__init__``, and ``gc=False``
    keeps the many short-lived entries out of the cycle collector, whose passes over them cost
    as much again (measured end to end). An entry holds no cycle of its own; the two a user
    could make are broken by the adjuster: a tag referring to its own ticket (tags are dropped
    once reported) and a task awaiting a ticket (the future's callbacks go with the outcome).
    An adjuster dropped without ``close()`` while tasks await its tickets leaks them instead
    of having them collected.
    """

    key: Key
    first: float
    """When the oldest of its deltas arrived."""
    net: int = 0
    count: int = 0
    tags: list[object] | None = None
    more: Entry | None = None
    """A follow-up entry for the same key, for deltas that would overflow this one's amount."""
    outcome: Outcome | None = None
    waiter: Any = None
    """The shared future, made only when someone awaits."""

    def merge(self, delta: int, tag: object) -> None:
        """Add one delta (and its tag, kept only when given)."""
        self.net += delta
        self.count += 1
        if tag is not None:
            if self.tags is None:
                self.tags = [tag]
            else:
                self.tags.append(tag)

    def public_key(self) -> DeltaKey:
        """The key without the sign element of non-netting tables."""
        return DeltaKey(*self.key[:4])

    def __repr__(self) -> str:
        state = self.outcome.status.name if self.outcome else "pending"
        return f"<{type(self).__name__} {self.public_key()} net={self.net} n={self.count} {state}>"


class DeltaTable:
    """Pending entries by key, in arrival order, with counts of the entries ready to send."""

    __slots__ = (
        "_factory",
        "busy",
        "chained",
        "entries",
        "net_opposite_signs",
        "preorders",
        "ready",
    )

    def __init__(self, *, net_opposite_signs: bool = True, factory: type[Entry] = Entry) -> None:
        self.net_opposite_signs = net_opposite_signs
        self._factory = factory
        self.entries: dict[Key, Entry] = {}
        """The head entry of every pending key (follow-ups hang off ``Entry.more``)."""
        self.busy: set[Key] = set()
        """Keys with an entry in flight."""
        self.ready = [0, 0, 0]
        """Non-busy head entries by sign of their net: index 0 zero, 1 positive, -1 negative.
        Updated in place (drivers may hold on to the list)."""
        self.preorders = 0
        """Pending keys with ``preorder=True``: while none is, no two keys share a variant."""
        self.chained = 0
        """Pending entries with a follow-up (``more``): while none has, taking skips the check."""

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: Key, delta: int, now: float, tag: object = None) -> Entry:
        """Merge a (validated) delta into the key's entry and return that entry."""
        head = self.entries.get(key)
        counted = key not in self.busy
        if head is None:
            head = self._factory(key, now)
            self.entries[key] = head
            self.preorders += key[3] is True
            if counted:
                self.ready[0] += 1
        entry = head
        while not -MAX_AMOUNT <= entry.net + delta <= MAX_AMOUNT:
            if entry.more is None:
                entry.more = self._factory(key, now)
                self.chained += 1
            entry = entry.more
        if entry is head and counted:
            old, new = head.net, head.net + delta
            before, after = (old > 0) - (old < 0), (new > 0) - (new < 0)
            if before != after:
                self.ready[before] -= 1
                self.ready[after] += 1
        entry.merge(delta, tag)
        return entry

    def insert(self, key: Key, delta: int, now: float, tag: object = None) -> Entry:
        """The first entry of a key that is not pending (the caller has checked): ``add``
        without the merging, for the cost of a new key."""
        entry = self._factory(key, now, delta, 1, None if tag is None else [tag])
        self.entries[key] = entry
        self.preorders += key[3] is True
        if key not in self.busy:
            self.ready[1 if delta > 0 else -1] += 1
        return entry

    def ready_entries(self) -> Iterator[Entry]:
        """Head entries that may be sent now (their key is not busy), oldest first."""
        busy = self.busy
        if not busy:
            yield from self.entries.values()
            return
        for key, entry in self.entries.items():
            if key not in busy:
                yield entry

    def take(self, entry: Entry) -> None:
        """Remove a ready head entry to send it (or resolve it); its key becomes busy."""
        self.take_all([entry])

    def take_all(self, entries: Sequence[Entry], sign: int | None = None) -> None:
        """``take`` each of ``entries`` (ready head entries), in one pass: a batch's worth.

        ``sign``: the caller knows every net has this sign (1 or -1), as in a planned batch, so
        the ready count drops at once instead of entry by entry.
        """
        ready, table = self.ready, self.entries
        keys = [entry.key for entry in entries]
        if sign is None:
            for entry in entries:
                net = entry.net
                ready[(net > 0) - (net < 0)] -= 1
        else:
            ready[sign] -= len(keys)
        for key in keys:
            del table[key]
        if self.chained:
            for entry in entries:
                if entry.more is not None:
                    table[entry.key], entry.more = entry.more, None
                    self.chained -= 1
        if self.preorders:
            self.preorders -= sum(
                1 for entry in entries if entry.key[3] is True and entry.key not in table
            )
        self.busy.update(keys)

    def take_resolved(self, entry: Entry) -> None:
        """Remove a ready head entry that needs no request (it netted to zero)."""
        self.take(entry)
        self.release(entry.key)

    def release(self, key: Key) -> None:
        """The key's entry in flight has its outcome: its pending entry may go now."""
        self.release_all((key,))

    def release_all(self, keys: Sequence[Key]) -> None:
        """``release`` each of ``keys``, in one pass: a settled batch's worth."""
        ready, table = self.ready, self.entries
        self.busy.difference_update(keys)
        if len(table) == ready[0] + ready[1] + ready[-1]:
            return  # every pending head is counted already: none waits for a busy key
        get = table.get
        for key in keys:
            head = get(key)
            if head is not None:
                net = head.net
                ready[(net > 0) - (net < 0)] += 1

    def pop_all(self) -> list[Entry]:
        """Remove every pending entry, follow-ups included (to cancel them)."""
        out: list[Entry] = []
        for head in self.entries.values():
            entry: Entry | None = head
            while entry is not None:
                out.append(entry)
                following, entry.more = entry.more, None
                entry = following
        self.entries.clear()
        self.ready[:] = (0, 0, 0)
        self.preorders = 0
        self.chained = 0
        return out

    def pending(self) -> Iterator[Entry]:
        """Every pending entry, follow-ups included."""
        for head in self.entries.values():
            entry: Entry | None = head
            while entry is not None:
                yield entry
                entry = entry.more


def check_delta(
    product_id: object, inventory_id: object, variant_id: object, preorder: object, delta: object
) -> None:
    """The checks of a submit; raises InvalidInputError naming the field and value."""
    if (
        type(delta) is int
        and delta
        and -MAX_AMOUNT <= delta <= MAX_AMOUNT
        and type(preorder) is bool
        and type(variant_id) is str
        and match_guid(variant_id) is not None
    ):
        entity = product_id if inventory_id is None else inventory_id
        if (
            (product_id is None) != (inventory_id is None)
            and type(entity) is str
            and 0 < len(entity) <= MAX_ID_LENGTH
            and entity.isascii()
        ):
            return  # the common case, checked without building error messages
    _explain_delta(product_id, inventory_id, variant_id, preorder, delta)


def _explain_delta(
    product_id: object, inventory_id: object, variant_id: object, preorder: object, delta: object
) -> None:
    """The full checks, raising with the offending field and value."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise InvalidInputError("delta", delta, "must be an int (not a bool or a float)")
    if delta == 0 or not -MAX_AMOUNT <= delta <= MAX_AMOUNT:
        raise InvalidInputError("delta", delta, f"must be nonzero and within ±{MAX_AMOUNT}")
    if (product_id is None) == (inventory_id is None):
        raise InvalidInputError(
            "product_id", product_id, "give exactly one of product_id and inventory_id"
        )
    if product_id is not None:
        check_entity_id("product_id", product_id)
    else:
        check_entity_id("inventory_id", inventory_id)
    check_variant_id(variant_id, field="variant_id")
    if not isinstance(preorder, bool):
        raise InvalidInputError("preorder", preorder, "must be a bool")

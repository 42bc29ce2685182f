"""The delta table: integer stock deltas netted per key, with no event loop.

A *key* is ``(product_id, inventory_id, variant_id, preorder)``: exactly one of the two ids is
set. With ``net_opposite_signs=False`` the sign of the delta joins the key (a fifth element), so
increments and decrements of one variant are kept apart and each decrement can fail on its own.
A delta with a ``location_id`` or a ``sku`` (Catalog V3) has ``(location_id, sku)`` appended
last (so the common key keeps its shape and cost; :func:`key_location` and :func:`key_sku`
read them). A ``sku`` key has neither product nor inventory id nor variant id: the V3 writer
resolves it.

Every pending key has one :class:`Entry`, the future wire entry: its ``net`` is the sum of the
deltas merged into it, ``count`` how many there were and ``first`` when the oldest arrived. A
delta never makes an entry leave the API's amount range: if it would, it starts a follow-up entry
for the same key (``more``), which goes out in a later request.

``preorder`` only means something on a decrement (Wix's increment has no preorder flag). A
positive delta with ``preorder=True`` is accepted and nets with that variant's preorder
decrements, so giving back a cancelled preorder costs no request; if the preorder key nets
positive, it is sent as a plain increment.

The table is the only owner of the entries, of the *busy* keys (an entry of theirs is in
flight: their pending entry collects deltas but is not sent until the request in flight has an
outcome, so one key's requests never overtake each other) and of the *ready* counts (non-busy
head entries by sign of their net). :meth:`DeltaTable.submit` is the one way in: it checks,
merges or inserts, and tells the driver (``wake``) when a kind's ready count reaches
``wake_at``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Final, NoReturn, Protocol

import msgspec

from ..errors import AdjusterClosed, AdjusterFull, InvalidInputError
from ..models import MAX_ID_LENGTH, MAX_QUANTITY
from ..outcomes import DeltaKey, Outcome
from ..settings import is_int
from .validation import check_entity_id, check_variant_id

__all__ = [
    "MAX_AMOUNT",
    "NEVER",
    "Clock",
    "DeltaTable",
    "Entry",
    "Key",
    "any_v3_target",
    "check_delta",
    "key_location",
    "key_sku",
    "wire_identity",
]

MAX_AMOUNT: Final = MAX_QUANTITY
"""Largest ``incrementBy`` / ``decrementBy`` one entry may carry (and one delta may be)."""
_MIN_AMOUNT: Final = -MAX_AMOUNT
NEVER: Final = 1 << 62
"""A ``wake_at`` no ready count reaches (an int: comparing two ints is the fast path)."""
_GUID_CACHE: Final = 1 << 18
"""Variant ids remembered as valid GUIDs (about 30 MB at most); the set starts over when full."""

_match_guid: Final = re.compile("[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}").fullmatch
_GUIDS: Final[set[str]] = set()
"""Variant ids already matched as GUIDs, shared by every table of the process (whether a string
is a GUID never changes): a set lookup instead of the regex for an id seen before."""


_KEY_CACHE: Final = 1 << 17
"""Keys remembered as checked (about 35 MB at most, with the ids they keep alive: measured
with distinct products and variants); the set starts over when full."""
_KEYS: Final[set[tuple[Any, ...]]] = set()
"""Keys submitted by id (not by SKU) whose ids passed the checks, shared by every table of the
process: a stream's keys recur, and one set lookup replaces the checks of a key seen before."""


def _learn_guid(variant_id: str) -> bool:
    """Whether ``variant_id`` is a GUID, remembering it if so."""
    if _match_guid(variant_id) is None:
        return False
    if len(_GUIDS) >= _GUID_CACHE:
        _GUIDS.clear()
    _GUIDS.add(variant_id)
    return True


_PLAIN: Final[dict[Any, dict[Any, Key]]] = {}
"""The checked keys of the commonest shape, ``(product_id, None, variant_id, False)``, by
product id and variant id: a delta finds its key with two lookups of strings (whose hashes
are cached), without making a tuple. Measured with callgrind (``callgrind_hub.py``): a fresh
key tuple per delta cost its allocation, a hash of it per lookup, an element by element
comparison on every hit, and the cycle collector's passes (each new key's tuple is tracked),
about a sixth of the hub's client CPU at full budget. Shared by every table of the process;
it starts over when it holds ``_KEY_CACHE`` keys."""
_PLAIN_SIZE = [0]


def _learn_key(key: Key) -> None:
    """Remember a key whose ids passed the checks."""
    if len(key) == 4 and key[1] is None and key[3] is False:
        if _PLAIN_SIZE[0] >= _KEY_CACHE:
            _PLAIN.clear()
            _PLAIN_SIZE[0] = 0
        variants = _PLAIN.get(key[0])
        if variants is None:
            variants = _PLAIN[key[0]] = {}
        if key[2] not in variants:
            _PLAIN_SIZE[0] += 1
        variants[key[2]] = key
        return
    if len(_KEYS) >= _KEY_CACHE:
        _KEYS.clear()
    _KEYS.add(key)


Key = tuple[Any, ...]
"""A table key: ``(product_id, inventory_id, variant_id, preorder)`` plus the sign when not netting
across signs. A plain tuple, so building one costs nothing; :class:`DeltaKey` is its public view."""


class Clock(Protocol):
    """Where new keys' arrival times come from (the event loop fits)."""

    def time(self) -> float: ...


def wire_identity(key: Key) -> Hashable:
    """What the server sees as one variant: two keys with one identity never share a request."""
    if len(key) > 5:
        return (*key[:3], key[-2], key[-1])
    return key[:3]


def key_location(key: Key) -> str | None:
    """The key's V3 location id (``None``: the site's default location)."""
    return key[-2] if len(key) > 5 else None


def key_sku(key: Key) -> str | None:
    """The key's SKU, when the delta was submitted by SKU."""
    return key[-1] if len(key) > 5 else None


_key_of: Final = operator.attrgetter("key")


def any_v3_target(entries: Iterable[Entry]) -> bool:
    """Whether any entry's key names a location or a SKU (only such keys are longer than 5),
    at C speed: a V1 batch asks it of every entry."""
    return max(map(len, map(_key_of, entries)), default=0) > 5


class Entry(msgspec.Struct, eq=False, gc=False):
    """One future wire entry: the deltas of one key merged so far, and their shared outcome.

    ``Entry(key, now)`` is an empty entry; ``Entry(key, now, delta, 1)`` one holding ``delta``.

    A (mutable, identity-compared) msgspec Struct rather than a ``__slots__`` class, for the cost
    of a new key: its C constructor costs a third of a Python ``__init__``, and ``gc=False``
    keeps the many short-lived entries out of the cycle collector, whose passes over them cost
    as much again (measured end to end). An entry holds no cycle of its own; the two a user
    could make are broken by the adjuster: a tag referring to its own ticket (tags are dropped
    once reported) and a task awaiting a ticket (the future's callbacks go with the outcome).
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
    """The driver's shared future, made only when someone waits."""

    def public_key(self) -> DeltaKey:
        """The key without the sign element of non-netting tables."""
        key = self.key
        if len(key) > 5:
            return DeltaKey(key[0], key[1], key[2], key[3], key[-2], key[-1])
        return DeltaKey(key[0], key[1], key[2], key[3])

    def __repr__(self) -> str:
        state = self.outcome.status.name if self.outcome else "pending"
        return f"<{type(self).__name__} {self.public_key()} net={self.net} n={self.count} {state}>"


def _sign(net: int) -> int:
    return (net > 0) - (net < 0)


class DeltaTable:
    """Pending entries by key, in arrival order, with counts of the entries ready to send.

    ``wake`` is called (once, until the driver sets ``wake_at`` again) when a kind's ready
    count reaches ``wake_at``, or a new key finds ``max_pending`` keys pending. ``start`` gives
    the clock on the first new key (the driver starts there).
    """

    __slots__ = (
        "_factory",
        "_start",
        "_wake_at",
        "_watch",
        "busy",
        "chained",
        "clock",
        "entries",
        "max_pending",
        "net_opposite_signs",
        "open",
        "preorders",
        "ready",
        "tagged",
        "v3_targets",
        "wake",
    )

    def __init__(
        self,
        *,
        net_opposite_signs: bool = True,
        max_pending: int = 1 << 62,
        factory: type[Entry] = Entry,
        wake: Callable[[], None] = lambda: None,
        start: Callable[[], Clock] | None = None,
    ) -> None:
        self.net_opposite_signs = net_opposite_signs
        self.max_pending = max_pending
        self._factory = factory
        self.wake = wake
        self._wake_at = 1
        self._watch = 0
        """``len(entries)`` from which a new key needs the exact checks: below it the table
        is not full and no ready count can reach ``wake_at`` (none exceeds the entries)."""
        self._start = start
        self.clock: Clock | None = None
        self.open = True
        """Whether deltas are accepted (False once the driver closes)."""
        self.entries: dict[Key, Entry] = {}
        """The head entry of every pending key (follow-ups hang off ``Entry.more``)."""
        self.busy: set[Key] = set()
        """Keys with an entry in flight."""
        self.ready = [0, 0, 0]
        """Non-busy head entries by sign of their net: index 0 zero, 1 positive, -1 negative."""
        self.preorders = 0
        """Pending keys with ``preorder=True``: while none is, no two keys share a variant."""
        self.chained = 0
        """Pending entries with a follow-up (``more``): while none has, taking skips the check."""
        self.tagged = False
        """Whether any delta came with a tag (reported entries' tags are then dropped)."""
        self.v3_targets = False
        """Whether any delta named a location or a SKU: until one does, no entry can, and a
        V1 batch needs no look at its keys (:func:`any_v3_target`)."""

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def wake_at(self) -> int:
        """A kind's ready count at which ``wake`` is called (``NEVER`` once called)."""
        return self._wake_at

    @wake_at.setter
    def wake_at(self, count: int) -> None:
        self._wake_at = count
        self._watch = min(self.max_pending, count - 1)

    def __repr__(self) -> str:
        return f"<DeltaTable pending={len(self.entries)} busy={len(self.busy)} ready={self.ready}>"

    # --- the one way in ------------------------------------------------------------------

    def submit(
        self,
        product_id: str | None,
        inventory_id: str | None,
        variant_id: str | None,
        preorder: bool,
        delta: int,
        tag: object = None,
        location_id: str | None = None,
        sku: str | None = None,
    ) -> Entry:
        """Check a delta and merge it into its key's entry (or a new one); returns the entry.

        Raises InvalidInputError (bad input), AdjusterClosed and AdjusterFull (a new key while
        ``max_pending`` keys are pending), changing nothing."""
        if not (type(delta) is int and _MIN_AMOUNT <= delta <= MAX_AMOUNT and delta and self.open):
            return self._refuse(product_id, inventory_id, variant_id, preorder, delta)
        if (
            inventory_id is None
            and preorder is False
            and location_id is None
            and sku is None
            and self.net_opposite_signs
        ):
            try:  # the commonest shape, checked before: its key as made then (see _PLAIN)
                key = _PLAIN[product_id][variant_id]
            except (KeyError, TypeError):  # new, or not hashable: made and checked there
                key = self._checked_key(product_id, None, variant_id, False, delta, None, None)
        else:
            key = self._checked_key(
                product_id, inventory_id, variant_id, preorder, delta, location_id, sku
            )
        entries = self.entries
        entry = entries.get(key)
        if entry is not None:
            old = entry.net
            new = old + delta
            if not _MIN_AMOUNT <= new <= MAX_AMOUNT:
                return self._follow_up(entry, delta, tag)
            entry.net = new
            entry.count += 1
            if tag is not None:
                self._tag(entry, tag)
            if old * new <= 0 and key not in self.busy:  # its sign changed: move its ready count
                ready = self.ready
                ready[_sign(old)] -= 1
                ready[after := _sign(new)] += 1
                if ready[after] >= self._wake_at:
                    self.wake_at = NEVER
                    self.wake()
            return entry
        if len(entries) >= self._watch:
            return self._insert_watched(key, delta, tag, preorder)
        clock = self.clock or self._started()
        if tag is None:
            entry = self._factory(key, clock.time(), delta, 1)
        else:
            entry = self._factory(key, clock.time(), delta, 1, [tag])
            self.tagged = True
        entries[key] = entry
        if preorder:
            self.preorders += 1
        busy = self.busy
        if not busy or key not in busy:  # (ready[2] is ready[-1], without a negative index)
            self.ready[1 if delta > 0 else 2] += 1
        return entry

    def _insert_watched(self, key: Key, delta: int, tag: object, preorder: bool) -> Entry:
        """A new key near a threshold: refused when ``max_pending`` keys are pending, and
        waking the driver when its kind's ready count reaches ``wake_at``."""
        if len(self.entries) >= self.max_pending:
            self.wake()  # a full table sends what is ready at once
            raise AdjusterFull(f"{self.max_pending} keys are pending")
        clock = self.clock or self._started()
        entry = self._factory(key, clock.time(), delta, 1)
        if tag is not None:
            self._tag(entry, tag)
        self.entries[key] = entry
        if preorder:
            self.preorders += 1
        if key not in self.busy:
            ready = self.ready
            index = 1 if delta > 0 else 2
            ready[index] += 1
            if ready[index] >= self._wake_at:
                self.wake_at = NEVER
                self.wake()
        return entry

    def _checked_key(
        self,
        product_id: str | None,
        inventory_id: str | None,
        variant_id: str | None,
        preorder: bool,
        delta: int,
        location_id: str | None,
        sku: str | None,
    ) -> Key:
        """The key of a delta not of the commonest shape (or of it, the first time), its ids
        checked: InvalidInputError names a bad one. A key whose ids passed is remembered, so
        the checks of a key seen before are one set lookup (inline rather than in a helper:
        this is half of a stream of new keys' cost)."""
        if self.net_opposite_signs:
            key: Key = (product_id, inventory_id, variant_id, preorder)
        else:
            key = (product_id, inventory_id, variant_id, preorder, delta > 0)
        if location_id is not None or sku is not None:
            check_v3_target(product_id, inventory_id, variant_id, location_id, sku)
            key = (*key, location_id, sku)
            self.v3_targets = True
            if sku is not None:  # its ids were checked (check_v3_target); its key is hashable
                if type(preorder) is not bool:
                    raise InvalidInputError("preorder", preorder, "must be a bool")
                return key
        try:
            known = type(preorder) is bool and key in _KEYS  # (1 == True: preorder's type first)
        except TypeError:  # an unhashable id: refused with its name
            self._refuse(product_id, inventory_id, variant_id, preorder, delta)
        if not known:
            entity = product_id if inventory_id is None else inventory_id
            if not (
                type(variant_id) is str
                and (variant_id in _GUIDS or _learn_guid(variant_id))
                and (product_id is None) != (inventory_id is None)
                and type(entity) is str
                and 0 < len(entity) <= MAX_ID_LENGTH
                and entity.isascii()
                and type(preorder) is bool
            ):  # not the common shape: the full checks raise, or pass (non-ASCII ids, subclasses)
                check_delta(product_id, inventory_id, variant_id, preorder, delta)
            _learn_key(key)
        return key

    def _started(self) -> Clock:
        if self._start is None:
            raise RuntimeError("DeltaTable needs a clock (start=) before its first key")
        clock = self.clock = self._start()
        return clock

    def _follow_up(self, head: Entry, delta: int, tag: object) -> Entry:
        """A delta that would take the key's entry out of the amount range: the first
        follow-up entry with room takes it (a new one at the end of the chain if none has)."""
        entry = head
        while not _MIN_AMOUNT <= entry.net + delta <= MAX_AMOUNT:
            if entry.more is None:
                clock = self.clock or self._started()
                entry.more = self._factory(head.key, clock.time())
                self.chained += 1
            entry = entry.more
        entry.net += delta
        entry.count += 1
        if tag is not None:
            self._tag(entry, tag)
        return entry

    def _tag(self, entry: Entry, tag: object) -> None:
        self.tagged = True
        if entry.tags is None:
            entry.tags = [tag]
        else:
            entry.tags.append(tag)

    def _refuse(
        self,
        product_id: object,
        inventory_id: object,
        variant_id: object,
        preorder: object,
        delta: object,
    ) -> NoReturn:
        if not self.open:
            raise AdjusterClosed("the adjuster is closed")
        check_delta(product_id, inventory_id, variant_id, preorder, delta)
        raise InvalidInputError("product_id", product_id, "must be hashable")  # pragma: no cover

    # --- what the planner and the driver do to it ------------------------------------------

    def ready_entries(self) -> Iterator[Entry]:
        """Head entries that may be sent now (their key is not busy), oldest first."""
        busy = self.busy
        if not busy:
            yield from self.entries.values()
            return
        for key, entry in self.entries.items():
            if key not in busy:
                yield entry

    def take_all(self, entries: Sequence[Entry], sign: int | None = None) -> None:
        """Remove ready head entries to send them (or resolve them); their keys become busy.

        ``sign``: the caller knows every net has this sign (1 or -1), as in a planned batch, so
        the ready count drops at once instead of entry by entry.
        """
        ready, table = self.ready, self.entries
        keys = [entry.key for entry in entries]
        if sign is None:
            for entry in entries:
                ready[_sign(entry.net)] -= 1
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
        self.take_all([entry])
        self.release_all([entry.key])

    def release_all(self, keys: Sequence[Key]) -> bool:
        """The keys' entries in flight have their outcome: their pending entries may go now.
        Whether any of them had one (the driver has new work)."""
        ready, table = self.ready, self.entries
        self.busy.difference_update(keys)
        if len(table) == ready[0] + ready[1] + ready[-1]:
            return False  # every pending head is counted already: none waits for a busy key
        freed = False
        for head in map(table.get, keys):
            if head is not None:
                net = head.net
                ready[(net > 0) - (net < 0)] += 1
                freed = True
        return freed

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


def check_v3_target(
    product_id: object, inventory_id: object, variant_id: object, location_id: object, sku: object
) -> None:
    """The checks of a V3-only target: a ``location_id`` GUID, or a ``sku`` instead of any id."""
    if location_id is not None and not (type(location_id) is str and _match_guid(location_id)):
        check_variant_id(location_id, field="location_id")
    if sku is None:
        return
    if not isinstance(sku, str) or not sku.strip() or len(sku) > _MAX_SKU:
        raise InvalidInputError("sku", sku, f"must be a non-empty string of at most {_MAX_SKU}")
    if product_id is not None or inventory_id is not None or variant_id is not None:
        raise InvalidInputError(
            "sku", sku, "give a sku instead of product_id, inventory_id and variant_id"
        )


_MAX_SKU: Final = 40
"""Wix's limit on a variant's SKU."""


def check_delta(
    product_id: object, inventory_id: object, variant_id: object, preorder: object, delta: object
) -> None:
    """The checks of a submit; raises InvalidInputError naming the field and value."""
    if not is_int(delta):
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
    if not (type(variant_id) is str and _match_guid(variant_id)):
        check_variant_id(variant_id, field="variant_id")
    if not isinstance(preorder, bool):
        raise InvalidInputError("preorder", preorder, "must be a bool")

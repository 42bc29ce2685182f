"""Bisection of a refused atomic batch, as a pure state machine (no event loop, no I/O).

A Catalog V1 batch is applied all or nothing, so when the server refuses it for something some
of its entries caused (400, 404, 428), nothing was applied and the entries at fault are found by
sending parts of it. :class:`BisectRun` decides which part to send next; its driver sends it and
records what happened, until :meth:`BisectRun.next_request` returns ``None``::

    run = BisectRun(entries)
    while (request := run.next_request()) is not None:
        result = send(request.entries)           # COMMITTED, ENDED or Refused(hint)
        for entry in run.record(result):         # refused by the server's own word
            reject(entry)

The rules:

- Without a hint, a refused part is split in two halves. When a first half commits, the second
  is known to hold the culprit and is split without being sent whole; a lone suspect is always
  sent alone, so an entry rejected here was refused by the server itself.
- With a hint (the server named the offending entry), that entry is rejected on the server's
  word and the rest is sent again as one part: one extra request per bad entry.
- ``ENDED``: the driver settled the request's entries some other way (in doubt, refused whole):
  nothing more is sent for them.
- ``suspects`` (indices of entries whose keys the server refused before): the batch goes out
  as two parts from the start, the rest and then the suspects, each bisected as above. A bad
  key that keeps coming then costs its own request, as its rejection would have, instead of
  refusing the whole batch and re-exposing every other entry to faults once more.

**Invariants** (checked by property tests): every entry ends exactly once: in a committed
request, rejected by :meth:`~BisectRun.record`, or in an ended request. For ``k`` entries at fault
among ``n`` (``n >= 1``), the requests spent are at most ``min(2n - 1, 1 + 2k * ceil(log2 n))``
without hints, and at most ``k + 1`` when every refusal names an offending entry; with
suspects, one more (``min(2n - 1, 2 + 2k * ceil(log2 n))`` and ``k + 2``).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from typing import Generic, NamedTuple, TypeVar

__all__ = ["BisectRun", "Refused", "Request", "Result", "split"]

T = TypeVar("T")


class Result(enum.Enum):
    """What became of a request, besides a refusal."""

    COMMITTED = "committed"
    """Applied whole."""
    ENDED = "ended"
    """Its entries got their outcome otherwise (in doubt, refused whole, cancelled)."""


class Refused(NamedTuple):
    """Refused for some entries' sake, nothing applied; ``hint``: the index of the entry the
    server blamed, when it said."""

    hint: int | None = None


class Request(NamedTuple, Generic[T]):
    """One request to send: ``number`` counts from 0 (the whole batch, or its rest when it
    has suspects); ``parent`` is the number of the refused request this part came from
    (``None`` for the whole batch, its rest and its suspects)."""

    number: int
    parent: int | None
    entries: list[T]


class _Pair:
    """Two halves of one refused part: whether the first committed when sent whole."""

    __slots__ = ("first_ok",)

    def __init__(self) -> None:
        self.first_ok = False


class _Part(NamedTuple, Generic[T]):
    entries: list[T]
    parent: int | None
    first_of: _Pair | None = None
    """Set when this part is a first half: its commit tells its sibling."""
    second_of: _Pair | None = None
    """Set when this part is a second half: known bad if its sibling committed."""


def split(entries: Sequence[T], hint: int | None) -> tuple[T | None, list[list[T]]]:
    """How to go on after ``entries`` (two or more) were refused as a batch: with a hint, the
    blamed entry and the rest as one part; without, two halves."""
    if len(entries) < 2:
        raise ValueError("only a batch of two or more entries can be split")
    if hint is not None:
        rest = [e for i, e in enumerate(entries) if i != hint]
        return entries[hint], [rest]
    middle = len(entries) // 2
    return None, [list(entries[:middle]), list(entries[middle:])]


class BisectRun(Generic[T]):
    """The bisection of one batch: ``next_request()`` / ``record(result)`` until done."""

    __slots__ = ("_current", "_stack", "requests")

    def __init__(self, entries: Sequence[T], suspects: Collection[int] = ()) -> None:
        if not entries:
            raise ValueError("a batch has at least one entry")
        self._stack: list[_Part[T]] = [_Part(list(entries), None)]
        if suspects:
            wanted = set(suspects)
            apart = [e for i, e in enumerate(entries) if i in wanted]
            rest = [e for i, e in enumerate(entries) if i not in wanted]
            if apart and rest:
                self._stack = [_Part(apart, None), _Part(rest, None)]  # the rest goes first
        self._current: tuple[_Part[T], int] | None = None
        self.requests = 0
        """Requests handed out so far."""

    def __repr__(self) -> str:
        return f"<BisectRun requests={self.requests} parts_left={len(self._stack)}>"

    @property
    def done(self) -> bool:
        """Whether every entry has ended."""
        return not self._stack and self._current is None

    def next_request(self) -> Request[T] | None:
        """The next part to send, or ``None`` when every entry has ended."""
        if self._current is not None:
            raise RuntimeError("record() the result of the request in flight first")
        while self._stack:
            part = self._stack.pop()
            known_bad = part.second_of is not None and part.second_of.first_ok
            if known_bad and len(part.entries) > 1:
                self._push_parts(None, part.entries, part.parent)  # split it unsent
                continue
            number = self.requests
            self.requests += 1
            self._current = (part, number)
            return Request(number, part.parent, part.entries)
        return None

    def record(self, result: Result | Refused) -> list[T]:
        """What became of the request handed out last; returns the entries rejected on the
        server's word (the blamed one, or a lone suspect)."""
        if self._current is None:
            raise RuntimeError("no request is in flight")
        part, number = self._current
        self._current = None
        if result is Result.COMMITTED:
            if part.first_of is not None:
                part.first_of.first_ok = True
            return []
        if not isinstance(result, Refused):
            return []
        if len(part.entries) == 1:
            return list(part.entries)
        return self._push_parts(result.hint, part.entries, number)

    def _push_parts(self, hint: int | None, entries: list[T], parent: int | None) -> list[T]:
        blamed, parts = split(entries, hint)
        if len(parts) == 1:
            self._stack.append(_Part(parts[0], parent))
        else:
            pair = _Pair()
            self._stack.append(_Part(parts[1], parent, second_of=pair))
            self._stack.append(_Part(parts[0], parent, first_of=pair))
        return [] if blamed is None else [blamed]

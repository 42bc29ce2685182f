"""The witness arithmetic, pure: what a read of a witness variant says about a request.

A witness slot is one variant that only this adjuster moves, with at most one request in
flight. Every V1 request of the slot carries one extra entry on it: ``step`` (+1 in an
increment, -1 in a decrement, or a bigger move of the same sign that re-centres it). V1
applies a request all or nothing, so the witness moved if and only if the request did.

:class:`SlotState` keeps the quantity expected when no doubtful request landed
(``expected``) and the steps of the requests resolved NOT_APPLIED that may still land late
(``suspects``). After an ambiguous failure, :meth:`SlotState.resolve` takes the read quantity
and finds every explanation: the current request applied or not (``a`` in {0, 1}), plus any
subset of the suspects having landed late::

    read - expected == a * step + sum(some subset of suspects)

The settle delay is the promise that a request resolved NOT_APPLIED will not land later, so a
read that moved by exactly ``step`` (COMMITTED) or not at all (NOT_APPLIED) is taken at its
word (a late apply beyond the settle delay that coincides with the read can be misread: keep
``settle`` long). Any other read is explained through the suspects: one value of ``a``
explains it: COMMITTED (1) or NOT_APPLIED (0), and the rest is a late apply detected. None:
IN_DOUBT (the witness was edited by someone else). Both: IN_DOUBT (a late apply could
explain it). The
subset's sum, when not zero, is a late apply detected: reported, never silent. A suspect whose
landing is proven (the subset is unique) is folded into ``expected`` and forgotten; otherwise
the suspects are kept, which stays sound: each lands at most once, and the subset sums
enumerate every state they can be in. A new baseline (a witness edited by someone else, a read
after a failed one) keeps them too: counted from any baseline, a suspect moves the witness by
its step if it lands after that read, else not at all.

Suspects do not last forever (:meth:`SlotState.forget`): each carries a ``deadline``, the
time after which its request is taken never to land (``Witness.forget_after`` seconds after
it was resolved). A suspect is dropped at the first read sent at or after its deadline, after
that read's verdict, so a landing before the read is still counted and reported. A request
that lands after its deadline anyway moves the witness by a step no suspect explains: an
anomaly, reported as such, never counted as applied. Dropping is sound at any read: the
suspects kept are counted from it (a new baseline), as above.

Re-centring (:func:`plan_step`): the witness drifts by (increments - decrements). Below
``low`` an increment carries ``centre - expected`` instead of +1; above ``high`` a decrement
carries ``centre - expected`` instead of -1 (free: no extra request). Past the hard bounds (a
decrement could reach 0, an increment the 99999 cap) one update call sets it to ``centre``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = [
    "MAX_SUSPECTS",
    "QUANTITY_CAP",
    "Bounds",
    "Read",
    "Resolution",
    "SlotState",
    "Suspect",
    "plan_step",
    "resolve_sent",
]

QUANTITY_CAP: Final = 99_999
"""Wix's largest quantity (the emulator refuses more with MAX_QUANTITY_LIMIT_REACHED)."""
MAX_SUSPECTS: Final = 32
"""Unconfirmed NOT_APPLIED requests a slot keeps before it stops resolving (IN_DOUBT)."""


class Resolution(enum.Enum):
    """What a witness read says about the request that failed ambiguously."""

    COMMITTED = "committed"
    NOT_APPLIED = "not_applied"
    IN_DOUBT = "in_doubt"


class Bounds(NamedTuple):
    """Where a witness is kept: re-centred to ``centre`` by an opposite-sign request once
    outside ``[low, high]``, by an update call once outside ``[hard_low, hard_high]``."""

    low: int = 25_000
    centre: int = 50_000
    high: int = 75_000
    hard_low: int = 100
    hard_high: int = QUANTITY_CAP - 100

    def check(self) -> None:
        """Raise ValueError unless 1 <= hard_low <= low <= centre <= high <= hard_high < cap."""
        if not 1 <= self.hard_low <= self.low <= self.centre <= self.high <= self.hard_high:
            raise ValueError(f"witness bounds {self!r}: need 1 <= hard_low <= low <= centre")
        if self.hard_high >= QUANTITY_CAP:
            raise ValueError(f"witness bounds {self!r}: hard_high must be below {QUANTITY_CAP}")


class Suspect(NamedTuple):
    """A request resolved NOT_APPLIED that could still land: its id, step and entries, and
    the time from which it is taken never to land (see :meth:`SlotState.forget`)."""

    request_id: int
    step: int
    entries: tuple[object, ...]
    deadline: float = math.inf


class Read(NamedTuple):
    """The verdict of one witness read. ``late``: the suspects proven landed (their requests
    were applied after all); ``late_quantity``: the witness quantity late applies explain
    (not zero: a late apply detected, even when which one is not known); ``reason``: why a
    request stays IN_DOUBT, or what was wrong with the witness."""

    resolution: Resolution
    late: tuple[Suspect, ...] = ()
    late_quantity: int = 0
    reason: str | None = None


def plan_step(expected: int, increment: bool, bounds: Bounds) -> tuple[int, bool]:
    """The witness step of the next request, and whether an update call must set the
    witness to ``bounds.centre`` first (the step then counts from the centre)."""
    if increment:
        if expected + 1 > bounds.hard_high:
            return 1, True
        return (bounds.centre - expected if expected < bounds.low else 1), False
    if expected - 1 < bounds.hard_low:
        return -1, True
    return (bounds.centre - expected if expected > bounds.high else -1), False


@dataclass(slots=True)
class SlotState:
    """One witness slot's known state (see the module docstring)."""

    variant_id: str
    expected: int | None = None
    """The quantity if no suspect landed; ``None`` until read."""
    suspects: list[Suspect] = field(default_factory=list)
    seen_late: int = 0
    """The late-applied quantity already reported but not folded into ``expected``."""

    def committed(self, step: int) -> None:
        """The request was applied (its answer said so)."""
        if self.expected is not None:
            self.expected += step

    def resolve(self, read: int, suspect: Suspect) -> Read:
        """Resolve the request ``suspect`` (its id, step, entries) from a read quantity."""
        if self.expected is None:
            self.expected = read
            self.suspects.append(suspect)
            return Read(Resolution.IN_DOUBT, reason="the witness baseline was unknown")
        if len(self.suspects) >= MAX_SUSPECTS:
            self.suspects.append(suspect)
            return Read(Resolution.IN_DOUBT, reason="too many unconfirmed requests on this slot")
        drift = read - self.expected
        if drift - self.seen_late in (0, suspect.step):  # the settle delay's promise: no late
            applied = [int(drift - self.seen_late == suspect.step)]  # apply meanwhile
            return self._resolved(applied[0], suspect, Read(Resolution.COMMITTED))
        sums = _subset_sums([s.step for s in self.suspects])
        applied = [a for a in (0, 1) if drift - a * suspect.step in sums]
        if not applied:
            return self._unexplained(read, suspect.step)
        if len(applied) == 2:
            self.suspects.append(suspect)
            why = f"witness at {read}: either this request or a late apply of an earlier one"
            return Read(Resolution.IN_DOUBT, reason=why)
        a = applied[0]
        late, late_quantity = self._landed(drift - a * suspect.step, sums)
        return self._resolved(a, suspect, Read(Resolution.COMMITTED, late, late_quantity))

    def _resolved(self, applied: int, suspect: Suspect, read: Read) -> Read:
        if applied:
            assert self.expected is not None
            self.expected += suspect.step
            return read
        self.suspects.append(suspect)
        return read._replace(resolution=Resolution.NOT_APPLIED)

    def verify(self, read: int) -> Read:
        """Check a read taken with nothing in flight on the slot (late applies, edits)."""
        if self.expected is None:
            self.expected = read
            return Read(Resolution.COMMITTED)
        drift = read - self.expected
        sums = _subset_sums([s.step for s in self.suspects])
        if drift not in sums:
            return self._unexplained(read, 0)
        late, late_quantity = self._landed(drift, sums)
        return Read(Resolution.COMMITTED, late, late_quantity)

    def forget(self, read_at: float, read: int) -> int:
        """After a read of ``read`` sent at ``read_at`` (and its verdict): drop the suspects
        whose deadline is at or before ``read_at``; returns how many. When any is dropped the
        read becomes the baseline (every suspect that landed is in it; those kept are counted
        from it), so what was reported late is never reported again."""
        kept = [s for s in self.suspects if s.deadline > read_at]
        dropped = len(self.suspects) - len(kept)
        if dropped:
            self.suspects = kept
            self.expected, self.seen_late = read, 0
        return dropped

    def rebase(self, quantity: int | None) -> None:
        """The witness was set (an update call) or could not be told: start again from it."""
        self.expected = quantity
        self.seen_late = 0

    def _unexplained(self, read: int, step: int) -> Read:
        expected = self.expected
        why = (
            f"witness at {read}, expected {expected} (step {step:+d}"
            f", {len(self.suspects)} unconfirmed): edited by someone else?"
        )
        # The suspects are kept: each may still land once, counted from the new baseline.
        self.expected, self.seen_late = read, 0
        return Read(Resolution.IN_DOUBT, reason=why)

    def _landed(self, quantity: int, sums: dict[int, int]) -> tuple[tuple[Suspect, ...], int]:
        """Fold the suspects that provably landed (a unique subset summing to ``quantity``)
        into ``expected``; return them, and the late quantity not reported before."""
        new = quantity - self.seen_late
        if quantity == 0:
            self.seen_late = 0
            return (), new
        if sums.get(quantity, 0) != 1:
            self.seen_late = quantity
            return (), new
        chosen = _the_subset([s.step for s in self.suspects], quantity)
        late = tuple(self.suspects[i] for i in chosen)
        self.suspects = [s for i, s in enumerate(self.suspects) if i not in chosen]
        assert self.expected is not None
        self.expected += quantity
        self.seen_late = 0
        return late, new


def resolve_sent(expected: int | None, suspects: Sequence[int], step: int, read: int) -> Read:
    """Resolve a request known only by what was journalled when it was sent (after a crash):
    the slot's ``expected`` quantity then, its unconfirmed ``suspects`` steps, the request's
    ``step``, and the witness ``read`` now, with nothing else sent on the slot since."""
    if expected is None:
        return Read(Resolution.IN_DOUBT, reason="the witness baseline was unknown when sent")
    state = SlotState("", expected, [Suspect(-1 - i, s, ()) for i, s in enumerate(suspects)])
    return state.resolve(read, Suspect(0, step, ()))


def _subset_sums(steps: list[int]) -> dict[int, int]:
    """Every sum of a subset of ``steps``, with how many subsets give it (capped at 2)."""
    sums = {0: 1}
    for step in steps:
        grown = dict(sums)
        for total, ways in sums.items():
            grown[total + step] = min(2, grown.get(total + step, 0) + ways)
        sums = grown
    return sums


def _the_subset(steps: list[int], quantity: int) -> set[int]:
    """The indices of the one subset of ``steps`` summing to ``quantity`` (known unique)."""
    for i, step in enumerate(steps):
        rest = steps[:i] + steps[i + 1 :]
        # Unique subset: index i is in it iff the rest cannot make the total alone.
        if _subset_sums(rest).get(quantity, 0) == 0:
            return {i} | {j + (j >= i) for j in _the_subset(rest, quantity - step)}
    return set()

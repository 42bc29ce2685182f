"""What a bulk run writes to its journal, and when (the journal itself is ``journal.py``).

- A request: its lines as ``sent``, durably, right before it goes on the wire (the adjuster's
  ``on_send``, after the pacing wait), under the run's own batch id.
- Its outcome: each line's state, durably, as the request (or a bisection part) settles (the
  adjuster's ``on_settle``), so after a crash only requests still unanswered look in doubt.
- Outcomes ``on_settle`` never sees (netted to zero, cancelled): when the row's ticket
  settles, the netted rows of one entry all at once.

A REJECTED outcome that says nothing of the row (retriable: the request was refused whole)
is journalled ``not_applied``, so a rerun sends the row again.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..adjuster import SentBatch, Settled, Ticket
from ..outcomes import NOOP, Outcome, OutcomeStatus
from .journal import NOT_APPLIED, Journal, LineState

__all__ = ["RunRecorder", "StateCursor", "journal_state"]


def journal_state(outcome: Outcome) -> str:
    """The journal state of an outcome: a REJECTED that says nothing of the row (retriable:
    the request was refused whole, 401, 403, 409, 429 or 503 to the last attempt, no
    connection, the journal failed) was never applied, so a rerun sends the row again."""
    if outcome.status is OutcomeStatus.REJECTED and outcome.retriable:
        return NOT_APPLIED
    return outcome.status.name.lower()


class RunRecorder:
    """Journals one run's requests and its rows' outcomes (see the module doc)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._batch_base = journal.next_batch_id() - 1
        self._batch_ids: dict[tuple[str | None, int], int] = {}
        """Journal batch id of each site's adjuster's batch id (a resend keeps its id)."""
        self._netted: dict[int, tuple[Ticket, list[int]]] = {}
        """Rows of entries netted to zero, by ticket, until all of an entry's are settled."""

    def sent(self, site: str | None, batch: SentBatch) -> None:
        """Journal a request's lines as ``sent`` (durably: it goes on the wire next)."""
        lines = [tag for entry in batch.entries for tag in entry.tags if isinstance(tag, int)]
        key = (site, batch.batch_id)
        if key not in self._batch_ids:
            self._batch_ids[key] = self._batch_base + len(self._batch_ids) + 1
        self._journal.record_sent(
            self._batch_ids[key],
            batch.kind,
            lines,
            catalog=batch.catalog,
            site=site,
            witness=batch.witness,
            maybe_applied=batch.maybe_applied,
        )

    def settled(self, settled: Settled) -> None:
        """Journal the outcome of a request's (or bisection part's) lines, durably."""
        outcome = settled.outcome
        state = journal_state(outcome)
        self._journal.record_outcomes_now(
            (tag, state, outcome.code, outcome.message)
            for entry in settled.entries
            for tag in entry.tags
            if isinstance(tag, int)
        )

    def ticket_settled(self, line: int, ticket: Ticket, outcome: Outcome) -> None:
        """Journal a row's outcome if ``settled`` never saw it (every request's entries it did)."""
        if outcome is NOOP:
            self._netted_row(line, ticket)
        elif outcome.status is OutcomeStatus.CANCELLED:
            self._journal.record_outcome(line, "cancelled", outcome.code, outcome.message)

    def _netted_row(self, line: int, ticket: Ticket) -> None:
        """Journal the rows of an entry netted to zero all at once, when the last is settled:
        were one journalled committed and another not, a rerun would send that one alone."""
        _, lines = self._netted.setdefault(id(ticket), (ticket, []))
        lines.append(line)
        if len(lines) == ticket.count:
            del self._netted[id(ticket)]
            self._journal.record_outcomes(lines, "committed", NOOP.code, NOOP.message)


class StateCursor:
    """Walks the journal's line states alongside the input, both in ascending line order."""

    def __init__(self, states: Iterator[LineState]):
        self._states = states
        self._head: LineState | None = next(states, None)

    def at(self, line: int) -> LineState | None:
        while self._head is not None and self._head.line < line:
            self._head = next(self._states, None)
        if self._head is not None and self._head.line == line:
            return self._head
        return None

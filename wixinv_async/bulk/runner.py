"""Run a bulk adjustment file through the adjuster, crash-safely and in constant memory.

The input is streamed row by row and merged with the journal's line states (both in line
order), so a rerun after a crash skips what was committed or rejected, holds back what is in
doubt (unless ``retry_in_doubt``) and sends the rest. At most ``max_outstanding`` rows wait for
their outcome at once, so memory does not grow with the file. A file that names sites runs
each site on its own adjuster (``lanes.py``), under the same journal.

With a ``witness`` every request carries a witness entry, journalled with it, and a rerun first
resolves the rows of requests an earlier run left on the wire by reading the witness
(:mod:`wixinv_async.bulk.witnessed`) instead of holding them all in doubt.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..adjuster import InventoryAdjuster, InventoryWriter, SentBatch, Settled, Ticket, Witness
from ..client import InventoryClient
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    PermissionDeniedError,
)
from ..outcomes import Outcome
from .give_up import GiveUpBudget
from .journal import (
    NOT_APPLIED,
    Journal,
    LineState,
    input_fingerprint,
    should_send,
    went_elsewhere,
)
from .journalling import RunRecorder, StateCursor, journal_state
from .lanes import Lane, Lanes, LaneTotals, SiteCounts, SiteWriters
from .progress import BulkProgress, OnProgress, count_lines
from .reports import BulkPaths, Reports
from .rows import DeltaRow, RejectedRow, detect_format, read_rows
from .summary import BulkSummary, summarize
from .witnessed import resolve_in_flight

__all__ = [
    "BulkPaths",
    "BulkProgress",
    "BulkSummary",
    "LaneTotals",
    "OnProgress",
    "SiteWriters",
    "count_lines",
    "run_bulk_adjust",
]

logger = logging.getLogger(__name__)


async def run_bulk_adjust(
    client: InventoryWriter | None,
    paths: BulkPaths,
    *,
    sites: SiteWriters | None = None,
    default_site: str | None = None,
    retry_in_doubt: bool = False,
    max_outstanding: int = 20_000,
    adjuster_options: Mapping[str, Any] | None = None,
    on_progress: OnProgress | None = None,
    progress_every: int = 2_000,
    journal_max_pages: int | None = None,
    witness: Witness | None = None,
    probe: Callable[[], Awaitable[None]] | None = None,
) -> BulkSummary:
    """Apply every row of ``paths.source`` at most once across any number of (crashed) runs.

    ``client``: the one site's writer; or ``sites``, the writer of each site the rows name (a
    row naming none goes to ``default_site``; a site that refuses the credentials rejects its
    own rows, see ``lanes.py``). ``on_progress`` gets the counters and a function summing the
    adjusters' stats. ``witness`` (one site, an ``InventoryClient`` on a V1 site): every
    request carries a witness entry, journalled, and the rows an earlier run left on the wire
    are first resolved by reading the witness (see :mod:`wixinv_async.bulk.witnessed`).
    Raises :class:`~wixinv_async.errors.ConfigurationError` when the one site refuses the
    credentials, the journal cannot be read or written (``journal_max_pages``: see
    :class:`Journal`) or the witness cannot be read, and
    :class:`~wixinv_async.errors.ConnectError` when the host went away: the first request that
    gives up connecting (after the client's retries and the adjuster's resends) spends the
    give-up budget of the whole run, so no more rows are read and no resend of any other
    request goes out. ``probe`` (the CLI's: one TCP connection to the host, no request) is
    awaited before every resend by the adjuster (its earlier send applied nothing: 429, 503,
    no connection); when it raises, the run stops at once with its error, long before a
    request's retries run out. A rerun goes on where the run stopped."""
    started = time.monotonic()
    journal = Journal(
        paths.journal, fingerprint=input_fingerprint(paths.source), max_pages=journal_max_pages
    )
    job = _Job(journal, paths, retry_in_doubt, max_outstanding, GiveUpBudget(probe))
    logger.info("bulk run %d of %s: journal %s", journal.run, paths.source, paths.journal)
    options = dict(adjuster_options or {})
    try:
        if witness is not None:
            job.resolved = await _resolve_witnessed(client, sites, journal, witness)
            options["witness"] = witness
        with Reports(paths) as reports:
            job.reports = reports
            try:
                async with contextlib.AsyncExitStack() as stack:
                    job.lanes = Lanes(
                        client, sites, default_site, functools.partial(job.adjuster, options), stack
                    )
                    if on_progress is not None:  # at once: a display can follow the adjusters
                        on_progress(job.progress, job.lanes.totals)
                    await job.feed(on_progress, progress_every)
                    await job.lanes.flush()
                    job.stop_if_refused()
            finally:
                job.settle_done()  # after a crash or Ctrl-C, keep every outcome that is known
            job.settle_done(everything=True)
            if on_progress is not None:
                on_progress(job.progress, job.lanes.totals)
        summary = job.summary(time.monotonic() - started)
        _log_summary(summary)
        return summary
    finally:
        journal.close()


async def _resolve_witnessed(
    client: InventoryWriter | None, sites: SiteWriters | None, journal: Journal, witness: Witness
) -> Counter[str]:
    """Resolve by the witness the rows an earlier run left on the wire (one V1 site only)."""
    if sites is not None:
        raise ConfigurationError("a witness serves one site: not a file naming sites")
    if not isinstance(client, InventoryClient):
        raise ConfigurationError("a witness needs an InventoryClient (V1 reads)")
    return await resolve_in_flight(client, journal, witness)


def _log_summary(summary: BulkSummary) -> None:
    logger.info(
        "bulk run done: %d rows, %d committed, %d rejected, %d invalid, %d done before, "
        "%d requests in %.1f s",
        summary.rows,
        summary.committed,
        summary.rejected,
        summary.invalid,
        summary.done_before,
        summary.requests,
        summary.seconds,
    )
    if summary.in_doubt or summary.held_in_doubt:
        logger.warning(
            "%d rows in doubt (%d held back from earlier runs): listed in %s",
            summary.in_doubt + summary.held_in_doubt,
            summary.held_in_doubt,
            summary.paths.in_doubt,
        )


class _Job:
    """One run: reads the rows, routes each to its lane (or skips it), keeps at most
    ``max_outstanding`` waiting for their outcome, and counts and reports every row."""

    def __init__(
        self,
        journal: Journal,
        paths: BulkPaths,
        retry: bool,
        max_outstanding: int,
        budget: GiveUpBudget,
    ):
        self.journal = journal
        self.paths = paths
        self.retry = retry
        self.max_outstanding = max_outstanding
        self.budget = budget
        self.recorder = RunRecorder(journal)
        self.progress = BulkProgress()
        self.outstanding: deque[tuple[DeltaRow, Ticket, SiteCounts]] = deque()
        self.reports: Reports
        self.lanes: Lanes
        self.resolved: Counter[str] = Counter()
        """Rows resolved by witness at the start (see ``BulkSummary.resolved_by_witness``)."""

    def adjuster(
        self, options: Mapping[str, Any], writer: InventoryWriter, site: str | None
    ) -> InventoryAdjuster:
        """A site's adjuster, its journal hooks bound to the site."""
        return InventoryAdjuster(
            writer,
            on_send=functools.partial(self.on_send, site),
            on_settle=functools.partial(self.on_settle, site),
            **options,
        )

    async def on_send(self, site: str | None, batch: SentBatch) -> None:
        await self.budget.before_send(batch.attempt)
        self.recorder.sent(site, batch)

    def on_settle(self, site: str | None, settled: Settled) -> None:
        self.recorder.settled(settled)
        self.saw(settled.outcome.error, site)

    def saw(self, error: BaseException | None, site: str | None) -> None:
        """Note the error behind an outcome: a connection that never came up stops the run (the
        host is gone for every site); a 401 or 403 stops a one-site run (every later request
        would be refused too), or stops sending to that site of a run over many."""
        self.budget.saw(error)
        if isinstance(error, AuthenticationError | PermissionDeniedError):
            self.lanes.refused(site, error)

    def stop_if_refused(self) -> None:
        """Raise when the site refused the credentials (every later request would be refused),
        the journal could not be written (no request goes out that it cannot record) or the
        host is gone."""
        if self.journal.failure is not None:
            raise self.journal.failure
        self.lanes.raise_if_refused()
        self.budget.raise_if_spent()

    async def feed(self, on_progress: OnProgress | None, every: int) -> None:
        states = StateCursor(self.journal.states())
        source = self.paths.source
        with source.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
            for row in read_rows(stream, detect_format(self.paths.source)):
                self.progress.rows += 1
                if isinstance(row, RejectedRow):
                    self.progress.invalid += 1
                    self.reports.reject(row.line, row.reason, row.raw)
                else:
                    await self._take(row, states.at(row.line))
                    self.stop_if_refused()
                if on_progress is not None and self.progress.rows % every == 0:
                    on_progress(self.progress, self.lanes.totals)

    async def _take(self, row: DeltaRow, state: LineState | None) -> None:
        try:
            lane = self.lanes.lane(row.site)
        except InvalidInputError as exc:  # a site this run cannot reach: another run may
            self._unroutable(row, exc)
            return
        lane.counts.rows += 1
        if went_elsewhere(state, lane.site):
            assert state is not None
            raise ConfigurationError(
                f"journal {self.paths.journal} records line {row.line} as {state.state} on site "
                f"{state.site}, but this run sends it to site {lane.site}: run with the site of "
                "the earlier run (WIX_SITE_ID / WIX_INSTANCE_ID), or give a new --journal path"
            )
        if not should_send(state, retry_in_doubt=self.retry):
            assert state is not None
            self._skip(row, state, lane.counts)
            return
        if lane.refusal is not None:
            self._not_sent(row, lane)
            return
        try:
            ticket = await _submit(row, await self.lanes.adjuster(lane))
        except InvalidInputError as exc:  # the row's fault (a location on a known V1 site)
            lane.counts.outcomes["rejected"] += 1
            self._refuse(row, exc)
            return
        self.progress.submitted += 1
        self.outstanding.append((row, ticket, lane.counts))
        if len(self.outstanding) >= self.max_outstanding:
            await self.outstanding[0][1]
        self.settle_done()

    def _not_sent(self, row: DeltaRow, lane: Lane) -> None:
        """A row of a site that refused the credentials earlier in this run: not sent, not
        applied, so a rerun sends it."""
        assert lane.refusal is not None
        self.progress.refused += 1
        lane.counts.outcomes["rejected"] += 1
        refusal = lane.refusal
        message = (
            f"not sent: the site refused the credentials (HTTP {refusal.status}): {refusal.message}"
        )
        self._close(row, NOT_APPLIED, refusal.code, message)

    def _unroutable(self, row: DeltaRow, error: InvalidInputError) -> None:
        """A row for a site this run cannot reach: never sent, so a rerun reaching it (a
        default site set) sends it."""
        self.progress.rejected_at_submit += 1
        self._close(row, NOT_APPLIED, "NO_SITE", str(error))

    def _refuse(self, row: DeltaRow, error: InvalidInputError) -> None:
        """A row the adjuster refused at submit: never sent, rejected for good."""
        self.progress.rejected_at_submit += 1
        self._close(row, "rejected", "INVALID_ROW", str(error))

    def _close(self, row: DeltaRow, state: str, code: str | None, message: str) -> None:
        """Journal and report a row that is not sent in this run."""
        self.journal.record_outcome(row.line, state, code, message)
        self.reports.reject(
            row.line, f"{code}: {message}", row.raw, not_applied=state == NOT_APPLIED
        )

    def _skip(self, row: DeltaRow, state: LineState, counts: SiteCounts) -> None:
        if state.state == "committed":
            self.progress.done_before += 1
            counts.done_before += 1
        elif state.state == "rejected":
            self.progress.done_before += 1
            counts.done_before += 1
            self.reports.reject(row.line, f"{state.code}: {state.message}", row.raw)
        else:
            self.progress.held_in_doubt += 1
            counts.held_in_doubt += 1
            self.reports.in_doubt(row)

    def settle_done(self, *, everything: bool = False) -> None:
        while self.outstanding and (everything or self.outstanding[0][1].done()):
            row, ticket, counts = self.outstanding.popleft()
            assert ticket.outcome is not None
            counts.outcomes[ticket.outcome.status.name.lower()] += 1
            self._record(row, ticket, ticket.outcome)

    def _record(self, row: DeltaRow, ticket: Ticket, outcome: Outcome) -> None:
        status = outcome.status.name.lower()
        self.progress.outcomes[status] += 1
        self.recorder.ticket_settled(row.line, ticket, outcome)
        if status == "rejected":
            reason = f"{outcome.code}: {outcome.message}"
            self.reports.reject(
                row.line, reason, row.raw, not_applied=journal_state(outcome) == NOT_APPLIED
            )
        elif status == "in_doubt":
            self.reports.in_doubt(row)

    def summary(self, seconds: float) -> BulkSummary:
        self.journal.flush()
        self.stop_if_refused()
        return summarize(
            self.progress, self.lanes, self.journal, self.paths, self.resolved, seconds
        )


async def _submit(row: DeltaRow, adjuster: InventoryAdjuster) -> Ticket:
    return await adjuster.submit(
        row.product_id,
        row.variant_id,
        row.delta,
        inventory_id=row.inventory_id,
        location_id=row.location_id,
        sku=row.sku,
        preorder=row.preorder,
        tag=row.line,
    )

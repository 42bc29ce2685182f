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
import csv
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..adjuster import InventoryAdjuster, InventoryWriter, SentBatch, Settled, Ticket, Witness
from ..client import InventoryClient
from ..errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    InvalidInputError,
    PermissionDeniedError,
    RequestTimeoutError,
)
from ..outcomes import NOOP, Outcome, OutcomeStatus
from .journal import (
    NOT_APPLIED,
    Journal,
    LineState,
    input_fingerprint,
    should_send,
    went_elsewhere,
)
from .lanes import Lane, Lanes, LaneTotals, SiteCounts, SiteWriters
from .rows import DeltaRow, RejectedRow, detect_format, read_rows
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


@dataclass(frozen=True)
class BulkPaths:
    """Where a run keeps its journal and writes its reports (all next to the input by default)."""

    source: Path
    journal: Path
    rejects: Path
    in_doubt: Path

    @classmethod
    def beside(cls, source: Path, journal: Path | None = None) -> BulkPaths:
        journal = journal or source.with_name(source.name + ".journal")
        return cls(
            source=source,
            journal=journal,
            rejects=source.with_name(source.name + ".rejects.csv"),
            in_doubt=source.with_name(source.name + ".in-doubt.csv"),
        )


@dataclass
class BulkProgress:
    """Counters of a running job, in rows."""

    rows: int = 0
    invalid: int = 0
    done_before: int = 0
    """Rows committed or rejected by an earlier run (skipped)."""
    held_in_doubt: int = 0
    """Rows in doubt from an earlier run, not re-sent."""
    submitted: int = 0
    rejected_at_submit: int = 0
    """Rows the adjuster refused before sending (e.g. a location on a V1 site)."""
    refused: int = 0
    """Rows not sent because their site refused the credentials earlier in the run."""
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        settled = sum(self.outcomes.values())
        return (
            self.invalid
            + self.rejected_at_submit
            + self.refused
            + self.done_before
            + self.held_in_doubt
            + settled
        )


OnProgress = Callable[[BulkProgress, Callable[[], LaneTotals]], None]
"""Called with the run's counters and a function summing its adjusters' stats."""


@dataclass(frozen=True)
class BulkSummary:
    """How a run ended. ``exit_code``: 0 all committed, 1 some rows rejected, 3 some in doubt."""

    rows: int
    invalid: int
    done_before: int
    held_in_doubt: int
    submitted: int
    committed: int
    rejected: int
    in_doubt: int
    cancelled: int
    requests: int
    seconds: float
    journal_counts: Mapping[str, int]
    batches_by_catalog: Mapping[str, int]
    """Requests journalled over every run, by the catalog they went to."""
    paths: BulkPaths
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each site the rows named, in the order they first appeared: its catalog, its rows
    (``rows``, ``committed``, ``rejected``, ``in_doubt``, ``done_in_earlier_runs``,
    ``in_doubt_held_back``), its ``requests`` and why it ``refused`` the credentials (or
    ``None``). Empty for a file that names no site."""
    resolved_by_witness: Mapping[str, int] = field(default_factory=dict)
    """Rows an earlier run left on the wire, resolved by reading the witness at the start of
    this run, by the state they got (``committed``, ``not_applied``: sent again, ``in_doubt``)."""

    @property
    def exit_code(self) -> int:
        if self.in_doubt or self.held_in_doubt or self.journal_counts.get("sent", 0):
            return 3
        if self.invalid or self.rejected or self.journal_counts.get("rejected", 0):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "invalid_rows": self.invalid,
            "done_in_earlier_runs": self.done_before,
            "in_doubt_held_back": self.held_in_doubt,
            "submitted": self.submitted,
            "committed": self.committed,
            "rejected": self.rejected,
            "in_doubt": self.in_doubt,
            "cancelled": self.cancelled,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "journal": dict(self.journal_counts),
            "batches_by_catalog": dict(self.batches_by_catalog),
            "resolved_by_witness": dict(self.resolved_by_witness),
            "rejects_file": str(self.paths.rejects),
            "in_doubt_file": str(self.paths.in_doubt),
            "exit_code": self.exit_code,
        } | (
            {"sites": {site: dict(counts) for site, counts in self.sites.items()}}
            if self.sites
            else {}
        )


def count_lines(path: Path) -> int:
    """Data rows in a file, roughly (newlines, less a CSV header): for progress totals."""
    with path.open("rb") as handle:
        newlines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(newlines - (detect_format(path) == "csv"), 0)


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
    job = _Job(journal, paths, retry_in_doubt, max_outstanding)
    job.probe = probe
    logger.info("bulk run %d of %s: journal %s", journal.run, paths.source, paths.journal)
    options = dict(adjuster_options or {})
    try:
        if witness is not None:
            if sites is not None:
                raise ConfigurationError("a witness serves one site: not a file naming sites")
            if not isinstance(client, InventoryClient):
                raise ConfigurationError("a witness needs an InventoryClient (V1 reads)")
            job.resolved = await resolve_in_flight(client, journal, witness)
            options["witness"] = witness
        with _Reports(paths) as reports:
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


_IN_DOUBT_COLUMNS = [
    "line", "product_id", "inventory_id", "variant_id", "delta", "sku", "location_id", "site"
]  # fmt: skip
"""The in-doubt report's columns (the V3 ones last, where a reader of the V1 ones ignores them)."""


class _Reports:
    """The rejects and in-doubt CSV files, rewritten on every run."""

    def __init__(self, paths: BulkPaths):
        self._paths = paths
        self.rejects: Any = None
        self.in_doubt: Any = None
        self._files: list[TextIO] = []

    def __enter__(self) -> _Reports:
        self.rejects = self._open(self._paths.rejects, ["line", "reason", "row"])
        self.in_doubt = self._open(self._paths.in_doubt, _IN_DOUBT_COLUMNS)
        return self

    def _open(self, path: Path, header: list[str]) -> Any:
        handle = path.open("w", newline="", encoding="utf-8")
        self._files.append(handle)
        writer = csv.writer(handle)
        writer.writerow(header)
        return writer

    def __exit__(self, *_: object) -> None:
        for handle in self._files:
            handle.close()


class _Job:
    def __init__(self, journal: Journal, paths: BulkPaths, retry: bool, max_outstanding: int):
        self.journal = journal
        self.paths = paths
        self.retry = retry
        self.max_outstanding = max_outstanding
        self.batch_base = journal.next_batch_id() - 1
        self.batch_ids: dict[tuple[str | None, int], int] = {}
        """Journal batch id of each site's adjuster's batch id (a resend keeps its id)."""
        self.progress = BulkProgress()
        self.outstanding: deque[tuple[DeltaRow, Ticket, SiteCounts]] = deque()
        self.reports: _Reports
        self.lanes: Lanes
        self.fatal: ApiError | None = None
        self.gone: BaseException | None = None
        """Why the site is taken for gone: the error of the first request that gave up
        connecting, or of the probe."""
        self.probe: Callable[[], Awaitable[None]] | None = None
        self.netted: dict[int, tuple[Ticket, list[int]]] = {}
        """Rows of entries netted to zero, by ticket, until all of an entry's are settled."""
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
        if batch.attempt > 1 and self.probe is not None and self.gone is None:
            try:  # a resend: the site failed it once; is it still there at all?
                await self.probe()
            except Exception as exc:
                logger.error("the site stopped answering (%s): the run stops", exc)
                self.gone = exc
        if self.gone is not None:  # one give-up budget for the run: nothing more goes out
            raise ConnectError(f"not sent: the site stopped answering ({self.gone})")
        lines = [tag for entry in batch.entries for tag in entry.tags if isinstance(tag, int)]
        key = (site, batch.batch_id)
        if key not in self.batch_ids:
            self.batch_ids[key] = self.batch_base + len(self.batch_ids) + 1
        self.journal.record_sent(
            self.batch_ids[key],
            batch.kind,
            lines,
            catalog=batch.catalog,
            site=site,
            witness=batch.witness,
            maybe_applied=batch.maybe_applied,
        )

    def on_settle(self, site: str | None, settled: Settled) -> None:
        """Journal each request's (or bisection part's) outcomes durably as they settle, so
        that after a crash only requests still unanswered look in doubt."""
        outcome = settled.outcome
        state = self._state(outcome)
        self.journal.record_outcomes_now(
            (tag, state, outcome.code, outcome.message)
            for entry in settled.entries
            for tag in entry.tags
            if isinstance(tag, int)
        )
        self.saw(outcome.error, site)

    @staticmethod
    def _state(outcome: Outcome) -> str:
        """The journal state of an outcome: a REJECTED that says nothing of the row (retriable:
        the request was refused whole, 401, 403, 409, 429 or 503 to the last attempt, no
        connection, the journal failed) was never applied, so a rerun sends the row again."""
        if outcome.status is OutcomeStatus.REJECTED and outcome.retriable:
            return NOT_APPLIED
        return outcome.status.name.lower()

    def saw(self, error: BaseException | None, site: str | None) -> None:
        """Note the error behind an outcome: a connection that never came up stops the run (the
        host is gone for every site); a 401 or 403 stops a one-site run (every later request
        would be refused too), or stops sending to that site of a run over many."""
        if self.gone is None and _never_connected(error):
            logger.error("the site stopped answering (%s): the run stops", error)
            self.gone = error
        if not isinstance(error, AuthenticationError | PermissionDeniedError):
            return
        if not self.lanes.many:
            self.fatal = self.fatal or error
            return
        lane = self.lanes.of(site)
        if lane.refusal is None:
            lane.refusal = error
            lane.counts.refused = f"HTTP {error.status} {error.code}: {error.message}"
            logger.error("site %s refused the credentials (%s): its rows are not sent", site, error)

    def stop_if_refused(self) -> None:
        """Raise when the site refused the credentials (every later request would be refused)
        or the journal could not be written (no request goes out that it cannot record)."""
        if self.journal.failure is not None:
            raise self.journal.failure
        if self.fatal is not None:
            logger.error("the site refused the credentials: the run stops")
            raise ConfigurationError(
                f"the site refused the credentials: {self.fatal}. The refused rows were not "
                "applied; fix the credentials and run the same command again."
            )
        if isinstance(self.gone, ConfigurationError):  # the probe's: it names the address
            raise self.gone
        if self.gone is not None:
            raise ConnectError(
                f"the site stopped answering ({self.gone}); the run stopped. Rows not sent "
                "were not applied: run the same command again once the site answers"
            )

    async def feed(self, on_progress: OnProgress | None, every: int) -> None:
        states = _StateCursor(self.journal.states())
        source = self.paths.source
        with source.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
            for row in read_rows(stream, detect_format(self.paths.source)):
                self.progress.rows += 1
                if isinstance(row, RejectedRow):
                    self.progress.invalid += 1
                    self.reports.rejects.writerow([row.line, row.reason, row.raw])
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
            ticket = await self._submit(row, await self.lanes.adjuster(lane))
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
        code = refusal.code
        message = (
            f"not sent: the site refused the credentials (HTTP {refusal.status}): {refusal.message}"
        )
        self.journal.record_outcome(row.line, NOT_APPLIED, code, message)
        self.reports.rejects.writerow(
            [row.line, f"{code}: {message} (not applied; a rerun sends it again)", row.raw]
        )

    @staticmethod
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

    def _unroutable(self, row: DeltaRow, error: InvalidInputError) -> None:
        """A row for a site this run cannot reach: never sent, so a rerun reaching it (a
        default site set) sends it."""
        self.progress.rejected_at_submit += 1
        self.journal.record_outcome(row.line, NOT_APPLIED, "NO_SITE", str(error))
        self.reports.rejects.writerow(
            [row.line, f"NO_SITE: {error} (not applied; a rerun sends it again)", row.raw]
        )

    def _refuse(self, row: DeltaRow, error: InvalidInputError) -> None:
        """A row the adjuster refused at submit: never sent, rejected for good."""
        self.progress.rejected_at_submit += 1
        self.journal.record_outcome(row.line, "rejected", "INVALID_ROW", str(error))
        self.reports.rejects.writerow([row.line, f"INVALID_ROW: {error}", row.raw])

    def _skip(self, row: DeltaRow, state: LineState, counts: SiteCounts) -> None:
        if state.state == "committed":
            self.progress.done_before += 1
            counts.done_before += 1
        elif state.state == "rejected":
            self.progress.done_before += 1
            counts.done_before += 1
            self.reports.rejects.writerow([row.line, f"{state.code}: {state.message}", row.raw])
        else:
            self.progress.held_in_doubt += 1
            counts.held_in_doubt += 1
            self._write_in_doubt(row)

    def settle_done(self, *, everything: bool = False) -> None:
        while self.outstanding and (everything or self.outstanding[0][1].done()):
            row, ticket, counts = self.outstanding.popleft()
            assert ticket.outcome is not None
            counts.outcomes[ticket.outcome.status.name.lower()] += 1
            self._record(row, ticket, ticket.outcome)

    def _record_netted(self, row: DeltaRow, ticket: Ticket) -> None:
        """Journal the rows of an entry netted to zero all at once, when the last is settled:
        were one journalled committed and another not, a rerun would send that one alone."""
        _, lines = self.netted.setdefault(id(ticket), (ticket, []))
        lines.append(row.line)
        if len(lines) == ticket.count:
            del self.netted[id(ticket)]
            self.journal.record_outcomes(lines, "committed", NOOP.code, NOOP.message)

    def _record(self, row: DeltaRow, ticket: Ticket, outcome: Outcome) -> None:
        status = outcome.status.name.lower()
        self.progress.outcomes[status] += 1
        # Never in a request, so on_settle did not journal these (every request's entries are).
        if outcome is NOOP:
            self._record_netted(row, ticket)
        elif outcome.status is OutcomeStatus.CANCELLED:
            self.journal.record_outcome(row.line, status, outcome.code, outcome.message)
        if status == "rejected":
            reason = f"{outcome.code}: {outcome.message}"
            if self._state(outcome) == NOT_APPLIED:
                reason += " (not applied; a rerun sends it again)"
            self.reports.rejects.writerow([row.line, reason, row.raw])
        elif status == "in_doubt":
            self._write_in_doubt(row)

    def _write_in_doubt(self, row: DeltaRow) -> None:
        self.reports.in_doubt.writerow(
            [
                row.line,
                row.product_id or "",
                row.inventory_id or "",
                row.variant_id or "",
                row.delta,
                row.sku or "",
                row.location_id or "",
                row.site or "",
            ]
        )

    def summary(self, seconds: float) -> BulkSummary:
        outcomes = self.progress.outcomes
        self.journal.flush()
        self.stop_if_refused()
        return BulkSummary(
            rows=self.progress.rows,
            invalid=self.progress.invalid,
            done_before=self.progress.done_before,
            held_in_doubt=self.progress.held_in_doubt,
            submitted=self.progress.submitted,
            committed=outcomes["committed"],
            rejected=outcomes["rejected"]
            + self.progress.rejected_at_submit
            + self.progress.refused,
            in_doubt=outcomes["in_doubt"],
            cancelled=outcomes["cancelled"],
            requests=self.lanes.totals().requests,
            seconds=seconds,
            journal_counts=self.journal.counts(),
            batches_by_catalog=self.journal.batches_by_catalog(),
            paths=self.paths,
            sites=self.lanes.summaries() if self.lanes.many else {},
            resolved_by_witness=dict(self.resolved),
        )


def _never_connected(error: BaseException | None) -> bool:
    """Whether a request gave up without ever reaching the site (an outcome's error is such
    only after every retry and resend): no connection, or none in time."""
    if isinstance(error, RequestTimeoutError):
        return not error.sent
    return isinstance(error, ConnectError)


class _StateCursor:
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

"""How a bulk run ended: its counts, the journal's over every run, and the exit code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .journal import Journal
from .lanes import Lanes
from .progress import BulkProgress
from .reports import BulkPaths

__all__ = ["BulkSummary", "summarize"]


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


def summarize(
    progress: BulkProgress,
    lanes: Lanes,
    journal: Journal,
    paths: BulkPaths,
    resolved: Mapping[str, int],
    seconds: float,
) -> BulkSummary:
    """The summary of a finished run (``resolved``: rows resolved by witness at its start)."""
    outcomes = progress.outcomes
    return BulkSummary(
        rows=progress.rows,
        invalid=progress.invalid,
        done_before=progress.done_before,
        held_in_doubt=progress.held_in_doubt,
        submitted=progress.submitted,
        committed=outcomes["committed"],
        rejected=outcomes["rejected"] + progress.rejected_at_submit + progress.refused,
        in_doubt=outcomes["in_doubt"],
        cancelled=outcomes["cancelled"],
        requests=lanes.totals().requests,
        seconds=seconds,
        journal_counts=journal.counts(),
        batches_by_catalog=journal.batches_by_catalog(),
        paths=paths,
        sites=lanes.summaries() if lanes.many else {},
        resolved_by_witness=dict(resolved),
    )

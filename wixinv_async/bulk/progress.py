"""A bulk run's live counters, in rows, and the rough total a progress display divides by."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .lanes import LaneTotals
from .rows import detect_format

__all__ = ["BulkProgress", "OnProgress", "count_lines"]


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


def count_lines(path: Path) -> int:
    """Data rows in a file, roughly (newlines, less a CSV header): for progress totals."""
    with path.open("rb") as handle:
        newlines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(newlines - (detect_format(path) == "csv"), 0)

"""Where a bulk run keeps its journal, and the two CSV reports it writes for the user.

The rejects file lists every row not applied, with its line, why and its text; the in-doubt
file lists every row whose outcome is unknown, for reconciliation. Both are rewritten on every
run (a rerun lists again what it skips), so they always describe the input's current state.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .rows import DeltaRow

__all__ = ["BulkPaths", "Reports"]

_NOT_APPLIED_NOTE = " (not applied; a rerun sends it again)"
"""Appended to the reason of a rejected row that was never applied, so a rerun sends it."""

_IN_DOUBT_COLUMNS = [
    "line", "product_id", "inventory_id", "variant_id", "delta", "sku", "location_id", "site"
]  # fmt: skip
"""The in-doubt report's columns (the V3 ones last, where a reader of the V1 ones ignores them)."""


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


class Reports:
    """The rejects and in-doubt CSV files, rewritten on every run."""

    def __init__(self, paths: BulkPaths):
        self._paths = paths
        self._rejects: Any = None
        self._in_doubt: Any = None
        self._files: list[TextIO] = []

    def __enter__(self) -> Reports:
        self._rejects = self._open(self._paths.rejects, ["line", "reason", "row"])
        self._in_doubt = self._open(self._paths.in_doubt, _IN_DOUBT_COLUMNS)
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

    def reject(self, line: int, reason: str, raw: str, *, not_applied: bool = False) -> None:
        """List a row not applied; ``not_applied``: never applied, so a rerun sends it again."""
        self._rejects.writerow([line, reason + _NOT_APPLIED_NOTE if not_applied else reason, raw])

    def in_doubt(self, row: DeltaRow) -> None:
        """List a row whose outcome is unknown, with what reconciling it needs."""
        self._in_doubt.writerow(
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

"""A crash-safe SQLite journal for bulk adjustment runs.

Each batch is recorded durably *before* its request is sent (the lines it carries, state
``sent``), and each line's outcome after. Reading the journal back after a crash or ``kill -9``
tells every input line apart:

- ``committed`` / ``rejected``: done, skip it;
- ``sent`` (the outcome was never recorded) or ``in_doubt``: the server may or may not have
  applied it, so it is never re-sent unless the user says so;
- absent, ``cancelled`` without ever being sent, or ``not_applied`` (its request was refused
  whole, for no fault of the line: 401, 429 to the last attempt, ...): not applied, send it.

The journal refuses another version of the input file (lines are known by their number),
unless it knows of no line that was or may have been applied: then it follows the new version.

With a witness (``adjust --witness``), each request sent also records its witness entry in
the ``witness_sends`` table (in the same transaction as its lines): the slot's variant, the
step, the quantity expected before it and the slot's unconfirmed steps. A slot has one request
in flight at a time, so after a crash only a slot's last send can have lines still ``sent``;
:meth:`Journal.witnessed_in_flight` lists those for the runner to resolve by reading the
witness (:mod:`wixinv_async.bulk.witnessed`). The table is new beside the others (no column of
``lines`` or ``batches`` changes), so the schema version stays 2: a journal of an older
version gets the empty table when opened, and older code ignores it (its ``sent`` lines stay
in doubt, which is safe).

A line that was sent is never downgraded to ``cancelled``: a later CANCELLED outcome for it is
stored as ``in_doubt``, because its request may have been applied.

A full disk must not leave rows in doubt that were settled in memory. Without room, the
outcomes of the requests already sent could not be written and their rows stayed ``sent``:
the rerun held back as in doubt rows the first run knew were committed, refused by the server,
or (bisected parts the journal could not record) never sent again after a refusal. So a run
holds a reserve, ``JOURNAL.reserve`` (``reserve`` bytes of disk, 1 MiB by default, removed when
the journal closes), and deletes it on the first write that fails: the disk then has room for
those outcomes (SQLite's write-ahead log needs disk to grow, so room inside the database file
would not do). After a failure, outcomes that need no row (a line never journalled as sent,
now cancelled or not applied: absent means the same) are not written at all.

One run at a time: a journal is locked (the database file itself, see :func:`_lock`; released
when the process ends, even by ``kill -9``), since two runs at once would both send every line
neither had journalled yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from ..errors import ConfigurationError
from ..outcomes import WitnessMark

__all__ = [
    "FINAL_STATES",
    "NOT_APPLIED",
    "SCHEMA_VERSION",
    "Journal",
    "LineState",
    "WitnessedSend",
    "input_fingerprint",
    "should_send",
    "went_elsewhere",
]

logger = logging.getLogger(__name__)

FINAL_STATES: Final = frozenset({"committed", "rejected"})
NOT_APPLIED: Final = "not_applied"
_RESENDABLE: Final = frozenset({"cancelled", NOT_APPLIED})

SCHEMA_VERSION: Final = 3
"""1: the first journals (no ``schema`` key in ``meta``); 2: ``batches.catalog``, the catalog
(``V1_CATALOG`` or ``V3_CATALOG``) each request went to; 3: ``lines.site``, the site a line's
request went to (``NULL``: the run's one site, unnamed). An older journal is upgraded in place
when opened, each missing column added (its batches' catalog stays NULL: they all went to V1;
its lines' site stays NULL: they all went to the one site of their run); a journal of a later
version than this code knows is refused."""

_UPGRADES: Final = (("batches", "catalog"), ("lines", "site"))
"""The (table, column) each schema version added, oldest first: each is a nullable TEXT."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, run INTEGER NOT NULL, lines INTEGER NOT NULL,
    catalog TEXT
);
CREATE TABLE IF NOT EXISTS lines (
    line INTEGER PRIMARY KEY, batch INTEGER, state TEXT NOT NULL, code TEXT, message TEXT,
    site TEXT
);
CREATE TABLE IF NOT EXISTS witness_sends (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, batch INTEGER NOT NULL, run INTEGER NOT NULL,
    product_id TEXT NOT NULL, variant_id TEXT NOT NULL, step INTEGER NOT NULL,
    expected INTEGER, suspects TEXT NOT NULL, maybe_applied INTEGER NOT NULL
);
"""
_UPSERT: Final = (
    "INSERT INTO lines (line, state, code, message) VALUES (?4, ?1, ?2, ?3) "
    "ON CONFLICT(line) DO UPDATE SET "
    "state=CASE WHEN excluded.state='cancelled' AND lines.state IN ('sent','in_doubt') "
    "THEN 'in_doubt' ELSE excluded.state END, "
    "code=excluded.code, message=excluded.message"
)
_UPDATE: Final = (
    "UPDATE lines SET state=CASE WHEN ?1='cancelled' AND state IN ('sent','in_doubt') "
    "THEN 'in_doubt' ELSE ?1 END, code=?2, message=?3 WHERE line=?4"
)
"""The same for a line already journalled only: what a full disk leaves room for."""


class WitnessedSend(NamedTuple):
    """A slot's last journalled request whose lines are still ``sent`` (see the module doc):
    its witness mark, whether an earlier send of its lines may have applied them, its lines."""

    batch: int
    mark: WitnessMark
    maybe_applied: bool
    lines: tuple[int, ...]


class LineState(NamedTuple):
    """What the journal knows of one input line."""

    line: int
    state: str
    code: str | None
    message: str | None
    site: str | None = None
    """The site its last request went to (``None``: never sent, or the one unnamed site)."""


def input_fingerprint(path: Path) -> str:
    """A hash of the whole file. Lines are known by their number, so any edit (even one digit in
    the middle, the size unchanged) must make the journal refuse the file. Reading it costs about
    a second per GB, little beside sending it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Journal:
    """The journal of one input file. Not thread-safe; one run at a time.

    Every SQLite error becomes a :class:`~wixinv_async.errors.ConfigurationError` saying what
    to do: a journal that cannot be read (damaged, truncated, not a journal) when it is opened
    or read, and one that cannot be written (a full disk) when a batch is recorded as sent, so
    that request is never sent. Outcomes that cannot be written stay buffered (their lines look
    in doubt after a crash, which is safe) and the first such error is kept in ``failure``, for
    the run to stop at. ``reserve``: the bytes kept for that moment (see the module doc).
    ``max_pages`` caps how many pages the database may grow by once open, as a full disk
    would (SQLite's ``max_page_count``), and deleting the reserve raises the cap by its size,
    as it would free that much disk: for tests of what a full disk does.
    """

    def __init__(
        self,
        path: Path,
        *,
        fingerprint: str,
        outcome_buffer: int = 5_000,
        max_pages: int | None = None,
        reserve: int = 1 << 20,
    ):
        self.path = path
        self.failure: ConfigurationError | None = None
        self._lock = _lock(path)
        self._reserve = path.with_name(path.name + ".reserve")
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            with self._reading():
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                self._check_schema()
                self._check_fingerprint(fingerprint)
            with self._writing():
                self.run = self._start_run()
            if self.failure is not None:
                raise self.failure
            self._reserved = self._fill_reserve(reserve)
            self._capped = max_pages is not None
            if max_pages is not None:
                self._cap(int(max_pages))
        except BaseException:
            self._db.close()
            self._reserve.unlink(missing_ok=True)
            self._lock.close()
            raise
        self._pending_outcomes: list[tuple[str, str | None, str | None, int]] = []
        self._outcome_buffer = outcome_buffer
        logger.info("journal %s opened for run %d", path, self.run)

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if row is not None and (version is None or version > SCHEMA_VERSION):
            raise ConfigurationError(
                f"journal {self.path} has schema version {row[0]!r}, newer than this "
                f"wixinv-async reads ({SCHEMA_VERSION}): run it with the version that wrote it"
            )
        if version == SCHEMA_VERSION:
            return
        with self._transaction():
            for table, column in _UPGRADES:
                columns = {info[1] for info in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        logger.info("journal %s upgraded to schema version %d", self.path, SCHEMA_VERSION)

    def _check_fingerprint(self, fingerprint: str) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='input'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('input', ?)", (fingerprint,))
        elif row[0] != fingerprint and self._knows_nothing_applied():
            # Every line it holds is to be sent again anyway: it can follow the edited file.
            logger.info("journal %s follows the edited input: nothing was applied", self.path)
            with self._transaction():
                self._db.execute("DELETE FROM lines")
                self._db.execute("UPDATE meta SET value=? WHERE key='input'", (fingerprint,))
        elif row[0] != fingerprint:
            raise ConfigurationError(
                f"journal {self.path} belongs to another version of the input file; "
                "rerun with the original file or give a new --journal path"
            )

    def _knows_nothing_applied(self) -> bool:
        """Whether no line was ever applied or may have been: a run that sent nothing (a bad
        header, say) or whose every request was refused whole."""
        resendable = ", ".join(f"'{state}'" for state in sorted(_RESENDABLE))
        row = self._db.execute(
            f"SELECT 1 FROM lines WHERE state NOT IN ({resendable}) LIMIT 1"  # noqa: S608
        ).fetchone()
        return row is None

    def _start_run(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='runs'").fetchone()
        run = int(row[0]) + 1 if row else 1
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('runs', ?)", (str(run),))
        return run

    def _fill_reserve(self, size: int) -> int:
        """Hold ``size`` bytes of disk beside the journal for outcomes after a write fails; the
        bytes held (0 when the disk is full already: the run is only less thorough then)."""
        if size <= 0:
            return 0
        try:
            with self._reserve.open("wb") as handle:
                left = size
                while left:
                    left -= handle.write(bytes(min(left, 1 << 16)))
                handle.flush()
                os.fsync(handle.fileno())  # blocks really taken, not promised
        except OSError as exc:
            self._reserve.unlink(missing_ok=True)
            logger.warning("journal %s: no room for its reserve (%s)", self.path, exc)
            return 0
        return self._reserve.stat().st_size

    def _release_reserve(self) -> bool:
        """Delete the reserve, once: disk for the outcomes still to come."""
        size, self._reserved = self._reserved, 0
        if not size:
            return False
        self._reserve.unlink(missing_ok=True)
        if self._capped and self.failure is not None:  # the simulated disk gets that room back
            with contextlib.suppress(sqlite3.Error):
                (page,) = self._db.execute("PRAGMA page_size").fetchone()
                (cap,) = self._db.execute("PRAGMA max_page_count").fetchone()
                self._db.execute(f"PRAGMA max_page_count={int(cap) + size // int(page)}")
        logger.warning("journal %s: reserve freed for the outcomes of requests sent", self.path)
        return True

    def _cap(self, pages: int) -> None:
        with self._reading():
            (count,) = self._db.execute("PRAGMA page_count").fetchone()
            self._db.execute(f"PRAGMA max_page_count={int(count) + pages}")

    def next_batch_id(self) -> int:
        with self._reading():
            row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM batches").fetchone()
        return int(row[0]) + 1

    def record_sent(
        self,
        batch_id: int,
        kind: str,
        lines: Iterable[int],
        *,
        catalog: str | None = None,
        site: str | None = None,
        witness: WitnessMark | None = None,
        maybe_applied: bool = False,
    ) -> None:
        """Durably mark ``lines`` as carried by a request that is about to be sent (to
        ``catalog`` of ``site``, with its ``witness`` entry, ``maybe_applied`` by an earlier
        send); raise (so it is not sent) when that cannot be written, or an earlier write
        failed."""
        if self.failure is not None:
            raise self.failure
        numbers = [(line, batch_id, site) for line in lines]
        with self._writing(), self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO batches (id, kind, run, lines, catalog) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch_id, kind, self.run, len(numbers), catalog),
            )
            if witness is not None:
                self._record_witness(batch_id, witness, maybe_applied)
            self._db.executemany(
                "INSERT INTO lines (line, batch, state, site) VALUES (?, ?, 'sent', ?) "
                "ON CONFLICT(line) DO UPDATE SET batch=excluded.batch, state='sent', "
                "site=excluded.site",
                numbers,
            )
        if self.failure is not None:
            self._release_reserve()
            raise self.failure
        logger.debug(
            "journal: batch %d (%s, %d lines) recorded as sent", batch_id, kind, len(numbers)
        )

    def _record_witness(self, batch_id: int, mark: WitnessMark, maybe_applied: bool) -> None:
        suspects = ",".join(map(str, mark.suspects))
        self._db.execute(
            "INSERT INTO witness_sends (batch, run, product_id, variant_id, step, expected, "
            "suspects, maybe_applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch_id, self.run, mark.product_id, mark.variant_id, mark.step, mark.expected,
             suspects, int(maybe_applied)),
        )  # fmt: skip

    def witnessed_in_flight(self, product_id: str) -> list[WitnessedSend]:
        """The last journalled request of each slot of the witness ``product_id`` that still
        has lines ``sent``: what was on the wire (or about to be) when a run ended."""
        with self._reading():
            rows = self._db.execute(
                "SELECT w.batch, w.variant_id, w.step, w.expected, w.suspects, w.maybe_applied "
                "FROM witness_sends w WHERE w.product_id = ?1 AND w.seq = (SELECT MAX(seq) "
                "FROM witness_sends v WHERE v.product_id = ?1 AND v.variant_id = w.variant_id)",
                (product_id,),
            ).fetchall()
            found = []
            for batch, variant, step, expected, suspects, maybe in rows:
                lines = self._db.execute(
                    "SELECT line FROM lines WHERE batch = ? AND state = 'sent' ORDER BY line",
                    (batch,),
                ).fetchall()
                if lines:
                    steps = tuple(int(s) for s in suspects.split(",") if s)
                    mark = WitnessMark(product_id, variant, step, expected, steps)
                    found.append(
                        WitnessedSend(batch, mark, bool(maybe), tuple(r[0] for r in lines))
                    )
        return found

    def record_outcome(self, line: int, state: str, code: str | None, message: str | None) -> None:
        """Buffer a line's outcome; written in groups (losing them in a crash only makes the
        lines look in doubt, which is safe)."""
        self.record_outcomes([line], state, code, message)

    def record_outcomes(
        self, lines: Iterable[int], state: str, code: str | None, message: str | None
    ) -> None:
        """Buffer one outcome of several lines: they reach the file in the same transaction."""
        self._pending_outcomes.extend((state, code, message, line) for line in lines)
        if len(self._pending_outcomes) >= self._outcome_buffer:
            self.flush()

    def record_outcomes_now(
        self, outcomes: Iterable[tuple[int, str, str | None, str | None]]
    ) -> None:
        """Write the outcomes of one finished batch durably at once, so that after a crash only
        the batches still in flight look in doubt."""
        self._pending_outcomes.extend(
            (state, code, msg, line) for line, state, code, msg in outcomes
        )
        self.flush()

    def flush(self) -> None:
        """Write the buffered outcomes; when that fails, they stay buffered (see ``failure``)."""
        if self._pending_outcomes and not self._write_outcomes() and self._release_reserve():
            self._write_outcomes()

    def _write_outcomes(self) -> bool:
        """One transaction of the buffered outcomes; whether it was written. After a failure,
        resendable outcomes of lines never journalled are dropped (absent means the same)."""
        outcomes, self._pending_outcomes = self._pending_outcomes, []
        sparing = self.failure is not None
        with self._writing(keep=outcomes), self._transaction():
            for spare, group in itertools.groupby(
                outcomes, key=lambda o: sparing and o[0] in _RESENDABLE
            ):
                self._db.executemany(_UPDATE if spare else _UPSERT, group)
            return True
        return False

    def states(self, *, chunk: int = 10_000) -> Iterator[LineState]:
        """Every journalled line, in line order (for a merge with the input stream).

        Read ``chunk`` lines at a time, each chunk in its own short read: a read left open for
        the whole run would keep SQLite from checkpointing, and the WAL would grow with every
        write of the run. Each chunk starts past the last line read, which is at least every
        line the caller has already submitted, so the run's own writes are never read back."""
        self.flush()
        after = 0
        while True:
            with self._reading():
                rows = self._db.execute(
                    "SELECT line, state, code, message, site FROM lines WHERE line > ? "
                    "ORDER BY line LIMIT ?",
                    (after, chunk),
                ).fetchall()
            for row in rows:
                yield LineState(*row)
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def in_doubt(self) -> list[LineState]:
        """Lines that may or may not have been applied."""
        with self._reading():
            rows = self._db.execute(
                "SELECT line, state, code, message, site FROM lines "
                "WHERE state IN ('sent', 'in_doubt') ORDER BY line"
            ).fetchall()
        return [LineState(*row) for row in rows]

    def batches_by_catalog(self) -> dict[str, int]:
        """Requests journalled, by the catalog they went to (``V1_CATALOG`` for batches of a
        version-1 journal, which knew only V1)."""
        with self._reading():
            rows = self._db.execute(
                "SELECT COALESCE(catalog, 'V1_CATALOG'), COUNT(*) FROM batches GROUP BY 1"
            ).fetchall()
        return {str(catalog): int(count) for catalog, count in rows}

    def counts(self) -> dict[str, int]:
        """Lines by state."""
        with self._reading():
            rows = self._db.execute("SELECT state, COUNT(*) FROM lines GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}

    def close(self) -> None:
        """Write what is buffered (a last try when writing failed before), close, unlock."""
        try:
            self.flush()
            self._db.close()
        finally:
            self._reserved = 0
            self._reserve.unlink(missing_ok=True)  # before unlocking: the next run makes its own
            self._lock.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn an SQLite error into the advice for a journal that cannot be read."""
        try:
            yield
        except sqlite3.Error as exc:
            logger.error("journal %s cannot be read: %s", self.path, exc)
            raise ConfigurationError(
                f"journal {self.path} cannot be read ({exc}): it is damaged or not a journal. "
                "It alone records which rows were sent: keep it, and start over with another "
                "--journal path only once you have checked on the site what it had applied"
            ) from None

    @contextlib.contextmanager
    def _writing(
        self, *, keep: list[tuple[str, str | None, str | None, int]] | None = None
    ) -> Iterator[None]:
        """Keep the first SQLite error of a write in ``failure`` (and the outcomes that were
        not written in the buffer): the run stops, and nothing more is sent."""
        try:
            yield
        except sqlite3.Error as exc:
            if keep is not None:
                self._pending_outcomes[:0] = keep
            if self.failure is None:
                logger.error("journal %s cannot be written (%s): the run stops", self.path, exc)
                self.failure = ConfigurationError(
                    f"cannot write the journal {self.path} ({exc}); the run stopped, sending "
                    "nothing the journal could not record. Fix the cause (a full disk: free "
                    "some space), then run the same command again: it goes on where it stopped"
                )


def _lock(path: Path) -> BinaryIO:
    """Hold an exclusive lock for as long as the returned file stays open, or refuse.

    On POSIX the lock is a ``flock`` on the journal database itself: a lock file can be
    deleted while a run holds it, and the next run would then lock a new file and run alongside
    (``flock`` and SQLite's own ``fcntl`` locks do not interact; this descriptor is closed only
    after SQLite's connection, since closing any descriptor of a file drops the process's
    ``fcntl`` locks on it). Windows locks byte ranges for good, which would block SQLite's own
    reads, so there it locks ``PATH.lock``, which Windows does not let anyone delete while it is
    open.
    """
    lock_path = path.with_name(path.name + ".lock") if sys.platform == "win32" else path
    handle = lock_path.open("a+b")
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigurationError(
            f"journal {path} is in use by another run; wait for that run to end, then run again"
        ) from None
    return handle


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
            self._db.execute("ROLLBACK")


def went_elsewhere(state: LineState | None, site: str | None) -> bool:
    """Whether a line that was (or may have been) applied went to another site than ``site``,
    the one this run would send it to: the run's default site changed since, and skipping it
    as done, or holding it as in doubt, would be false for this site."""
    if state is None or state.site is None or site is None or state.state in _RESENDABLE:
        return False
    return state.site != site


def should_send(state: LineState | None, *, retry_in_doubt: bool) -> bool:
    """Whether a line in this journal state goes to the server on this run."""
    if state is None or state.state in _RESENDABLE:
        return True
    if state.state in FINAL_STATES:
        return False
    return retry_in_doubt

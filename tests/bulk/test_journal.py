"""The crash-safe journal: what is recorded before sending decides what a rerun does."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from wixinv_async.bulk.journal import (
    SCHEMA_VERSION,
    Journal,
    LineState,
    input_fingerprint,
    should_send,
)
from wixinv_async.errors import ConfigurationError


def test_sent_lines_without_outcome_read_back_as_in_doubt(tmp_path: Path) -> None:
    """Lines recorded as sent, then a crash before their outcome: the reopened journal says sent."""
    journal = Journal(tmp_path / "j.sqlite", fingerprint="f")
    journal.record_sent(journal.next_batch_id(), "decrement", [2, 3])
    journal.record_outcome(4, "committed", None, None)  # buffered, lost in the "crash"
    _die(journal)
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="f")) as reopened:
        assert [s.line for s in reopened.in_doubt()] == [2, 3]
        assert {s.line for s in reopened.states()} == {2, 3}


def test_outcomes_replace_sent_and_cancel_never_downgrades_a_sent_line(tmp_path: Path) -> None:
    """Committed and rejected are final; CANCELLED on a sent line stays in doubt."""
    journal = Journal(tmp_path / "j.sqlite", fingerprint="f")
    journal.record_sent(1, "increment", [10, 11, 12])
    journal.record_outcome(10, "committed", None, None)
    journal.record_outcome(11, "rejected", "NOT_FOUND", "no such product")
    journal.record_outcome(12, "cancelled", None, None)
    journal.record_outcome(13, "cancelled", None, None)
    journal.close()
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="f")) as reopened:
        states = {s.line: s for s in reopened.states()}
    assert states[10].state == "committed"
    assert states[11] == LineState(11, "rejected", "NOT_FOUND", "no such product")
    assert states[12].state == "in_doubt"
    assert states[13].state == "cancelled"


@pytest.mark.parametrize(
    ("state", "retry_in_doubt", "expected"),
    [
        (None, False, True),
        ("cancelled", False, True),
        ("committed", True, False),
        ("rejected", True, False),
        ("sent", False, False),
        ("in_doubt", False, False),
        ("sent", True, True),
        ("in_doubt", True, True),
    ],
)
def test_should_send(state: str | None, retry_in_doubt: bool, expected: bool) -> None:
    """Only never-sent lines go out again, unless in-doubt retry is asked for."""
    line_state = None if state is None else LineState(1, state, None, None)
    assert should_send(line_state, retry_in_doubt=retry_in_doubt) is expected


def test_journal_refuses_another_input(tmp_path: Path) -> None:
    """A journal made for one input file, once it sent a line, refuses a changed one."""
    data = tmp_path / "in.csv"
    data.write_text("a\n")
    with closing(Journal(tmp_path / "j.sqlite", fingerprint=input_fingerprint(data))) as journal:
        journal.record_sent(1, "increment", [2])
    data.write_text("b\n")
    with pytest.raises(ConfigurationError, match="another version"):
        Journal(tmp_path / "j.sqlite", fingerprint=input_fingerprint(data))


def test_batch_ids_continue_across_runs(tmp_path: Path) -> None:
    """A rerun's batch ids never collide with an earlier run's."""
    journal = Journal(tmp_path / "j.sqlite", fingerprint="f")
    journal.record_sent(journal.next_batch_id(), "increment", [1])
    journal.close()
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="f")) as again:
        assert again.next_batch_id() == 2
        assert again.run == 2


def test_a_second_run_on_the_same_journal_is_refused_while_the_first_is_open(
    tmp_path: Path,
) -> None:
    """Two runs at once would both send the lines neither has journalled: the second one stops."""
    first = Journal(tmp_path / "j.sqlite", fingerprint="f")
    with pytest.raises(ConfigurationError, match="another run"):
        Journal(tmp_path / "j.sqlite", fingerprint="f")
    first.close()
    Journal(tmp_path / "j.sqlite", fingerprint="f").close()  # free again once the first ends


def test_deleting_a_lock_file_does_not_let_a_second_run_in(tmp_path: Path) -> None:
    """The exclusion holds when every file beside the journal is deleted while a run holds it."""
    first = Journal(tmp_path / "j.sqlite", fingerprint="f")
    for path in tmp_path.iterdir():
        if path.name != "j.sqlite" and not path.name.startswith("j.sqlite-"):  # -wal, -shm
            path.unlink()
    with pytest.raises(ConfigurationError, match="another run"):
        Journal(tmp_path / "j.sqlite", fingerprint="f")
    first.close()


def test_the_lock_leaves_sqlite_locking_intact(tmp_path: Path) -> None:
    """A journal closed and reopened in one process keeps working: closing the lock's descriptor
    after SQLite's own leaves nothing half-locked."""
    for run in (1, 2, 3):
        with closing(Journal(tmp_path / "j.sqlite", fingerprint="f")) as journal:
            journal.record_sent(journal.next_batch_id(), "increment", [run])
            journal.record_outcome(run, "committed", None, None)
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="f")) as journal:
        assert journal.counts() == {"committed": 3}


def _die(journal: Journal) -> None:
    """What kill -9 leaves: nothing buffered is written, the connection and the lock just go."""
    journal._db.close()
    journal._lock.close()


@pytest.mark.parametrize("name", ["orders #12.csv.journal", "what?.journal", "x%41.journal"])
def test_journal_paths_with_uri_characters_read_back(tmp_path: Path, name: str) -> None:
    """A journal named with #, ? or % reads its own lines back (no stray database opened)."""
    with closing(Journal(tmp_path / name, fingerprint="f")) as journal:
        journal.record_sent(1, "increment", [5])
        assert [s.line for s in journal.states()] == [5]
    assert sorted(p.name for p in tmp_path.iterdir() if "journal" not in p.name) == []


@pytest.mark.parametrize("rows", [30_000, 100_000])
def test_fingerprint_sees_an_edit_anywhere_in_the_file(tmp_path: Path, rows: int) -> None:
    """Same size, one delta changed near the end (1.4 MiB) or in the middle (4.8 MiB)."""
    data = tmp_path / "in.csv"
    body = "product_id,variant_id,delta\n" + "".join(
        f"p{i:06d},00000000-0000-0000-0000-000000000000,-2\n" for i in range(rows)
    )
    data.write_text(body)
    before = input_fingerprint(data)
    at = body.index("-2", len(body) // 2 if rows > 50_000 else len(body) - 10)
    data.write_text(body[:at] + "-3" + body[at + 2 :])
    assert input_fingerprint(data) != before


def test_reading_states_back_does_not_hold_the_wal_open(tmp_path: Path) -> None:
    """While a run walks the states, its writes can still be checkpointed, so the WAL stays small."""
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="f")) as journal:
        journal.record_outcomes(range(1, 26), "cancelled", None, None)
        journal.flush()
        seen = []
        for state in journal.states(chunk=10):
            seen.append(state.line)
            journal.record_sent(journal.next_batch_id(), "increment", [state.line])
            busy, _, _ = journal._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, f"a reader blocks the checkpoint at line {state.line}"
        assert seen == list(range(1, 26))


def test_a_file_that_is_not_a_journal_is_a_clear_configuration_error(tmp_path: Path) -> None:
    """Garbage at the journal's path: a ConfigurationError naming it, not sqlite3.DatabaseError."""
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some text of some length" * 4)
    with pytest.raises(ConfigurationError, match=r"j\.sqlite cannot be read \(file is not a"):
        Journal(path, fingerprint="f")
    path.unlink()  # and the lock is released: a fresh journal opens
    Journal(path, fingerprint="f").close()


def test_a_truncated_journal_is_a_clear_configuration_error(tmp_path: Path) -> None:
    """A journal cut short (a copy interrupted) fails to open or read with the same advice."""
    path = tmp_path / "j.sqlite"
    with closing(Journal(path, fingerprint="f")) as journal:
        journal.record_outcomes(range(1, 20_001), "cancelled", None, None)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with (
        pytest.raises(ConfigurationError, match="cannot be read"),
        closing(Journal(path, fingerprint="f")) as journal,
    ):
        list(journal.states())


def test_a_full_disk_refuses_to_record_a_batch_and_keeps_the_outcomes(tmp_path: Path) -> None:
    """Past the size cap (a full disk), recording a batch raises, so it is not sent; outcomes
    that cannot be written stay buffered and reach the file once there is room again."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path, fingerprint="f", max_pages=8)
    with pytest.raises(ConfigurationError, match="cannot write the journal"):  # noqa: PT012
        for batch in range(1, 1_000):
            journal.record_sent(batch, "increment", range(batch * 300, batch * 300 + 300))
            journal.record_outcomes_now((line, "committed", None, None) for line in [batch * 300])
    assert journal.failure is not None
    journal.record_outcomes_now([(1, "committed", None, None)])  # no raise: kept for later
    with pytest.raises(ConfigurationError, match="cannot write the journal"):
        journal.record_sent(5_000, "increment", [5_000])  # nothing more is sent
    journal._db.execute("PRAGMA max_page_count=100000")  # space freed
    journal.close()
    with closing(Journal(path, fingerprint="f")) as reopened:
        states = {state.line: state.state for state in reopened.states()}
    assert states[1] == "committed"
    assert 5_000 not in states


@pytest.mark.parametrize(
    ("state", "follows"),
    [
        (None, True),
        ("cancelled", True),
        ("not_applied", True),
        ("committed", False),
        ("rejected", False),
        ("sent", False),
        ("in_doubt", False),
    ],
)
def test_a_journal_that_knows_nothing_applied_follows_an_edited_file(
    tmp_path: Path, state: str | None, follows: bool
) -> None:
    """An edited input is refused only when the journal holds a line that was or may have been
    applied; otherwise the journal forgets its lines and follows the new version."""
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="old")) as journal:
        if state == "sent":
            journal.record_sent(1, "increment", [2])
        elif state is not None:
            journal.record_outcome(2, state, None, None)
    if not follows:
        with pytest.raises(ConfigurationError, match="another version"):
            Journal(tmp_path / "j.sqlite", fingerprint="new")
        return
    with closing(Journal(tmp_path / "j.sqlite", fingerprint="new")) as journal:
        assert list(journal.states()) == []
    Journal(tmp_path / "j.sqlite", fingerprint="new").close()  # now bound to the new version


_VERSION_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, run INTEGER NOT NULL, lines INTEGER NOT NULL
);
CREATE TABLE lines (
    line INTEGER PRIMARY KEY, batch INTEGER, state TEXT NOT NULL, code TEXT, message TEXT
);
INSERT INTO meta VALUES ('input', 'fp'), ('runs', '1');
INSERT INTO batches VALUES (1, 'decrement', 1, 2);
INSERT INTO lines VALUES (2, 1, 'committed', NULL, NULL), (3, 1, 'sent', NULL, NULL);
"""


def test_a_journal_written_before_catalogs_were_journalled_is_read_and_upgraded(
    tmp_path: Path,
) -> None:
    """A version-1 journal (no catalog column) opens: its states stand, its batches count as V1."""
    path = tmp_path / "old.journal"
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION_1)
    db.close()
    journal = Journal(path, fingerprint="fp")
    assert [(s.line, s.state) for s in journal.states()] == [(2, "committed"), (3, "sent")]
    assert journal.next_batch_id() == 2
    journal.record_sent(2, "increment", [4], catalog="V3_CATALOG")
    assert journal.batches_by_catalog() == {"V1_CATALOG": 1, "V3_CATALOG": 1}
    journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    db.close()


def test_a_journal_of_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    """A journal from a later version is refused naming its version, and left untouched."""
    path = tmp_path / "new.journal"
    Journal(path, fingerprint="fp").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.close()
    with pytest.raises(ConfigurationError, match="schema version '99', newer than"):
        Journal(path, fingerprint="fp")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='runs'").fetchone() == ("1",)
    db.close()


_VERSION_2 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, run INTEGER NOT NULL, lines INTEGER NOT NULL,
    catalog TEXT
);
CREATE TABLE lines (
    line INTEGER PRIMARY KEY, batch INTEGER, state TEXT NOT NULL, code TEXT, message TEXT
);
INSERT INTO meta VALUES ('input', 'fp'), ('runs', '1'), ('schema', '2');
INSERT INTO batches VALUES (1, 'increment', 1, 2, 'V3_CATALOG');
INSERT INTO lines VALUES (2, 1, 'committed', NULL, NULL), (3, 1, 'sent', NULL, NULL);
"""


def test_a_journal_written_before_sites_were_journalled_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    """A version-2 journal (no site column) opens: its lines keep their states, their site
    NULL (the one site of their run), and new batches record the site they went to."""
    path = tmp_path / "v2.journal"
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION_2)
    db.close()
    journal = Journal(path, fingerprint="fp")
    assert [(s.line, s.state) for s in journal.states()] == [(2, "committed"), (3, "sent")]
    journal.record_sent(2, "decrement", [4, 5], catalog="V1_CATALOG", site="site-b")
    journal.close()
    with sqlite3.connect(path) as db:
        sites = dict(db.execute("SELECT line, site FROM lines").fetchall())
        schema = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    db.close()
    assert sites == {2: None, 3: None, 4: "site-b", 5: "site-b"}
    assert schema == (str(SCHEMA_VERSION),) == ("3",)


def test_a_resent_line_records_the_site_of_its_last_request(tmp_path: Path) -> None:
    """record_sent stores the site per line; a line sent again (a rerun) takes the new site."""
    path = tmp_path / "sites.journal"
    journal = Journal(path, fingerprint="fp")
    journal.record_sent(1, "increment", [2, 3], site="a")
    journal.record_sent(2, "increment", [3], site="b")
    journal.close()
    with sqlite3.connect(path) as db:
        assert dict(db.execute("SELECT line, site FROM lines")) == {2: "a", 3: "b"}
    db.close()


def test_the_reserve_is_held_while_open_and_removed_on_close(tmp_path: Path) -> None:
    """An open journal holds its disk reserve beside it; closing removes it, leaving nothing."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path, fingerprint="f", reserve=100_000)
    reserve = tmp_path / "j.sqlite.reserve"
    assert reserve.stat().st_size == 100_000
    journal.close()
    assert not reserve.exists()

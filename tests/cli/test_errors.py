"""How the CLI fails: exit codes, and with --json one JSON object even on an error (in process)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import wixinv_async
from wixinv_async.cli import main
from wixinv_async.cli._common import emit_summary


@pytest.fixture(autouse=True)
def _no_site(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WIX_BASE_URL", "WIX_API_KEY", "WIX_SITE_ID", "WIX_APP_ID", "WIX_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WIX_INSTANCE_ID", raising=False)


@pytest.mark.parametrize(
    ("argv", "stream"),
    [
        (["adjust", "missing.csv", "--api-key", "k", "--site-id", "s"], "out"),
        (["adjust", "deltas.csv"], "out"),
        (["export", "-o", "inventory.jsonl"], "out"),
        (["export"], "err"),  # the data would have gone to stdout: the JSON goes to stderr
        (["export", "-o", "x.jsonl", "--api-key", "k", "--site-id", "s", "--filter", "["], "out"),
        (["demo", "--products", "0"], "out"),
    ],
)
def test_a_configuration_error_with_json_prints_one_json_object(
    argv: list[str],
    stream: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--json promises a machine-readable result: an error is one object with its exit code."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deltas.csv").write_text("product_id,variant_id,delta\n")
    assert main([*argv, "--json"]) == 2
    captured = capsys.readouterr()
    text = captured.out if stream == "out" else captured.err
    result = json.loads(text.splitlines()[-1])
    assert result["exit_code"] == 2
    assert result["error"]
    if stream == "err":
        assert captured.out == ""


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl"])
def test_an_empty_file_is_a_successful_run_of_0_rows(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both formats alike: exit 0 and the JSON summary on the stdout of the moment."""
    source = tmp_path / name
    source.write_bytes(b"")
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    assert main(["adjust", str(source), *site, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["exit_code"]) == (0, 0)


def test_a_journal_that_cannot_be_created_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--journal in a folder that does not exist: exit 2 naming the path, not a traceback."""
    source = tmp_path / "deltas.csv"
    source.write_text("product_id,variant_id,delta\n")
    journal = tmp_path / "no-such-folder" / "j.sqlite"
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    assert main(["adjust", str(source), "--journal", str(journal), *site, "--json"]) == 2
    captured = capsys.readouterr()
    assert "no-such-folder" in json.loads(captured.out)["error"]
    assert "no-such-folder" in captured.err


@pytest.mark.parametrize("rate", ["200/inf", "200/nan", f"{10**30}/1", "200/1e-300", "1/1e308"])
@pytest.mark.parametrize("command", ["adjust", "export", "demo"])
def test_a_rate_limit_that_means_nothing_is_refused_naming_the_flag(
    rate: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Non-finite or absurd --rate-limit values are usage errors (exit 2), not a silent wait."""
    source = tmp_path / "deltas.csv"
    source.write_text("product_id,variant_id,delta\n")
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    argv = {"adjust": ["adjust", str(source), *site], "export": ["export", *site], "demo": ["demo"]}
    assert main([*argv[command], "--rate-limit", rate]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"--rate-limit={rate!r}" in error


def test_a_damaged_journal_is_a_configuration_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal that is not an SQLite database: exit 2 and advice, not sqlite3.DatabaseError."""
    source = tmp_path / "deltas.csv"
    source.write_text("product_id,variant_id,delta\n")
    (tmp_path / "deltas.csv.journal").write_bytes(b"\x00garbage, not a journal" * 50)
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    assert main(["adjust", str(source), *site]) == 2
    error = capsys.readouterr().err
    assert "deltas.csv.journal cannot be read (file is not a database)" in error
    assert "Traceback" not in error


def test_adjust_at_a_dead_port_stops_at_once_naming_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens at the site's port: exit 2 before any row, naming host and port; no
    journal or reports are left behind."""
    source = tmp_path / "deltas.csv"
    source.write_text("product_id,variant_id,delta\np1,00000000-0000-0000-0000-000000000000,1\n")
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    assert main(["adjust", str(source), *site, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "cannot reach 127.0.0.1:9 (http://127.0.0.1:9" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deltas.csv"]


def test_export_at_a_dead_port_names_the_address_and_writes_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export: exit 2 naming host and port (it named only the path), no empty output file."""
    output = tmp_path / "out.jsonl"
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    assert main(["export", "-o", str(output), *site]) == 2
    assert "cannot reach 127.0.0.1:9" in capsys.readouterr().err
    assert not output.exists()


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package's version and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"wixinv-async {wixinv_async.__version__}\n"


def test_summaries_are_plain_text_not_python_reprs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The closing summary shows a mapping as 'key value, ...' and nothing as '-' or 'none'."""
    source = tmp_path / "deltas.csv"
    source.write_text("product_id,variant_id,delta\n")
    site = ["--api-key", "k", "--site-id", "s", "--base-url", "http://127.0.0.1:9"]
    assert main(["adjust", str(source), *site, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "None" not in out
    assert re.search(r"^journal +none$", out, re.MULTILINE), out
    emit_summary({"rejected": {"NOT_FOUND": 2, "X": 1}, "p50": None}, as_json=False)
    assert capsys.readouterr().out == "rejected  NOT_FOUND 2, X 1\np50       -\n"

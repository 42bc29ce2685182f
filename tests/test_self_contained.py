"""The suite passes on a clone alone: every file it reads lives inside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SDK_REQUESTS = TESTS / "wire" / "official-sdk-requests.json"
# A path built to climb out of the repository: ``ROOT.parent``, ``"../shared"``, ``parents[2]``.
ESCAPES = re.compile(r"ROOT\.parent\b|\.\./shared|parents\[[2-9]\]|['\"]shared['\"]\s*/")


def test_the_vendored_wire_capture_is_inside_the_repository() -> None:
    """The V1 capture the wire tests compare against is vendored under tests/wire."""
    assert SDK_REQUESTS.is_file()
    assert SDK_REQUESTS.resolve().is_relative_to(ROOT)


def test_no_test_reads_a_path_outside_the_repository() -> None:
    """No test module builds a path that climbs out of the clone (such as ``../shared``)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ESCAPES.search(line)
    ]
    assert offenders == []


def test_no_tracked_link_points_outside_the_repository() -> None:
    """A committed symlink to a path on the committer's machine (a worktree's ``.venv``) would
    dangle in every other clone."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing tracked to check")
    listing = subprocess.run(  # noqa: S603
        [git, "-C", str(ROOT), "ls-files", "-s"], capture_output=True, text=True, check=True
    ).stdout
    links = [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith("120000")]
    outside = [link for link in links if not (ROOT / link).resolve().is_relative_to(ROOT.resolve())]
    assert outside == []

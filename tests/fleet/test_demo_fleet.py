"""``wixinv-async demo --fleet``: three worker processes, a real Redis, one killed mid-run."""

from __future__ import annotations

import json

import pytest

from wixinv_async.cli import EXIT_IN_DOUBT, EXIT_OK, build_parser

pytestmark = pytest.mark.slow


def test_demo_fleet_verifies_both_catalogs_after_a_kill_9(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A V1 and a V3 site through three workers, one killed -9: every key verifies
    (final = initial + APPLIED, in doubt listed), 0 x 429 under the strict window."""
    args = build_parser().parse_args(
        [
            "demo",
            "--fleet",
            "--products",
            "40",
            "--fleet-deltas",
            "400",
            "--fleet-rate",
            "50/1",
            "--json",
        ]
    )
    code = args.func(args)
    report = json.loads(capsys.readouterr().out)
    assert code in (EXIT_OK, EXIT_IN_DOUBT)
    assert report["verification"] == "PASS"
    assert report["mismatches"] == 0
    assert report["verified keys"] > 0
    assert report["429 answers"] == 0
    assert report["workers killed"].startswith("worker-")
    assert sorted(report["sites"].values()) == ["V1_CATALOG", "V3_CATALOG"]
    assert (code == EXIT_IN_DOUBT) == bool(report["in_doubt_batches"])

"""The ``wixinv-async emulator`` banner, read from a real emulator process."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _banner(*args: str) -> str:
    """The lines the emulator prints up to its last ``export`` line (then it is stopped)."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "wixinv_async", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("export WIX_SITE_ID="):
                break
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
    return "".join(lines)


@pytest.mark.parametrize(
    ("args", "served"),
    [((), "this emulator: no rate limit"), (("--rate-limit", "50/1"), "each site to 50/1")],
)
def test_the_banner_says_clients_pace_at_200_60_unless_told_off(
    args: tuple[str, ...], served: str
) -> None:
    """The banner tells that clients keep to 200/60 unless --rate-limit off, and its own limit."""
    banner = " ".join(_banner(*args).split())
    assert "pace themselves at Wix's 200/60 per site unless told --rate-limit off" in banner
    assert served in banner
    assert "export WIX_BASE_URL=http://127.0.0.1:" in banner

"""CLI test helpers: the CLI run as a subprocess (the emulator process fixture is suite-wide)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "wixinv_async"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``wixinv-async ARGS`` to completion."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")}
    full_env.update(env or {})
    return subprocess.run(  # noqa: S603
        [*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


def write_csv(path: Path, rows: list[tuple[str, str, int]]) -> None:
    lines = ["product_id,variant_id,delta"] + [f"{p},{v},{d}" for p, v, d in rows]
    path.write_text("\n".join(lines) + "\n")

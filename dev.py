#!/usr/bin/env python3
"""The project's two commands, runnable on a machine that has only Python 3.11+ and pip.

    python3 dev.py demo [ARGS...]   create .venv, install, run the main job on the embedded emulator
    python3 dev.py test [ARGS...]   create .venv, install, run ruff, mypy --strict and the tests

The virtual environment lives in ``.venv`` next to this file and is reinstalled only when
``pyproject.toml`` changes (a hash of it is kept in ``.venv/.installed``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"
LINTED = ("wixinv_async", "tests", "benchmarks", "examples", "dev.py")


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    completed = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)  # noqa: S603
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def ensure_environment() -> None:
    """Create the virtual environment and install the project with its dev extra, once."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def demo(args: list[str]) -> None:
    _run(PYTHON, "-m", "wixinv_async", "demo", *args)


def test(args: list[str]) -> None:
    _run(PYTHON, "-m", "ruff", "check", *LINTED)
    _run(PYTHON, "-m", "ruff", "format", "--check", *LINTED)
    _run(PYTHON, "-m", "mypy", "--strict", "wixinv_async")
    _run(PYTHON, "-m", "pytest", *args)


COMMANDS = {"demo": demo, "test": test}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    ensure_environment()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()

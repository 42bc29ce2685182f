"""What the callgrind benchmarks share: the cut between phases and the bytecode counter."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

_T = TypeVar("_T")


def mark() -> None:
    """Cut callgrind's counts here (``--dump-before=os_getppid``)."""
    os.getppid()


def run_counted(
    script: str,
    emu: Mapping[str, Any],
    flags: Sequence[str],
    keep: str | None,
    read: Callable[[Path], _T],
) -> tuple[dict[str, Any], _T]:
    """Run ``script [flags] --child emu.json`` under callgrind, its counts cut at :func:`mark`:
    the child's report (its last JSON line) and ``read`` of the measured phase's counts
    (``cg.out.2``, copied to ``keep`` when given)."""
    with tempfile.TemporaryDirectory() as out:
        (Path(out) / "emu.json").write_text(json.dumps(emu))
        command = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=os_getppid",
            f"--callgrind-out-file={out}/cg.out",
            sys.executable,
            script,
            *flags,
            "--child",
            f"{out}/emu.json",
        ]
        done = subprocess.run(  # noqa: S603 - our own script under valgrind
            command, capture_output=True, text=True, check=True
        )
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        counts = Path(out) / "cg.out.2"
        if keep:
            shutil.copyfile(counts, keep)
        return report, read(counts)


class OpcodeCounter:
    """Bytecodes executed, by function (file, name, first line), while ``on`` (install
    :meth:`trace` with ``sys.settrace``)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.on = False

    def trace(self, frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode" and self.on:
            code = frame.f_code
            self.counts[(code.co_filename, code.co_name, code.co_firstlineno)] += 1
        return self.trace


@contextlib.contextmanager
def tracing(counter: OpcodeCounter) -> Iterator[OpcodeCounter]:
    """Count bytecodes into ``counter`` between the marks: each :func:`mark` turns it on or
    off."""
    real = os.getppid

    def toggle() -> int:
        counter.on = not counter.on
        return real()

    os.getppid = toggle
    sys.settrace(counter.trace)
    try:
        yield counter
    finally:
        sys.settrace(None)
        os.getppid = real

"""What the callgrind benchmarks share: the cut between phases and the bytecode counter."""

from __future__ import annotations

import collections
import os
from types import FrameType
from typing import Any


def mark() -> None:
    """Cut callgrind's counts here (``--dump-before=os_getppid``)."""
    os.getppid()


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

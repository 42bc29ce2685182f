"""Pinning benchmark processes to CPUs, so a client and the server it measures never share one.

On this 2-core machine, a load generator and a server left to the scheduler sometimes land on
the same CPU, and the extra work of one side then slows the other: a ratio measured that way
says more about the scheduler than about the code. Each benchmark with a server in a child
process pins itself to ``CLIENT_CPU`` and the server to ``SERVER_CPU``. Where pinning is not
available (one CPU, not Linux), nothing changes.
"""

from __future__ import annotations

import os

__all__ = ["CLIENT_CPU", "SERVER_CPU", "pin", "unpin"]

CLIENT_CPU = 0
SERVER_CPU = 1


def pin(cpu: int, pid: int = 0) -> None:
    """Keep process ``pid`` (0: this one) on ``cpu``, when the machine has two CPUs or more."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {cpu})


def unpin(pid: int = 0) -> None:
    """Let process ``pid`` (0: this one) run on any CPU again."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, range(os.cpu_count() or 1))

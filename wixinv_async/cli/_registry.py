"""Which subcommands exist, in ``--help`` order."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def commands() -> list[Register]:
    registers: list[Register] = []
    return registers

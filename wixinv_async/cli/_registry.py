"""Which subcommands exist, in ``--help`` order."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def commands() -> list[Register]:
    from . import adjust, bench, demo, emulator_cmd, export, fleet, witness

    registers: list[Register] = [
        demo.register,
        adjust.register,
        export.register,
        bench.register,
        emulator_cmd.register,
        fleet.register,
        witness.register,
    ]
    return registers

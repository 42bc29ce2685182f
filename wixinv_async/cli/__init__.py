"""The ``wixinv-async`` command. Each subcommand lives in its own module with a ``register``
function that adds its parser; library code never prints, only this package does.

Exit codes: 0 everything committed, 1 some deltas rejected, 2 usage or configuration error,
3 deltas left in doubt, 130 interrupted (Ctrl-C: 128 + SIGINT, the Unix convention).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

from .. import __version__

__all__ = [
    "EXIT_CONFIG",
    "EXIT_INTERRUPTED",
    "EXIT_IN_DOUBT",
    "EXIT_OK",
    "EXIT_REJECTED",
    "add_verbose_option",
    "main",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_CONFIG = 2
EXIT_IN_DOUBT = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = """\
exit codes: 0 everything committed, 1 some deltas rejected, 2 usage or configuration error,
3 deltas left in doubt, 130 interrupted (Ctrl-C; adjust: run the same command again to resume)
"""


def build_parser() -> argparse.ArgumentParser:
    from . import _registry

    parser = argparse.ArgumentParser(
        prog="wixinv-async",
        description="Move Wix Stores inventory at high throughput, safely.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wixinv-async {__version__}")
    add_verbose_option(parser, default=0)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registry.commands():
        register(subparsers)
    return parser


def add_verbose_option(parser: argparse.ArgumentParser, *, default: object) -> None:
    """``-v``: the library's logs (INFO) on stderr; ``-vv``: DEBUG too. Secrets never appear."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log what the library does on stderr (-vv: in detail)",
    )


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int) -> Iterator[None]:
    """The package's logs on stderr for the command's duration (``main`` may run many times in
    one process, as in tests: each run removes what it added)."""
    if verbosity <= 0:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("wixinv_async")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _logging_to_stderr(args.verbose):
            result: int = args.func(args)
    except KeyboardInterrupt:
        from ._common import fail

        as_json = getattr(args, "json", False)  # bench and emulator have no --json
        return fail(args.command, "interrupted", EXIT_INTERRUPTED, as_json=as_json)
    sys.stdout.flush()
    return result

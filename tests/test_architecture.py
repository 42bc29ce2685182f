"""The layering the architecture promises, checked on the source: the core is pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wixinv_async"
FORBIDDEN = {"asyncio", "aiohttp", "anyio", "time", "random", "threading", "aiolimiter"}
CORE = sorted(path.stem for path in (PACKAGE / "core").glob("*.py") if path.stem != "__init__")


def _module_path(dotted: str) -> Path:
    base = PACKAGE.joinpath(*dotted.split(".")[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(dotted: str) -> tuple[set[str], set[str]]:
    """(top-level third-party or stdlib names, wixinv_async modules) imported by a module."""
    path = _module_path(dotted)
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    outside: set[str] = set()
    inside: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (inside if alias.name.startswith("wixinv_async") else outside).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                name = node.module or ""
                (inside if name.startswith("wixinv_async") else outside).add(name)
                continue
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:  # "from . import x" may name a module
                candidate = f"{target}.{alias.name}"
                inside.add(candidate if _module_path(candidate).exists() else target)
    return {name.split(".")[0] for name in outside}, inside


def _closure(dotted: str) -> dict[str, set[str]]:
    """Every wixinv_async module reachable from ``dotted``, with its outside imports."""
    seen: dict[str, set[str]] = {}
    todo = [dotted]
    while todo:
        name = todo.pop()
        if name in seen or not _module_path(name).exists():
            continue
        outside, inside = _imports(name)
        seen[name] = outside
        todo.extend(inside - {"wixinv_async"})
    return seen


def test_the_core_has_modules() -> None:
    """The guard below sees every module of core/ (a renamed folder would pass vacuously)."""
    assert {"table", "planner", "bisect", "failures", "backoff", "keyset"} <= set(CORE)


@pytest.mark.parametrize("module", CORE)
def test_no_core_module_imports_an_event_loop_a_clock_or_randomness(module: str) -> None:
    """A core module, and every wixinv_async module it imports (transitively), imports no
    asyncio, aiohttp, anyio, time, random or threading."""
    reached = _closure(f"wixinv_async.core.{module}")
    bad = {name: sorted(names & FORBIDDEN) for name, names in reached.items() if names & FORBIDDEN}
    assert not bad, bad

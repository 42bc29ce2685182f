"""README.md and docs/ARCHITECTURE.md checked against the code: snippets run, names exist.

The README's python snippets are taken from the file itself and run against the in-process
emulator, so a change to the API that leaves the README behind fails here. A snippet that needs a
real site would be skipped with the reason; every one in the README today runs.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib
import importlib.util
import inspect
import re
import shlex
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import wixinv_async
import wixinv_async.emulator
from wixinv_async import (
    ApiKeyAuth,
    InventoryAdjuster,
    InventoryClient,
    OutcomeStatus,
    crawl_inventory,
)
from wixinv_async.cli import EXIT_CONFIG, EXIT_IN_DOUBT, EXIT_OK, EXIT_REJECTED, build_parser
from wixinv_async.emulator import FaultPlan, FaultRule

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
DOCS = {"README.md": README, "ARCHITECTURE.md": ARCHITECTURE}

PUBLIC_MODULES = ("wixinv_async", "wixinv_async.emulator", "wixinv_async.bulk.runner")
"""Where a name the docs mention may live (each module's ``__all__``)."""
OTHER_TOOLS_FLAGS = frozenset({"--strict"})
"""Flags the README names of other tools (``mypy --strict``)."""
NOT_CODE = frozenset({"PASS"})
"""CamelCase-looking words in backticks that are not code names."""


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def _readme_block(lang: str, marker: str) -> str:
    """The one README block of ``lang`` that contains ``marker``."""
    found = [block for block in _blocks(README, lang) if marker in block]
    assert len(found) == 1, f"expected one {lang} block holding {marker!r}, found {len(found)}"
    return found[0]


def _exec(code: str, name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(code, f"README.md:{name}", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


def _public_names() -> set[str]:
    names: set[str] = set()
    for module in PUBLIC_MODULES:
        names.update(importlib.import_module(module).__all__)
    return names


def _resolve(name: str) -> Any:
    for module in PUBLIC_MODULES:
        imported = importlib.import_module(module)
        if name in imported.__all__:
            return getattr(imported, name)
    raise AssertionError(f"{name} is in no public module's __all__")


# --- the README's python snippets, run -----------------------------------------------------


def test_every_readme_python_block_is_run_here() -> None:
    """Each README python block is one of those the tests below run (none is left unchecked)."""
    markers = (
        "web.AppKey",
        "crawl_inventory(client",
        "def test_restock",
        "catalog_version()",
        "adjust_stream(adjuster",
    )
    for block in _blocks(README, "python"):
        assert any(marker in block for marker in markers), block


async def test_readme_service_snippet_runs_against_the_emulator(
    wix_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's aiohttp service, as printed, decrements stock and reports an unknown product."""
    monkeypatch.setenv("WIX_API_KEY", wix_emulator.api_key)
    monkeypatch.setenv("WIX_SITE_ID", wix_emulator.site_id)
    monkeypatch.setenv("WIX_BASE_URL", wix_emulator.url)
    namespace = _exec(_readme_block("python", "web.AppKey"), "readme_service")
    item = next(i for i in wix_emulator.store.items() if i.track_quantity)
    variant = item.variants[0].variant_id
    wix_emulator.store.set_quantity(item.product_id, variant, 10)
    line = {"productId": item.product_id, "variantId": variant, "quantity": 3}
    ghost = {**line, "productId": "no-such-product"}
    async with TestClient(TestServer(namespace["app"])) as http:
        first = await (await http.post("/orders/paid", json={"lineItems": [line]})).json()
        second = await (await http.post("/orders/paid", json={"lineItems": [line, ghost]})).json()
    assert first == {"ok": True, "problems": []}
    assert second == {"ok": False, "problems": ["NOT_FOUND"]}
    assert wix_emulator.store.quantity(item.product_id, variant) == 4


def test_readme_service_snippet_matches_the_example_file() -> None:
    """examples/service.py (which tests/test_example_service.py runs) is the README's snippet."""
    snippet = ast.parse(_readme_block("python", "web.AppKey"))
    example = ast.parse((ROOT / "examples" / "service.py").read_text(encoding="utf-8"))

    def bodies(tree: ast.Module) -> dict[str, str]:
        return {
            node.name: ast.dump(ast.Module(body=node.body, type_ignores=[]))
            for node in tree.body
            if isinstance(node, ast.AsyncFunctionDef)
        }

    assert bodies(snippet) == bodies(example)


async def test_readme_crawl_snippet_prints_every_tracked_item(
    wix_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's reading snippet, run with a client of the emulator, prints each tracked item."""
    code = "async def snippet(client):\n" + textwrap.indent(
        _readme_block("python", "crawl_inventory(client"), "    "
    )
    snippet = _exec(code, "readme_crawl")["snippet"]
    auth = ApiKeyAuth(wix_emulator.api_key, site_id=wix_emulator.site_id)
    async with InventoryClient(auth, base_url=wix_emulator.url, rate_limit=None) as client:
        await snippet(client)
    printed = [line.split(" ", 1)[0] for line in capsys.readouterr().out.splitlines()]
    tracked = [i.product_id for i in wix_emulator.store.items() if i.track_quantity]
    assert sorted(printed) == sorted(tracked)


async def test_readme_testing_snippet_runs_with_the_fixtures(
    wix_emulator: Any, wix_emulator_factory: Any
) -> None:
    """The README's test example runs, and the factory takes the settings the README shows."""
    namespace = _exec(_readme_block("python", "def test_restock"), "readme_testing")
    await namespace["test_restock"](wix_emulator)
    plan = FaultPlan(seed=1, endpoints={"*": FaultRule(error_503=0.5)})
    small = await wix_emulator_factory(products=10, rate_limit="5/1", faults=plan)
    assert len(small.store.items()) == 10
    assert small.faults == plan


def test_readme_names_the_fixtures_the_plugin_registers() -> None:
    """wix_emulator, wix_emulator_factory and wix_emulator_settings exist in the plugin."""
    testing = importlib.import_module("wixinv_async.testing")
    for fixture in ("wix_emulator", "wix_emulator_factory", "wix_emulator_settings"):
        assert fixture in README
        assert fixture in testing.__all__


# --- names, signatures and defaults --------------------------------------------------------


def test_readme_imports_are_public() -> None:
    """Every name a README snippet imports from wixinv_async is in its __all__."""
    for block in _blocks(README, "python"):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module == "wixinv_async":
                for alias in node.names:
                    assert alias.name in wixinv_async.__all__, alias.name


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_class_names_in_the_docs_are_public(doc: str) -> None:
    """Every CamelCase name in backticks (or after ``class``) is exported by a public module."""
    text = DOCS[doc]
    names = set(re.findall(r"`([A-Z][a-z]+[A-Z]\w*)`", text))
    names |= set(re.findall(r"^class (\w+)", text, re.MULTILINE))
    missing = sorted(names - _public_names() - NOT_CODE - set(dir(builtins)))
    assert not missing, f"{doc} names {missing}, which no public __all__ holds"


def _signature_blocks() -> list[tuple[str, str]]:
    """(class name, its text) for each ``class`` in ARCHITECTURE's python blocks."""
    found = []
    for block in _blocks(ARCHITECTURE, "python"):
        parts = re.split(r"^class (\w+)", block, flags=re.MULTILINE)
        found += list(zip(parts[1::2], parts[2::2], strict=True))
    return found


def _parameters(text: str, start: int) -> list[str]:
    """The top-level comma-separated parts of the parenthesized list opening at ``start``."""
    depth, part, parts = 0, "", []
    for char in re.sub(r"#[^\n]*", "", text[start:]):
        if char in "([{":
            depth += 1
            if depth == 1:
                continue
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                break
        if char == "," and depth == 1:
            parts.append(part)
            part = ""
        else:
            part += char
    parts.append(part)
    return [p.strip() for p in parts if p.strip()]


def _check_default(owner: str, name: str, parameter: inspect.Parameter, text: str) -> None:
    namespace = {n: _resolve(n) for n in _public_names()}
    try:
        documented = eval(text, namespace)  # noqa: S307 - a default written in our own docs
    except Exception:  # not an expression: compared as text, or not at all
        if isinstance(parameter.default, str):
            assert text.strip() == parameter.default, f"{owner}: {name} = {text}"
        return
    assert documented == parameter.default, f"{owner}: {name} = {text}"


@pytest.mark.parametrize("owner", [name for name, _ in _signature_blocks()])
def test_architecture_signatures_match_the_code(owner: str) -> None:
    """Methods, parameters, defaults and fields written in ARCHITECTURE exist as written."""
    text = dict(_signature_blocks())[owner]
    cls = _resolve(owner)
    for match in re.finditer(r"def (\w+)\(", text):
        method = match.group(1)
        assert hasattr(cls, method), f"{owner}.{method}"
        signature = inspect.signature(getattr(cls, method))
        for part in _parameters(text, match.end() - 1):
            if part in {"self", "*", "..."} or part.startswith("..."):
                continue
            name, _, default = part.partition("=")
            name = name.split(":")[0].strip()
            assert name in signature.parameters, f"{owner}.{method}({name})"
            if default.strip():
                _check_default(f"{owner}.{method}", name, signature.parameters[name], default)
    fields = re.findall(r"^    (\w+): ", text, re.MULTILINE)
    fields += re.findall(r"; (\w+): ", text)
    instance = wixinv_async.emulator.Emulator(products=1) if owner == "Emulator" else None
    for field in fields:
        holder = instance if instance is not None else cls
        annotations = {n for k in cls.__mro__ for n in getattr(k, "__annotations__", {})}
        assert hasattr(holder, field) or field in annotations, f"{owner}.{field}"


def test_outcome_status_members_are_as_documented() -> None:
    """ARCHITECTURE lists OutcomeStatus's members, all of them."""
    line = re.search(r"class OutcomeStatus\(enum.Enum\): (.*)", ARCHITECTURE)
    assert line is not None
    assert line.group(1).split("; ") == [member.name for member in OutcomeStatus]


def _table(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]


def test_configuration_table_defaults_match_the_signatures() -> None:
    """Each default in the README's configuration table is the code's default."""
    owner: Any = None
    checked = 0
    for setting, default, _ in _table(README, "## Configuration reference"):
        code = setting.replace("`", "")
        call = re.match(r"(\w+)\((.*)\)$", code)
        if call and (call.group(1)[0].isupper() or call.group(1) == "crawl_inventory"):
            owner = _resolve(call.group(1))
            names = []
            tree = ast.parse(code, mode="eval").body
            assert isinstance(tree, ast.Call)
            for keyword in tree.keywords:
                if not isinstance(keyword.value, ast.Constant) or keyword.value.value is not ...:
                    assert keyword.arg is not None
                    _check_default(
                        code, keyword.arg, _param(owner, keyword.arg), ast.unparse(keyword.value)
                    )
                    checked += 1
                names.append(keyword.arg)
        elif "=" in code:
            name, _, value = code.partition("=")
            _check_default(code, name, _param(owner, name), value)
            names = [name]
            checked += 1
        else:
            names = [n.strip() for n in code.split(",")]
        documented = default.replace("`", "").replace(",", "").strip()
        if documented:  # prose such as "200 per 60 s" is not compared
            for name in names:
                _check_default(setting, name, _param(owner, name), documented)
                checked += 1
    assert checked >= 15


def _param(owner: Any, name: str | None) -> inspect.Parameter:
    assert name is not None
    parameters = inspect.signature(owner).parameters
    assert name in parameters, f"{owner.__name__} has no parameter {name}"
    return parameters[name]


# --- what the README says of behaviour -----------------------------------------------------


async def test_retriable_rejections_carry_the_documented_codes(wix_emulator: Any) -> None:
    """The README's retriable row: refused credentials, a closed client and a failing on_send."""
    item = next(i for i in wix_emulator.store.items() if i.track_quantity)
    key = (item.product_id, item.variants[0].variant_id, -1)
    url = wix_emulator.url

    async def reject(auth: ApiKeyAuth, **options: Any) -> Any:
        async with (
            InventoryClient(auth, base_url=url, rate_limit=None) as client,
            InventoryAdjuster(client, **options) as adjuster,
        ):
            return await adjuster.adjust(*key)

    async def failing(batch: object) -> None:
        raise RuntimeError("journal down")

    good = ApiKeyAuth(wix_emulator.api_key, site_id=wix_emulator.site_id)
    outcomes = {
        "401": await reject(ApiKeyAuth("wrong", site_id=wix_emulator.site_id)),
        "403": await reject(ApiKeyAuth(wix_emulator.api_key, site_id="another-site")),
        "on_send": await reject(good, on_send=failing),
    }
    closed = InventoryClient(good, base_url=url, rate_limit=None)
    await closed.aclose()
    async with InventoryAdjuster(closed) as adjuster:
        outcomes["closed"] = await adjuster.adjust(*key)
    codes = {name: o.code for name, o in outcomes.items()}
    assert codes == {
        "401": "UNAUTHENTICATED",
        "403": "FORBIDDEN",
        "on_send": "ON_SEND_FAILED",
        "closed": "NOT_SENT",
    }
    for outcome in outcomes.values():
        assert (outcome.status, outcome.retriable) == (OutcomeStatus.REJECTED, True)
        assert f"`{outcome.code}`" in README
    assert wix_emulator.store.journal == []


async def test_crawl_reads_past_the_offset_limit_as_the_readme_says(
    wix_emulator_factory: Any,
) -> None:
    """``crawl_inventory`` reads more than 10,000 items (paging by offset cannot)."""
    emulator = await wix_emulator_factory(products=10_050, variants_per_product=1)
    auth = ApiKeyAuth(emulator.api_key, site_id=emulator.site_id)
    async with (
        InventoryClient(auth, base_url=emulator.url, rate_limit=None) as client,
        crawl_inventory(client, segments=8) as items,
    ):
        seen = [item.product_id async for item in items]
    assert len(seen) == len(set(seen)) == 10_050


# --- the commands ----------------------------------------------------------------------------


def _load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_two_commands_exist() -> None:
    """``python3 dev.py demo`` and ``python3 dev.py test`` are dev.py's commands, and CI runs test."""
    block = _readme_block("bash", "dev.py")
    shown = re.findall(r"^python3 dev.py (\w+)", block, re.MULTILINE)
    assert sorted(shown) == sorted(_load_dev().COMMANDS) == ["demo", "test"]
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _subparsers() -> dict[str, Any]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def test_readme_cli_lines_parse_and_cover_every_subcommand() -> None:
    """Each ``wixinv-async`` line of the README parses, and every subcommand is shown."""
    shown = []
    for line in _readme_block("bash", "wixinv-async demo").splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "wixinv-async", line
        build_parser().parse_args(argv[1:])
        shown.append(argv[1])
    assert sorted(shown) == sorted(_subparsers())


def test_every_flag_the_docs_name_exists() -> None:
    """Each ``--flag`` in the README is an option of the command or of some subcommand."""
    options = {"--help"}
    parsers = [build_parser(), *_subparsers().values()]
    for parser in parsers:  # subcommands of subcommands too (witness check, fleet worker)
        for action in parser._actions:
            options.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", README))
    assert named - options - OTHER_TOOLS_FLAGS == set()


def test_exit_codes_are_as_documented() -> None:
    """README's exit codes of ``adjust`` are the CLI's constants."""
    assert "**0** everything committed" in README
    assert (EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_IN_DOUBT) == (0, 1, 2, 3)

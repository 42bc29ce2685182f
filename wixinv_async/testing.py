"""pytest plugin: a running Wix emulator for your tests (registered as the ``wixinv_async``
pytest11 entry point, so installing the package is enough).

Fixtures (they need pytest-asyncio):

- ``wix_emulator``: a started :class:`~wixinv_async.emulator.Emulator`, closed after the test.
  Its settings come from ``wix_emulator_settings`` (a dict of ``Emulator`` keyword arguments,
  ``{}`` by default); override that fixture in your ``conftest.py`` to change them.
- ``wix_emulator_v3``: the same, serving Catalog V3 sites (``wix_emulator_settings`` with
  ``catalog="v3"``): ``wix_emulator_v3.v3_store()`` is the default site's V3 store. Pass
  ``catalog="v3"`` (or one name per site) in your settings to choose per emulator.
- ``wix_emulator_factory``: ``await wix_emulator_factory(products=10, rate_limit="5/1")``
  starts an emulator with those settings; every one started is closed after the test.
  Many sites: ``await wix_emulator_factory(sites=200, catalog="mixed", rate_limit="200/60")``
  (or ``sites=[SiteSpec(...), ...]``); sites are made on first use, so hundreds are cheap.

Importing this module is cheap and has no side effects: the emulator (and aiohttp) are
imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = [
    "EmulatorFactory",
    "wix_emulator",
    "wix_emulator_factory",
    "wix_emulator_settings",
    "wix_emulator_v3",
]

EmulatorFactory = Callable[..., Awaitable["Emulator"]]
"""``await factory(**emulator_kwargs)`` -> a started emulator, closed at teardown."""

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixtures then explain what is missing
    pytest_asyncio = None  # type: ignore[assignment]


@pytest.fixture
def wix_emulator_settings() -> dict[str, Any]:
    """Keyword arguments for ``wix_emulator``; override this fixture to change them."""
    return {}


async def _factory() -> AsyncIterator[EmulatorFactory]:
    """Starts emulators with the given settings; closes each after the test."""
    from .emulator import Emulator

    started: list[Emulator] = []

    async def start(**settings: Any) -> Emulator:
        emulator = Emulator(**settings)
        await emulator.start()
        started.append(emulator)
        return emulator

    try:
        yield start
    finally:
        for emulator in reversed(started):
            await emulator.aclose()


async def _emulator(
    wix_emulator_factory: EmulatorFactory, wix_emulator_settings: dict[str, Any]
) -> AsyncIterator[Emulator]:
    """A started emulator with ``wix_emulator_settings``; closed after the test."""
    yield await wix_emulator_factory(**wix_emulator_settings)


async def _emulator_v3(
    wix_emulator_factory: EmulatorFactory, wix_emulator_settings: dict[str, Any]
) -> AsyncIterator[Emulator]:
    """A started emulator of Catalog V3 sites with ``wix_emulator_settings``."""
    yield await wix_emulator_factory(**{**wix_emulator_settings, "catalog": "v3"})


if pytest_asyncio is not None:
    wix_emulator_factory = pytest_asyncio.fixture(_factory, name="wix_emulator_factory")
    wix_emulator = pytest_asyncio.fixture(_emulator, name="wix_emulator")
    wix_emulator_v3 = pytest_asyncio.fixture(_emulator_v3, name="wix_emulator_v3")
else:  # pragma: no cover

    @pytest.fixture(name="wix_emulator_factory")
    def wix_emulator_factory() -> None:
        pytest.fail("the wix_emulator fixtures need pytest-asyncio: pip install pytest-asyncio")

    @pytest.fixture(name="wix_emulator")
    def wix_emulator() -> None:
        pytest.fail("the wix_emulator fixtures need pytest-asyncio: pip install pytest-asyncio")

    @pytest.fixture(name="wix_emulator_v3")
    def wix_emulator_v3() -> None:
        pytest.fail("the wix_emulator fixtures need pytest-asyncio: pip install pytest-asyncio")

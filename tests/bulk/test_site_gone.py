"""A site that goes away mid-run: the run stops at the first request that gives up connecting."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

import pytest

from wixinv_async.adjuster import BatchPolicy
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.bulk.journal import Journal, input_fingerprint
from wixinv_async.bulk.runner import BulkPaths, BulkProgress, run_bulk_adjust
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.emulator import Emulator
from wixinv_async.errors import ConfigurationError, ConnectError

ROWS = 3_000
FAST = {
    "max_batch": 25,
    "linger": 0.001,
    "batch_policy": BatchPolicy(base_delay=0.001, max_delay=0.002),
}


def _client(emu: Emulator, url: str) -> InventoryClient:
    retry = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002, seed=1)
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=url, rate_limit=None, retry=retry)


def _keys(emu: Emulator) -> list[tuple[str, str]]:
    keys = []
    for item in emu.store.items():
        if item.track_quantity:
            for variant in item.variants:
                emu.store.set_quantity(item.product_id, variant.variant_id, 5_000)  # type: ignore[arg-type]
                keys.append((str(item.product_id), variant.variant_id))
    return keys


def _probe(port: int) -> Callable[[], Awaitable[None]]:
    """The CLI's kind of probe: one TCP connection to the site, no request."""

    async def probe() -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            raise ConfigurationError(f"cannot reach 127.0.0.1:{port}: {exc}") from None
        writer.close()
        await writer.wait_closed()

    return probe


@pytest.mark.parametrize("probed", [False, True])
async def test_a_site_gone_mid_run_stops_it_and_the_rerun_applies_the_rest(
    tmp_path: Path, probed: bool
) -> None:
    """The emulator stops after 1,000 rows were read: the run stops at the first request that
    gives up (not one give-up per batch through the whole file), or with a probe at the first
    resend, before any request gave up; nothing is sent after, and a rerun against the site
    back on the same port applies every row not applied."""
    source = tmp_path / "deltas.csv"
    paths = BulkPaths.beside(source)
    rng = random.Random(4)
    async with Emulator(products=40, variants_per_product=2, seed=5, api_key="KEY") as emu:
        keys, url, port = _keys(emu), emu.url, int(emu.url.rsplit(":", 1)[1])
        rows = [(rng.choice(keys), rng.choice([-2, -1, 1, 3])) for _ in range(ROWS)]
        lines = ["product_id,variant_id,delta"] + [f"{p},{v},{d}" for (p, v), d in rows]
        source.write_text("\n".join(lines) + "\n")
        stopping: list[asyncio.Task[None]] = []

        def stop_the_site(progress: BulkProgress, _: object) -> None:
            if progress.rows >= 1_000 and not stopping:
                stopping.append(asyncio.ensure_future(emu.aclose()))

        error, match = (ConfigurationError, "cannot reach") if probed else (ConnectError, "stopped")
        async with _client(emu, url) as client:
            with pytest.raises(error, match=match):
                await run_bulk_adjust(
                    client,
                    paths,
                    adjuster_options=FAST,
                    on_progress=stop_the_site,
                    progress_every=1_000,
                    max_outstanding=200,
                    probe=_probe(port) if probed else None,
                )
        await stopping[0]
        applied_before = emu.store.journal
    with closing(Journal(paths.journal, fingerprint=input_fingerprint(source))) as journal:
        found = list(journal.states())
    states = {s.line: s.state for s in found}
    gave_up = [s for s in found if s.code == "GAVE_UP_NOT_APPLIED"]
    assert bool(gave_up) is not probed  # the probe stopped it before any request gave up
    assert len(states) < ROWS  # it stopped reading: the rows after were never even submitted
    assert "committed" in states.values() and "sent" not in states.values()
    async with Emulator(
        products=40, variants_per_product=2, seed=5, api_key="KEY", port=port
    ) as back:
        _keys(back)
        async with _client(back, url) as client:
            rerun = await run_bulk_adjust(client, paths, adjuster_options=FAST)
        expected = dict.fromkeys(keys, 5000)
        for line, (key, delta) in enumerate(rows, start=2):
            if states.get(line) not in ("committed", "in_doubt"):
                expected[key] += delta
        assert {key: back.store.quantity(*key) for key in keys} == expected
    assert applied_before and rerun.held_in_doubt == list(states.values()).count("in_doubt")
    assert rerun.done_before + rerun.held_in_doubt + rerun.committed == ROWS

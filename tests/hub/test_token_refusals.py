"""Refused token requests: an instance the app is not on rests like a revoked one, a wrong app
secret rests the whole app (one token request, one log line), and a resting site spends no
pacing slot."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

from wixinv_async import (
    AppCredentials,
    InventoryHub,
    OutcomeStatus,
    RateLimit,
    Ticket,
)
from wixinv_async._hubtoken import refused_backoff
from wixinv_async.core.failures import Failure, classify
from wixinv_async.core.ratelimit import SlotSchedule
from wixinv_async.emulator import Emulator
from wixinv_async.emulator._errors import WixApiError
from wixinv_async.emulator.auth import Credentials
from wixinv_async.emulator.requests import TokenBody

R, C = OutcomeStatus.REJECTED, OutcomeStatus.COMMITTED
FAST = RateLimit(1000, 1.0)
NOT_INSTALLED = "00000000-aaaa-4bbb-8ccc-000000000001"
WRONG = "wrong-app-secret-7f3a9c"


def key_of(emu: Emulator, site: str) -> tuple[str, str]:
    """One tracked (product id, variant id) of ``site``."""
    return next(
        (item.product_id, variant.variant_id)
        for item in emu.site(site).items()
        if item.track_quantity is True
        for variant in item.variants
    )


def token_requests(emu: Emulator) -> dict[int, int]:
    """The emulator's count of ``POST /oauth2/token`` answers, by status."""
    counts = emu.stats()["requests"].get("oauthToken", {})
    return {int(status): n for status, n in counts.items()}


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the event loop's clock ``seconds`` on (the rests run on it)."""
    loop = asyncio.get_running_loop()
    now = loop.time
    monkeypatch.setattr(loop, "time", lambda: now() + seconds)


async def wave(hub: InventoryHub, keys: dict[str, tuple[str, str]]) -> dict[str, Ticket]:
    """One delta per site, flushed."""
    tickets = {site: hub.submit_nowait(site, *key, 1) for site, key in keys.items()}
    await hub.flush()
    return tickets


async def test_an_instance_the_app_is_not_installed_on_rests_like_a_revoked_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its token request is answered 400: five batches cost that one token request, each delta
    REJECTED retriable with the reason (an authentication failure, never read as a bad batch);
    the installed site commits. After the rest, one more token request."""
    async with Emulator(sites=1, products=4, seed=51) as emu:
        key = key_of(emu, emu.site_id)
        keys = {emu.instance_id: key, NOT_INSTALLED: key}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, rate_limit=FAST, linger=0
        ) as hub:
            waves = [await wave(hub, keys) for _ in range(5)]
            assert token_requests(emu) == {200: 1, 400: 1}
            for tickets in waves:
                assert tickets[emu.instance_id].result().status is C
                outcome = tickets[NOT_INSTALLED].result()
                assert (outcome.status, outcome.retriable) == (R, True), outcome
                assert outcome.code == "TOKEN_REFUSED"
                assert f"unknown instance '{NOT_INSTALLED}'" in (outcome.message or "")
                assert "token refused: not asked again for" in (outcome.message or "")
                assert classify(outcome.error) is Failure.UNAUTHORIZED  # not INVALID: no bisection
            later(monkeypatch, refused_backoff(1))
            assert (await wave(hub, {NOT_INSTALLED: key}))[NOT_INSTALLED].result().status is R
            assert token_requests(emu) == {200: 1, 400: 2}


def test_the_token_endpoint_says_invalid_client_for_the_apps_own_credentials() -> None:
    """RFC 6749's answer for client credentials that do not authenticate, unlike a refused
    instance (Wix's own error body): what tells app-wide from instance-level apart."""
    creds = Credentials(
        api_key="K", app_id="APP", app_secret="S", instances={"I": "SITE"}, token_lifetime=60,
        clock=lambda: 0.0,
    )  # fmt: skip

    def refusal(secret: str) -> WixApiError:
        body = TokenBody(
            grant_type="client_credentials", client_id="APP", client_secret=secret, instance_id="I"
        )
        with pytest.raises(WixApiError) as caught:
            creds.issue(body)
        return caught.value

    wrong = refusal("X")
    assert (wrong.status, wrong.body["error"]) == (401, "invalid_client")
    creds.revoke("I")
    revoked = refusal("S")
    assert revoked.status == 401 and "error" not in revoked.body


@pytest.mark.parametrize("wrong", ["secret", "app_id"])
async def test_wrong_app_credentials_rest_the_whole_app_with_one_token_request(
    wrong: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """20 sites, a wrong secret (or app id): three waves cost one refused token request in all
    (not one per site), every delta REJECTED retriable naming the app id, one ERROR record.
    After the rest, one site asks (one more request), and the rest doubles."""
    caplog.set_level(logging.DEBUG, logger="wixinv_async")
    async with Emulator(sites=20, products=6, seed=52) as emu:
        keys = {i: key_of(emu, s) for i, s in zip(emu.instances, emu.sites, strict=True)}
        app_id = emu.app_id if wrong == "secret" else "not-the-app-id"
        secret = WRONG if wrong == "secret" else emu.app_secret
        async with InventoryHub(
            AppCredentials(app_id, secret), base_url=emu.url, rate_limit=FAST, linger=0
        ) as hub:
            waves = [await wave(hub, keys) for _ in range(3)]
            assert token_requests(emu) == {401: 1}
            assert sum(hub.site(i).client.stats().requests for i in keys) == 1
            for tickets in waves:
                for ticket in tickets.values():
                    outcome = ticket.result()
                    assert (outcome.status, outcome.retriable) == (R, True), outcome
                    assert outcome.code == "invalid_client"
                    assert f"app id {app_id!r}" in (outcome.message or "")
            assert hub.stats().total.app_refusals == 1
            later(monkeypatch, refused_backoff(1))
            await wave(hub, keys)
            assert token_requests(emu) == {401: 2}
            assert hub.stats().total.app_refusals == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert app_id in errors[0].getMessage() and "invalid_client" in errors[0].getMessage()


async def test_the_app_is_served_again_once_its_secret_is_right(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The secret refused, then reset on the server to the one the hub holds: after the rest
    one site's token request succeeds, then every site fetches its own and commits; the app
    secret appears in no log record, repr or outcome on the way."""
    caplog.set_level(logging.DEBUG, logger="wixinv_async")
    async with Emulator(sites=8, products=6, seed=53) as emu:
        keys = {i: key_of(emu, s) for i, s in zip(emu.instances, emu.sites, strict=True)}
        async with InventoryHub(
            AppCredentials(emu.app_id, WRONG), base_url=emu.url, rate_limit=FAST, linger=0
        ) as hub:
            refused = await wave(hub, keys)
            emu.reset_app_secret(WRONG)
            later(monkeypatch, refused_backoff(1))
            served = await wave(hub, keys)
            assert {t.result().status for t in served.values()} == {C}
            assert token_requests(emu) == {401: 1, 200: len(keys)}
            assert hub.stats().total.app_refusals == 0
            texts = [repr(hub), repr(hub.stats())]
            texts += [repr(hub.site(i)) + repr(hub.site(i).client) for i in keys]
    for ticket in refused.values():
        outcome = ticket.result()
        texts += [repr(outcome), str(outcome.error), repr(outcome.error)]
    texts += [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if WRONG in t]
    notes = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(notes) == 2 and "issued again" in notes[1], notes  # refused once, back once


async def test_a_resting_site_takes_no_pacing_slot() -> None:
    """A revoked site's batches, refused without being sent, leave its pacing schedule as it
    was (no slot taken), while the served site's batches took theirs."""
    async with Emulator(sites=2, products=6, seed=54) as emu:
        served, revoked = emu.instances
        emu.revoke(revoked)
        keys = {i: key_of(emu, s) for i, s in zip(emu.instances, emu.sites, strict=True)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(50, 1.0),
            linger=0,
        ) as hub:
            waves = [await wave(hub, keys) for _ in range(4)]
            assert {w[revoked].result().status for w in waves} == {R}
            assert {w[served].result().status for w in waves} == {C}
            assert hub.site(revoked).limiter.next_slot() == -math.inf
            assert hub.site(served).limiter.next_slot() > -math.inf
            assert hub.site(revoked).client.stats().requests_by_endpoint == {"oauth_token": 1}


def test_only_the_latest_slot_goes_back() -> None:
    """A slot given back undoes its take; one given back after a later take does nothing, so
    a slot another sender used is never handed out twice."""
    slots = SlotSchedule(1.0, 0.0)
    assert slots.take(10.0) == 0.0
    first = slots.last
    slots.give_back(first)
    assert slots.last == -math.inf
    assert slots.take(10.0) == 0.0
    first = slots.last
    assert slots.take(11.0) == 0.0
    slots.give_back(first)
    assert slots.last == 11.0
    assert slots.take(11.5) == 0.5

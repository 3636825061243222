"""Tokens that die faster than the pool uses them: the run survives, lands exactly, and logs in at a pace.

Real sample API (with --token-ttl and every fault), real client; the login-endpoint cases use the scripted
aiohttp server of tests/test_client.py.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

import pytest
from aiohttp import web

from multiverse_etl.extract import run_extract
from multiverse_etl.extract.errors import AuthError
from multiverse_etl.extract.http import ApiClient, ClientSettings
from multiverse_etl.extract.http.limiter import INITIAL_LIMIT
from multiverse_etl.extract.progress import FanoutState, Progress
from support.extract import assert_matches_ground_truth, extract_config, start_api, storage_for
from test_client import Script, api_config, creds, ok, serve

EVERY_FAULT = dict(fault_rate=0.1, drop_rate=0.02, latency_ms=2, max_page_size=25, rate_limit=300.0, fault_seed=7)
DEFAULTS = {"page_size": 1000, "concurrency": 64}  # conf/local.yaml's: 64 in flight, far more than a token lives


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "every-fault"])
@pytest.mark.parametrize("ttl", [5, 10, 40])
def test_short_lived_tokens_land_exactly_the_ground_truth(tmp_path, ttl, faults):
    scale, seed = 120, 80 + ttl
    server = start_api(scale=scale, seed=seed, token_ttl=ttl, **(EVERY_FAULT if faults else {}))
    try:
        config = extract_config(str(tmp_path / "lake"), server.url, api=DEFAULTS)
        result = run_extract(config)
    finally:
        server.stop()
    assert_matches_ground_truth(storage_for(config), result.run_id, scale, seed)
    manifest = result.manifest
    client = manifest.client
    assert client is not None and manifest.logins is not None
    assert client["status_401"] > 0 and client["tokens_expired"] > 0, client  # tokens really died
    assert client["token_life_min"] <= ttl and client["limit_max"] <= 64, client
    assert client["token_cap"] is not None and client["token_cap"] <= max(1, ttl // 2), client
    # no login storm: a token serves several requests (at TTL 5 with 64 in flight, most would be 401s)
    assert manifest.logins <= manifest.requests / 4, (manifest.logins, manifest.requests)
    assert manifest.logins == client["logins"] == client["relogins"] + 1


class FiveUseTokens(Script):
    """Every token serves five data requests; a refusal is answered at once, data a little later."""

    async def login(self, request):
        await asyncio.sleep(0.005)
        answer = await super().login(request)
        self.valid_tokens[self.tokens_issued[-1]] = 5
        return answer


async def slow_ok(script, request):
    await asyncio.sleep(0.001)
    return await ok(script, request)


def test_with_more_requests_in_flight_than_a_token_lives_no_request_starves_and_no_token_is_wasted():
    """Requests queued behind a dying token are not sent to be refused; the one refused goes first with the
    next token (a FIFO queue once handed one request the dead end of 20 tokens in a row: AuthError), and 401s
    answered before the same token's 2xx do not read as tokens that earn nothing."""
    tasks, pages = 64, 10

    async def main():
        script = FiveUseTokens(slow_ok)
        async with serve(script) as url, ApiClient(api_config(url, concurrency=8, adaptive=False), creds()) as client:

            async def pages_of(task: int) -> None:
                for page in range(pages):
                    response = await client.get_page(f"/x/{task}", {"page": page}, entity="x")
                    assert response.doc["data"] == [{"id": 1}]

            await asyncio.gather(*(pages_of(task) for task in range(tasks)))
        return script, client

    script, client = asyncio.run(main())
    served = tasks * pages
    assert script.logins == served // 5  # every token served its five requests, none was thrown away
    refused = script.requests - served
    assert refused == client.counts.to_manifest()["status_401"]
    assert refused <= 8 * script.logins, (refused, script.logins)  # at most those in flight per token, not the queue


class LoginScript(Script):
    """The scripted API whose login answers 500 the first `failures` times, then as usual."""

    def __init__(self, failures: int) -> None:
        super().__init__(ok)
        self.failures = failures
        self.login_attempts = 0

    async def login(self, request):
        self.login_attempts += 1
        if self.login_attempts <= self.failures:
            return web.Response(status=500, text="Internal Server Error")
        return await super().login(request)


def test_a_login_endpoint_answering_500_a_few_times_is_retried():
    async def main():
        script = LoginScript(failures=3)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=6), creds()) as client:
            response = await client.get_page("/programmes", {}, entity="programmes")
        assert response.doc["data"] == [{"id": 1}]
        assert script.login_attempts == 4 and client.auth.logins == 1
        assert client.counts.status_5xx == 3 and client.counts.entity("login").retries == 3

    asyncio.run(main())


def test_a_wrong_password_still_fails_at_once_even_after_login_500s():
    async def main():
        script = LoginScript(failures=2)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=6), creds("wrong")) as client:
            with pytest.raises(AuthError, match="refused.*HTTP 400"):
                await asyncio.gather(*(client.get_page("/programmes", {}, entity="p") for _ in range(8)))
        assert script.login_attempts == 3  # two 500s retried, then the 400: no further login, no data request
        assert script.requests == 0

    asyncio.run(main())


def test_fresh_tokens_that_earn_nothing_end_the_run_after_a_few_logins():
    async def refuse(script, request):
        return web.json_response({"detail": "Invalid token"}, status=401)

    async def main():
        script = Script(refuse)
        async with serve(script) as url, ApiClient(api_config(url), creds()) as client:
            with pytest.raises(AuthError, match="earned no 2xx"):
                await asyncio.gather(
                    *(client.get_page(f"/apprenticeships/{i}/projects", {}, entity="projects") for i in range(16))
                )
        assert script.logins <= 4, script.logins  # paced: one login per token generation, a few generations

    asyncio.run(main())


def test_the_eta_is_unknown_while_parents_are_still_being_listed(caplog):
    stats = ApiClient(ClientSettings(url="http://127.0.0.1:9"), creds())
    fanout = FanoutState(known=2928, done=2900, started=time.monotonic() - 10.0)
    progress = Progress(stats, fanout, lambda: (10, 100), interval_s=5, stream=io.StringIO(), tty=False)
    with caplog.at_level(logging.INFO):
        progress.log_line()
        fanout.listing_finished = True
        fanout.known = 3000
        progress.log_line()
    listing, listed = caplog.records[-2], caplog.records[-1]
    assert "parents=2900/2928+ ETA unknown" in listing.getMessage() and listing.eta_s is None
    assert "parents=2900/3000 ETA=" in listed.getMessage() and listed.eta_s is not None and listed.eta_s > 0
    assert (
        listed.requests_per_s is not None
        and listed.entity == "all"
        and listed.limit == INITIAL_LIMIT
        and listed.limit_phase == "slow start"
    )

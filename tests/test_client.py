"""The API client against a scripted HTTP server on 127.0.0.1: login, single-flight re-login, retries, budgets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from yarl import URL

from multiverse_etl.config import ApiConfig
from multiverse_etl.errors import EtlError
from multiverse_etl.extract.credentials import Credentials
from multiverse_etl.extract.errors import ApiError, AuthError, DeadPaginationToken, RetryBudgetExhausted
from multiverse_etl.extract.http import ApiClient, ClientSettings
from multiverse_etl.extract.http.counts import Counts
from multiverse_etl.extract.http.policy import RetryBudget, RetryPolicy, parse_retry_after
from multiverse_etl.extract.redaction import RedactingFilter, Secret, redact, scrubbed_logs

PASSWORD = "s3cr3t-pa55word"
USER = "multiverse"
PAGE = b'{"data":[{"id":1}],"pagination":{"next_token":null,"previous_token":null,"page_size":20}}'


class Script:
    """A tiny API whose data answers a test scripts; it counts what it saw."""

    def __init__(self, data: Callable[[Script, web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.data = data
        self.logins = 0
        self.requests = 0
        self.valid_tokens: dict[str, int] = {}  # token -> uses left (-1 = forever)
        self.tokens_issued: list[str] = []
        self.first_token_uses = -1

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.logins += 1
        if form.get("username") != USER or form.get("password") != PASSWORD:
            return web.json_response({"detail": "Invalid username or password"}, status=400)
        token = f"tok-{self.logins}-abcdef"
        self.tokens_issued.append(token)
        self.valid_tokens[token] = self.first_token_uses if self.logins == 1 else -1
        return web.json_response({"access_token": token, "token_type": "bearer"})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        left = self.valid_tokens.get(token, 0)
        if left == 0:
            return web.json_response({"detail": "Invalid token"}, status=401)
        if left > 0:
            self.valid_tokens[token] = left - 1
        return await self.data(self, request)


@contextlib.asynccontextmanager
async def serve(script: Script) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/login", script.login)
    app.router.add_get("/{tail:.*}", script.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def api_config(url: str, **overrides: Any) -> ClientSettings:
    values = dict(
        url=url,
        concurrency=8,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        max_attempts=5,
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
    )
    values.update(overrides)
    return ClientSettings(**values)


def creds(password: str = PASSWORD) -> Credentials:
    return Credentials(USER, Secret(password), "test")


async def ok(script: Script, request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="application/json")


def run(coro):
    return asyncio.run(coro)


def test_login_posts_the_form_and_every_request_carries_the_bearer_token():
    seen = []

    async def data(script, request):
        seen.append(request.headers["Authorization"])
        return await ok(script, request)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url), creds()) as client:
            response = await client.get_page("/apprenticeships", {"page_size": 20}, entity="apprenticeships")
            await client.get_page("/programmes", {"page_size": 20}, entity="programmes")
        assert response.body == PAGE
        assert response.doc["data"] == [{"id": 1}]
        assert script.logins == 1
        assert seen == ["Bearer tok-1-abcdef"] * 2
        assert client.counts.requests == 3 and client.counts.retries == 0

    run(main())


def test_wrong_password_fails_at_once_with_a_clear_message_and_no_retry():
    async def main():
        script = Script(ok)
        async with serve(script) as url, ApiClient(api_config(url), creds("wrong-password")) as client:
            with pytest.raises(AuthError) as caught:
                await asyncio.gather(*(client.get_page("/programmes", {}, entity="programmes") for _ in range(5)))
        return script, caught.value

    script, error = run(main())
    assert script.requests == 0
    assert script.logins == 1  # five tasks needed a token: one login, refused, never retried
    message = str(error)
    assert "refused" in message and "HTTP 400" in message and "Invalid username or password" in message
    assert "wrong-password" not in message and isinstance(error, EtlError)


def test_an_expired_token_makes_exactly_one_task_log_in_again():
    async def main():
        script = Script(ok)
        script.first_token_uses = 3
        async with serve(script) as url, ApiClient(api_config(url, concurrency=16), creds()) as client:
            await client.login()
            results = await asyncio.gather(
                *(client.get_page(f"/apprenticeships/{i}/projects", {}, entity="projects") for i in range(40))
            )
        assert len(results) == 40
        assert script.logins == 2  # the first login and one re-login, however many tasks saw the 401
        assert client.auth.relogins == 1
        assert client.counts.retries == client.counts.entity("projects").retries == script.requests - 40

    run(main())


def test_5xx_429_dropped_connections_and_bad_bodies_are_retried_and_counted():
    plan = ["500", "503", "drop", "garbage", "429", "ok"]

    async def data(script, request):
        step = plan[min(script.requests - 1, len(plan) - 1)]
        if step == "drop":
            request.transport.close()
            return web.Response(status=200)
        if step == "garbage":
            return web.Response(body=b'{"data": [1, 2', content_type="application/json")
        if step == "429":
            return web.json_response({"detail": "Too Many Requests"}, status=429, headers={"Retry-After": "1"})
        if step in ("500", "503"):
            return web.Response(status=int(step), text="Internal Server Error")
        return await ok(script, request)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=8), creds()) as client:
            response = await client.get_page("/programmes", {"page_size": 5}, entity="programmes")
        assert response.doc["data"] == [{"id": 1}]
        assert script.requests == 6
        assert client.counts.entity("programmes").requests == 6
        assert client.counts.entity("programmes").retries == client.counts.retries == 5
        # the 429 paused everyone (a coarse "Retry-After: 1" is a jittered floor, see test_throttle.py)
        assert client.throttle.pauses == 1 and client.counts.status_429 == 1 and client.counts.status_5xx == 2

    run(main())


def test_a_request_gives_up_after_max_attempts():
    async def data(script, request):
        return web.Response(status=503, text="busy")

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=4), creds()) as client:
            with pytest.raises(RetryBudgetExhausted, match="after 4 attempts.*HTTP 503"):
                await client.get_page("/programmes", {}, entity="programmes")
        assert script.requests == 4
        assert client.counts.retries == 3

    run(main())


def test_429_with_retry_after_does_not_use_up_attempts_but_is_counted():
    async def data(script, request):
        if script.requests <= 10:
            return web.json_response({"detail": "Too Many Requests"}, status=429, headers={"Retry-After": "0"})
        return await ok(script, request)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=3), creds()) as client:
            response = await client.get_page("/programmes", {}, entity="programmes")
        assert response.doc["data"] == [{"id": 1}]
        assert script.requests == 11 and client.counts.retries == 10

    run(main())


def test_the_run_wide_retry_budget_stops_a_run_against_a_sick_api():
    async def data(script, request):
        return web.Response(status=502, text="bad gateway")

    async def main():
        script = Script(data)
        async with serve(script) as url:
            async with ApiClient(api_config(url, max_attempts=100), creds(), budget=RetryBudget(5)) as client:
                with pytest.raises(RetryBudgetExhausted, match="retry budget of 5"):
                    await client.get_page("/programmes", {}, entity="programmes")
        assert script.requests == 6

    run(main())


def test_client_errors_other_than_401_are_not_retried():
    async def data(script, request):
        return web.json_response({"detail": [{"msg": "value is not a valid integer"}]}, status=422)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url), creds()) as client:
            with pytest.raises(ApiError, match="HTTP 422.*not a valid integer") as caught:
                await client.get_page("/apprenticeships/x/projects", {}, entity="projects")
        assert script.requests == 1
        assert caught.value.status == 422

    run(main())


def test_a_read_timeout_is_retried():
    async def data(script, request):
        if script.requests == 1:
            await asyncio.sleep(1.0)
        return await ok(script, request)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, read_timeout_s=0.2), creds()) as client:
            response = await client.get_page("/programmes", {}, entity="programmes")
        assert response.doc["data"] == [{"id": 1}]
        assert script.requests == 2 and client.counts.retries == 1

    run(main())


def test_a_tokened_request_answering_500_again_and_again_has_a_dead_token():
    async def data(script, request):
        return web.Response(status=500, text="Internal Server Error")

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url, max_attempts=10), creds()) as client:
            with pytest.raises(DeadPaginationToken):
                await client.get_page("/apprenticeships", {"page_size": 5, "pagination_token": "old"}, entity="a")
            dead_after = script.requests
            with pytest.raises(RetryBudgetExhausted):  # no token: plain failure after all attempts
                await client.get_page("/apprenticeships", {"page_size": 5}, entity="a")
        assert dead_after == 4
        assert script.requests - dead_after == 10

    run(main())


def test_the_requests_per_second_ceiling_holds(monkeypatch):
    """At 40 requests per second, 20 requests sent at once wait for start slots 1/40 s apart.

    On a clock that stands still, each request's wait is its distance from the login's slot: exactly 1/40, 2/40,
    …, 20/40 s. The throttle's sleeps are recorded, not slept."""
    from types import SimpleNamespace

    from multiverse_etl.extract.http import throttle as throttle_module

    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(throttle_module, "asyncio", SimpleNamespace(sleep=recorded_sleep))

    async def main():
        script = Script(ok)
        async with serve(script) as url:
            settings = api_config(url, max_requests_per_second=40.0, concurrency=16)
            async with ApiClient(settings, creds()) as client:
                client.throttle = throttle_module.Throttle(settings, clock=lambda: 1000.0)
                await client.login()
                assert waits == []  # the login took the first slot, at once
                pages = await asyncio.gather(*(client.get_page("/programmes", {}, entity="p") for _ in range(20)))
        assert len(pages) == 20 and script.requests == 20
        assert sorted(waits) == pytest.approx([n / 40 for n in range(1, 21)])

    run(main())


def test_retry_after_parsing_and_backoff_bounds():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("  0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("-5") == 0.0
    policy = RetryPolicy(max_attempts=5, base_s=0.1, max_s=1.0)
    import random

    rng = random.Random(1)
    assert all(0 <= policy.delay(1, rng=rng) <= 0.1 for _ in range(100))
    assert all(0 <= policy.delay(10, rng=rng) <= 1.0 for _ in range(100))
    assert max(policy.delay(4, rng=rng) for _ in range(200)) > 0.5  # grows exponentially
    assert 2.0 <= policy.delay(1, retry_after=2.0, rng=rng) <= 3.0


def test_secrets_do_not_show_in_repr_format_or_logs(caplog):
    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret) and PASSWORD not in f"{secret}"
    assert secret.reveal() == PASSWORD
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)
    assert redact(f"x {PASSWORD} y", [PASSWORD, None]) == "x *** y"
    credentials = creds()
    assert PASSWORD not in repr(credentials)
    assert PASSWORD not in repr(ApiClient(ClientSettings.from_config(ApiConfig(password=PASSWORD)), credentials))
    redactor = RedactingFilter()
    redactor.add(PASSWORD)
    with caplog.at_level(logging.INFO), scrubbed_logs(redactor):
        logging.getLogger("multiverse_etl.test").info("oops %s", PASSWORD)
    assert "oops ***" in caplog.text and PASSWORD not in caplog.text


def test_turning_tls_verification_off_warns_loudly(caplog):
    async def main():
        script = Script(ok)
        async with serve(script) as url:
            with caplog.at_level(logging.WARNING):
                async with ApiClient(dataclasses.replace(api_config(url), verify_tls=False), creds()) as client:
                    await client.get_page("/programmes", {}, entity="p")

    run(main())
    assert "TLS certificate verification is OFF" in caplog.text


def test_counts_are_kept_per_entity():
    counts = Counts()
    counts.sent("projects")
    counts.sent("projects")
    counts.retried("parents")
    assert counts.by_entity["projects"].requests == 2 and counts.entity("other").requests == 0
    assert counts.requests == 2 and counts.retries == 1 and counts.entity("parents").retries == 1


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:8000",
        "https://api.example.com/v1/",
        "http://user:p%40ss@h.example:81/api",
        "http://[::1]:8000",
    ],
)
def test_a_request_target_built_from_parts_is_the_base_urls_path_plus_path_and_query(base):
    client = ApiClient(api_config(base), creds())
    text = client.base_url + "/apprenticeships/17/projects"
    for query in ("page_size=1000", "page_size=5&pagination_token=a%2Fb+c", ""):
        built = client._page_target("/apprenticeships/17/projects", query)
        parsed = URL(f"{text}?{query}" if query else text, encoded=True)
        assert built == parsed.raw_path_qs
        assert "p%40ss" not in client._page_name("GET", built)  # messages never show a user:password@ part


def test_the_query_sent_is_the_params_encoded_and_a_token_is_never_reused():
    seen = []

    async def data(script, request):
        seen.append(request.rel_url.raw_query_string)
        return await ok(script, request)

    async def main():
        script = Script(data)
        async with serve(script) as url, ApiClient(api_config(url), creds()) as client:
            for params in (
                {"page_size": 20},
                {"page_size": 20, "pagination_token": "a/b c"},
                {"page_size": 20, "pagination_token": "d&e=f"},
                {"page_size": 20},
                {"modified_after": "2026-12-07T00:00:00+00:00", "page_size": 7},
            ):
                await client.get_page("/apprenticeships", params, entity="apprenticeships")
        assert seen == [
            "page_size=20",
            "page_size=20&pagination_token=a%2Fb+c",
            "page_size=20&pagination_token=d%26e%3Df",
            "page_size=20",
            "modified_after=2026-12-07T00%3A00%3A00%2B00%3A00&page_size=7",
        ]

    run(main())

"""The one API client: `send` makes one attempt and returns an `Answer`; the policy table (policy.py) says
what to do with it: hand the page back, retry, log in again, pause everyone, or fail.

Why asyncio: the fan-out is one small request per apprenticeship, so client CPU per request decides
throughput on a small machine; one event loop with a keep-alive pool costs a fraction of a thread pool.

Who may send, and when, is the throttle's (throttle.py: slow start, then an adaptive limit; a rate learnt
from 429s; a shared pause); the token is auth.py's (single-flight login, token life). Attempts per request
and retries per run are bounded. A request carrying a pagination token that keeps answering 500 has a dead
token (the server restarted): the caller restarts that list (DeadPaginationToken).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from typing import Any, Mapping, NamedTuple, Optional
from urllib.parse import urlencode

from ..credentials import Credentials
from ..errors import ApiError, AuthError, DeadPaginationToken, RetryBudgetExhausted
from ..url import encoded, path_of, without_userinfo
from . import wire
from .auth import Auth
from .bodies import describe, error_detail, parse_page, snippet, too_large, untrusted_certificate
from .counts import Counts
from .limiter import DROP, NEUTRAL, OK, OVERLOAD, OVERLOAD_STATUS
from .policy import Action, RetryBudget, RetryPolicy, decide, parse_retry_after
from .session import ClientSettings, open_pool
from .throttle import Throttle

__all__ = ["Answer", "ApiClient", "Response"]

log = logging.getLogger(__name__)

# A tokened request answering 500 this many times in a row has a dead token. The replica and the original
# answer the same plain 500 for a fault and for a foreign token, so one 500 is not enough; four in a row at
# a 20% fault rate happen once in ~600 tokened requests, and a needless restart costs only that list again.
DEAD_TOKEN_STREAK = 4
MAX_RELOGINS_PER_REQUEST = 20
TRANSIENT_ERRORS = (wire.WireError, asyncio.TimeoutError)  # no whole answer: a drop, retried and counted
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@functools.lru_cache(maxsize=256)
def _encoded_query(items: tuple[tuple[str, Any], ...]) -> str:
    return urlencode(items)


def _query_string(params: Mapping[str, Any]) -> str:
    """`urlencode(params)`, remembered for the few parameter sets without a pagination token (every fan-out
    request sends the same `page_size=N`; a token is new each time, so it is encoded afresh)."""
    if not params:
        return ""
    if "pagination_token" in params:
        return urlencode(params)
    return _encoded_query(tuple(params.items()))


class Response(NamedTuple):
    body: bytes  # the bytes as served
    doc: dict[str, Any]  # parsed: has a list "data" and a dict "pagination"


class Answer(NamedTuple):
    """One attempt's outcome."""

    status: int  # 0: no answer at all (refused, reset, dropped, timed out)
    body: bytes
    content_type: str
    retry_after: Optional[float]  # seconds, on a 429 or 503 that said
    problem: str  # what went wrong in words, for messages
    version: int  # the token generation the request carried


class ApiClient:
    """Async client of the Multiverse API; use as `async with ApiClient(settings, credentials)`.

    Statistics are read from its parts: `counts` (requests, retries, answers), `auth` (logins, token
    lives), `throttle` (limit, rate, pauses); `to_manifest()` gathers them for the manifest."""

    def __init__(
        self,
        settings: ClientSettings,
        credentials: Credentials,
        *,
        budget: Optional[RetryBudget] = None,
        rng: Optional[random.Random] = None,
        on_token: Optional[Any] = None,
    ) -> None:
        """`on_token` is told every new access token (the run registers it for log redaction)."""
        self.settings = settings
        self.base_url = encoded(settings.url.rstrip("/"))  # encoded form: request URLs are built as text
        # What messages and logs show: never a user:password@ part of the configured URL.
        self.display_url = without_userinfo(self.base_url)
        # The base URL's encoded path, to which each request's path and query are added (the request target).
        self._path_prefix = path_of(self.base_url).rstrip("/")
        self._display_origin = self.display_url.removesuffix(self._path_prefix)
        self.credentials = credentials
        self.policy = RetryPolicy.from_settings(settings)
        self.budget = budget or RetryBudget(settings.retry_budget)
        self.counts = Counts()
        self.auth = Auth(self.display_url, on_token)
        self._rng = rng or random.Random()
        self.throttle = Throttle(settings, rng=self._rng)
        self._pool: Optional[wire.Pool] = None

    def __repr__(self) -> str:
        return f"ApiClient(url={self.display_url!r}, user={self.credentials.username!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be written anywhere (for redaction)."""
        token = self.auth.secret.reveal() if self.auth.secret else None
        return tuple(v for v in (self.credentials.password.reveal(), token) if v)

    async def __aenter__(self) -> ApiClient:
        self._pool = open_pool(self.settings, self.base_url, self.display_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def to_manifest(self) -> dict[str, Any]:
        """The client's statistics as one plain JSON-able dict (the manifest's "client" key)."""
        return {**self.throttle.to_manifest(), **self.auth.to_manifest(), **self.counts.to_manifest()}

    async def send(
        self,
        method: str,
        target: str,
        *,
        path: str,
        entity: str,
        form: Optional[dict[str, str]] = None,
        first: bool = False,
    ) -> Answer:
        """One attempt at `target` (the encoded path and query): wait for a turn (`first`: ahead of the queue),
        send, read. Counted, and told to the throttle. A data request whose token died while it queued is not
        sent to be refused: it waits for the new token and takes the next turn."""
        pool = self._require_pool()
        while True:
            ticket = await self.throttle.acquire(first)
            if form is not None or not self.auth.dead:
                break
            self.throttle.give_back(ticket)
            await self._renew(self.auth.version)
            first = True
        version = self.auth.version
        self.counts.sent(entity)
        status, body, content_type, retry_after, problem, signal = 0, b"", "", None, "", NEUTRAL
        try:
            try:
                if form is None:
                    reply = await pool.request(method, target, self.auth.headers)
                else:
                    reply = await pool.request(method, target, FORM_HEADERS, urlencode(form).encode())
                status, body = reply.status, reply.body
                content_type = reply.headers.get("content-type", "")  # for messages: as sent, not parsed
                if status == 429 or status == 503:
                    retry_after = parse_retry_after(reply.headers.get("retry-after"))
            except wire.CertificateError as exc:
                raise untrusted_certificate(exc, self.display_url, path) from None
            except wire.TooLarge as exc:
                raise too_large(self._page_name(method, target), self.settings.max_response_bytes, exc.seen) from None
            except TRANSIENT_ERRORS as exc:
                problem, signal = describe(exc), DROP
                self.counts.unanswered(timeout=isinstance(exc, asyncio.TimeoutError))
            else:
                signal = self._observe(status, version if form is None else None)
        finally:
            paused = status == 429 or (status == 503 and retry_after is not None)
            self.throttle.release(ticket, signal, accepted=bool(status) and not paused)
        if paused:
            self.throttle.throttled(ticket, retry_after)
        return Answer(status, body, content_type, retry_after, problem or f"HTTP {status}", version)

    async def login(self) -> None:
        """POST /login (form); a refusal raises AuthError at once, transient failures are retried."""
        target = f"{self._path_prefix}/login"
        form = {"username": self.credentials.username, "password": self.credentials.password.reveal()}
        attempt = 0
        while True:
            attempt += 1
            answer = await self.send("POST", target, path="/login", entity="login", form=form, first=True)
            action = decide(answer.status, answer.retry_after)
            if action is Action.DONE:
                self.auth.accept(answer.body)
                return
            if action in (Action.FAIL, Action.RELOGIN):
                raise self.auth.refused(
                    AuthError(
                        f"login to {self.display_url} as {self.credentials.username!r} was refused "
                        f"(HTTP {answer.status}: {self._detail(answer.body)}); check MV_API_USERNAME / "
                        f"MV_API_PASSWORD or the Secrets Manager secret in api.secret_id",
                        status=answer.status,
                        path="/login",
                    )
                )
            await self._retry_or_raise(f"POST {self.display_url}/login", attempt, answer, "login", action)

    async def get_page(self, path: str, params: Mapping[str, Any], *, entity: str) -> Response:
        """GET one page of a list, acting on each answer as the policy table says; raises a typed ApiError."""
        if not self.auth.headers:
            await self._renew(0)
        target = self._page_target(path, _query_string(params))
        tokened = "pagination_token" in params
        attempt = relogins = streak_500 = 0
        first = False  # after a 401: ahead of the queue, so the fresh token is not spent before our turn
        while True:
            attempt += 1
            answer = await self.send("GET", target, path=path, entity=entity, first=first)
            first = False
            action = decide(answer.status, answer.retry_after)
            if action is Action.DONE:
                doc = parse_page(answer.body)
                if doc is not None:
                    return Response(answer.body, doc)
                action = Action.RETRY
                answer = answer._replace(
                    problem=f"an unreadable page body (HTTP {answer.status} {answer.content_type}: "
                    f"{snippet(answer.body)})"
                )
            if action is Action.FAIL:
                raise ApiError(
                    f"GET {path} answered HTTP {answer.status}: {self._detail(answer.body)}",
                    status=answer.status,
                    path=path,
                )
            if action is Action.RELOGIN:
                relogins += 1
                if relogins > MAX_RELOGINS_PER_REQUEST:
                    raise AuthError(
                        f"GET {path}: 401 after {relogins - 1} fresh tokens for this one request "
                        f"while others were served",
                        status=401,
                        path=path,
                    )
                self._count_retry(entity, f"GET {path}: 401")
                cap = self.auth.expired(answer.version)
                if cap is not None:
                    self.throttle.set_cap(cap)
                await self._renew(answer.version)
                attempt -= 1  # an expired token is not a failed attempt
                first = True
                continue
            if answer.status == 500 and tokened:
                streak_500 += 1
                if streak_500 >= min(DEAD_TOKEN_STREAK, self.policy.max_attempts):
                    raise DeadPaginationToken(
                        f"GET {path}: the pagination token is no longer accepted "
                        f"({streak_500} answers of 500 in a row; the server restarted?)",
                        status=500,
                        path=path,
                    )
            elif 400 <= answer.status < 500 and answer.status != 429:
                # Only an answer from the application itself breaks a run of 500s; a 429 or a dropped
                # connection in between says nothing about whether the token is dead.
                streak_500 = 0
            if answer.status == 429 and answer.retry_after is not None:
                attempt -= 1  # the API said when to come back: not a failed attempt (the run's budget bounds it)
            await self._retry_or_raise(f"GET {path}", attempt, answer, entity, action)

    # ------------------------------------------------------------------ internals

    def _observe(self, status: int, version: Optional[int]) -> str:
        """Count an answer; what it says about the API's load (for the limiter). `version`: the token a data
        request carried (None for the login, whose 200 says nothing about what a token earns)."""
        self.counts.answered(status)
        if status < 300 and version is not None:
            self.auth.served(version)
            return OK
        return OVERLOAD if status in OVERLOAD_STATUS else NEUTRAL

    async def _renew(self, seen_version: int) -> None:
        await self.auth.renew(seen_version, self.login, self._barren_backoff)

    async def _barren_backoff(self, barren: int) -> None:
        await asyncio.sleep(self.policy.delay(barren, None, self._rng))

    async def _retry_or_raise(self, what: str, attempt: int, answer: Answer, entity: str, action: Action) -> None:
        attempt = max(attempt, 1)
        if attempt >= self.policy.max_attempts:
            raise RetryBudgetExhausted(f"{what} failed after {attempt} attempts (last: {answer.problem})")
        self._count_retry(entity, f"{what}: {answer.problem}")
        if action is Action.PAUSE:
            log.debug("%s: %s; retry %d after the shared pause", what, answer.problem, attempt)
            return  # the throttle holds every task; the next send waits for it
        delay = self.policy.delay(attempt, answer.retry_after, self._rng)
        log.debug("%s: %s; retry %d in %.2fs", what, answer.problem, attempt, delay)
        await asyncio.sleep(delay)

    def _count_retry(self, entity: str, what: str) -> None:
        self.counts.retried(entity)
        self.budget.spend(what)

    def _page_target(self, path: str, query: str) -> str:
        """The request target: the base URL's path, `path`, `?query`; all encoded already, so nothing is parsed."""
        return f"{self._path_prefix}{path}?{query}" if query else self._path_prefix + path

    def _page_name(self, method: str, target: str) -> str:
        """`GET <url>` for messages: the configured URL without any user:password@ part (a target holds no
        secret: the token travels in a header)."""
        return f"{method} {self._display_origin}{target}"

    def _detail(self, body: bytes) -> str:
        return error_detail(body, self.secrets)

    def _require_pool(self) -> wire.Pool:
        if self._pool is None:
            raise RuntimeError("ApiClient used outside 'async with'")
        return self._pool

"""The one API client: aiohttp, one connection pool sized to the concurrency, retries that are counted.

Why asyncio: the fan-out is one small request per apprenticeship, so client CPU per request
decides throughput on a small machine; one event loop with a keep-alive pool costs a
fraction of a thread pool over `requests`.

Behaviour (see docs/extract.md): form login; one bearer token shared by all tasks; on a 401
exactly one task logs in again (single flight) and the request is retried; a refused login
fails at once (AuthError), and 401s end the run only when several fresh tokens in a row earned
no 2xx at all. Connection errors, timeouts, dropped connections, 408/429/5xx and unreadable
bodies are retried with exponential backoff and full jitter; a 429 (or a 503 with Retry-After)
pauses every task (a shared gate), for at least a floor. Attempts per request and retries per
run are bounded. A request carrying a pagination token that keeps answering 500 has a dead
token (the server restarted): the caller restarts that list (DeadPaginationToken).

How many requests are in flight is decided by the limiter (limiter.py): adaptive by default
(`api.concurrency` is its ceiling), bounded by half the measured life of a token, and paced to a
rate learnt from 429s; `api.concurrency_mode: fixed` keeps `api.concurrency` in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from ..config import ApiConfig
from .bodies import describe, error_detail, parse_page, snippet, untrusted_certificate
from .credentials import Credentials
from .errors import ApiError, AuthError, DeadPaginationToken, RetryBudgetExhausted
from .gate import PauseGate
from .limiter import DROP, NEUTRAL, OK, OVERLOAD, OVERLOAD_STATUS, ConcurrencyLimiter, RateMeter, RatePacer
from .retry import RETRYABLE_STATUS, RetryBudget, RetryPolicy, parse_retry_after
from .session import open_session
from .stats import Counter, RequestStats
from .tokens import BearerToken

__all__ = ["ApiClient", "Response"]

log = logging.getLogger(__name__)

# A tokened request answering 500 this many times in a row has a dead token. The replica and
# the original answer the same plain 500 for a fault and for a foreign token, so one 500 is
# not enough; four in a row at a 20% fault rate happen once in ~600 tokened requests, and a
# needless restart costs only that list again.
DEAD_TOKEN_STREAK = 4
MAX_RELOGINS_PER_REQUEST = 20
TRANSIENT_ERRORS = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    asyncio.TimeoutError,
)


class Response(NamedTuple):
    body: bytes  # the bytes as served
    doc: dict[str, Any]  # parsed: has a list "data" and a dict "pagination"


class ApiClient:
    """Async client of the Multiverse API; use as `async with ApiClient(...) as client`."""

    def __init__(
        self,
        api: ApiConfig,
        credentials: Credentials,
        *,
        stats: Optional[RequestStats] = None,
        budget: Optional[RetryBudget] = None,
        policy: Optional[RetryPolicy] = None,
        rng: Optional[random.Random] = None,
        on_token: Optional[Callable[[str], None]] = None,
    ) -> None:
        """`on_token` is told every new access token (the run registers it for log redaction)."""
        self.api = api
        self.base_url = str(URL(api.url.rstrip("/")))  # in encoded form: request URLs are built as text
        parsed = URL(self.base_url)
        # What messages and logs show: never a user:password@ part of the configured URL.
        self.display_url = str(parsed.with_user(None)) if parsed.user or parsed.password else self.base_url
        self.credentials = credentials
        self.stats = stats or RequestStats()
        self.budget = budget or RetryBudget(api.retry_budget)
        self.policy = policy or RetryPolicy.from_config(api)
        self.adaptive = api.concurrency_mode == "adaptive"
        self.limiter = ConcurrencyLimiter(api.concurrency, adaptive=self.adaptive)
        self.pacer = RatePacer(api.max_requests_per_second)
        self.accepted = RateMeter()
        self.stats.limiter, self.stats.pacer = self.limiter, self.pacer
        self.token = BearerToken(self.stats, on_token)
        self.gate = PauseGate(self.stats)
        self._learn_after = 0.0  # the rate is learnt again from 429s only after the pause they caused
        self._rng = rng or random.Random()
        self._session: Optional[aiohttp.ClientSession] = None
        self._login_lock: Optional[asyncio.Lock] = None
        self._refused: Optional[AuthError] = None  # once refused, never ask again (no lock-out storm)

    def __repr__(self) -> str:
        return f"ApiClient(url={self.display_url!r}, user={self.credentials.username!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be written anywhere (for redaction)."""
        token = self.token.secret.reveal() if self.token.secret else None
        return tuple(v for v in (self.credentials.password.reveal(), token) if v)

    async def __aenter__(self) -> ApiClient:
        self._session = open_session(self.api, self.base_url)
        self._login_lock = asyncio.Lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def login(self) -> None:
        """POST /login (form); a refusal raises AuthError at once, transient failures are retried."""
        session = self._require_session()
        url = f"{self.base_url}/login"
        form = {"username": self.credentials.username, "password": self.credentials.password.reveal()}
        counter = self.stats.entity("login")
        attempt = 0
        while True:
            attempt += 1
            status = 0
            retry_after: Optional[float] = None
            await self._before_send()
            counter.requests += 1
            self.stats.requests += 1
            try:
                async with session.post(url, data=form) as resp:
                    status = resp.status
                    body = await resp.read()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except aiohttp.ClientConnectorCertificateError as exc:
                raise untrusted_certificate(exc, self.display_url, "/login") from None
            except TRANSIENT_ERRORS as exc:
                problem = describe(exc)
            else:
                if status == 200:
                    self.token.accept(body, self.display_url)
                    return
                if status in RETRYABLE_STATUS:
                    problem = f"HTTP {status}"
                    self._observe(status, -1)
                else:
                    detail = self._detail(body)
                    self._refused = AuthError(
                        f"login to {self.display_url} as {self.credentials.username!r} was refused "
                        f"(HTTP {status}: {detail}); check MV_API_USERNAME / MV_API_PASSWORD "
                        f"or the Secrets Manager secret in api.secret_id",
                        status=status,
                        path="/login",
                    )
                    raise self._refused
            await self._retry_or_raise(
                f"POST {self.display_url}/login", attempt, problem, retry_after, counter, throttled=status == 429
            )

    async def _relogin(self, seen_version: int) -> None:
        """Single flight: the first task to need a token logs in; the others wait and reuse its token."""
        assert self._login_lock is not None
        async with self._login_lock:
            if self._refused is not None:
                raise self._refused
            if self.token.version == seen_version:
                if seen_version:
                    await self._pace_relogin()
                    self.stats.relogins += 1
                    log.debug("token rejected: logging in again (relogin %d)", self.stats.relogins)
                await self.login()

    async def _pace_relogin(self) -> None:
        """One login per token generation, backed off while tokens earn nothing (several in a row end the run)."""
        try:
            barren = self.token.count_barren(self.display_url)
        except AuthError as refused:
            self._refused = refused
            raise
        if barren:
            await asyncio.sleep(self.policy.delay(barren, None, self._rng))

    async def get_page(self, path: str, params: Mapping[str, Any], *, entity: str) -> Response:
        """GET one page of a list; retried as described above; raises a typed ApiError otherwise."""
        session = self._require_session()
        if not self.token.headers:
            await self._relogin(0)
        # One pre-encoded URL per call: yarl skips parsing and quoting (measurable at thousands of requests/s).
        query = urlencode(params) if params else ""
        url = URL(f"{self.base_url}{path}?{query}" if query else self.base_url + path, encoded=True)
        counter = self.stats.entity(entity)
        tokened = "pagination_token" in params
        limiter, stats = self.limiter, self.stats
        attempt = relogins = streak_500 = 0
        while True:
            attempt += 1
            status = 0
            retry_after: Optional[float] = None
            await limiter.acquire()
            outcome = NEUTRAL
            try:
                if self.gate.until or self.pacer.rate:
                    await self._before_send()
                version = self.token.version
                counter.requests += 1
                stats.requests += 1
                sent = time.monotonic()
                try:
                    async with session.get(url, headers=self.token.headers) as resp:
                        status = resp.status
                        body = await resp.read()
                        content_type = resp.content_type
                        if status == 429 or status == 503:
                            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                except aiohttp.ClientConnectorCertificateError as exc:
                    raise untrusted_certificate(exc, self.display_url, path) from None
                except TRANSIENT_ERRORS as exc:
                    problem = describe(exc)
                    outcome = DROP
                    if isinstance(exc, asyncio.TimeoutError):
                        stats.timeouts += 1
                    else:
                        stats.drops += 1
                else:
                    outcome = self._observe(status, version)
            finally:
                rtt = time.monotonic() - sent if outcome == OK else None
                limiter.release(outcome, rtt)
            if rtt is not None:
                stats.latency.add(rtt)
            if status:
                if status == 200:
                    doc = parse_page(body)
                    if doc is not None:
                        return Response(body, doc)
                    problem = f"an unreadable page body (HTTP 200 {content_type}: {snippet(body)})"
                elif status == 401:
                    relogins += 1
                    if relogins > MAX_RELOGINS_PER_REQUEST:
                        raise AuthError(
                            f"GET {path}: 401 after {relogins - 1} fresh tokens for this one request "
                            f"while others were served",
                            status=401,
                            path=path,
                        )
                    self._count_retry(counter, f"GET {path}: 401")
                    cap = self.token.expired(version)
                    if cap is not None and self.adaptive:
                        self.limiter.set_cap(cap)
                    await self._relogin(version)
                    attempt -= 1  # an expired token is not a failed attempt
                    continue
                elif status in RETRYABLE_STATUS:
                    problem = f"HTTP {status}"
                    if status == 500 and tokened:
                        streak_500 += 1
                        if streak_500 >= min(DEAD_TOKEN_STREAK, self.policy.max_attempts):
                            raise DeadPaginationToken(
                                f"GET {path}: the pagination token is no longer accepted "
                                f"({streak_500} answers of 500 in a row; the server restarted?)",
                                status=500,
                                path=path,
                            )
                else:
                    raise ApiError(f"GET {path} answered HTTP {status}: {self._detail(body)}", status=status, path=path)
            if 400 <= status < 500 and status != 429:
                # Only an answer from the application itself breaks a run of 500s; a 429 or a dropped
                # connection in between says nothing about whether the token is dead.
                streak_500 = 0
            if status == 429 and retry_after is not None:
                # The API said when to come back: that is not a failed attempt (the run's budget still bounds it).
                attempt -= 1
            throttled = status == 429 or (status == 503 and retry_after is not None)
            if status == 429 and self.adaptive:
                self._learn_rate()
            await self._retry_or_raise(f"GET {path}", attempt, problem, retry_after, counter, throttled=throttled)

    def _observe(self, status: int, version: int) -> str:
        """Count an answer; what it says about the API's load (for the limiter)."""
        stats = self.stats
        if status < 300:
            stats.ok += 1
            self.accepted.add()
            self.token.served(version)
            return OK
        if status == 401:
            stats.status_401 += 1
            return NEUTRAL
        if status == 429:
            stats.status_429 += 1
        else:
            self.accepted.add()
            if status >= 500:
                stats.status_5xx += 1
        return OVERLOAD if status in OVERLOAD_STATUS else NEUTRAL

    def _learn_rate(self) -> None:
        """A 429: pace requests to what the API accepted over the last seconds (once per pause)."""
        now = time.monotonic()
        if now < self._learn_after:
            return
        self.pacer.learn_from_429(self.accepted.rate())
        self._learn_after = max(now, self.gate.until) + 1.0
        log.debug("429: pacing requests to %.0f/s", self.pacer.rate or 0)

    async def _retry_or_raise(
        self, what: str, attempt: int, problem: str, retry_after: Optional[float], counter: Counter, throttled: bool
    ) -> None:
        attempt = max(attempt, 1)
        if attempt >= self.policy.max_attempts:
            raise RetryBudgetExhausted(f"{what} failed after {attempt} attempts (last: {problem})")
        self._count_retry(counter, f"{what}: {problem}")
        if throttled:
            # Every task waits (a shared gate), at least a floor with jitter even for "Retry-After: 0".
            delay = self.policy.throttled_delay(attempt, retry_after, self._rng)
            self.gate.hold(delay)
        else:
            delay = self.policy.delay(attempt, retry_after, self._rng)
        log.debug("%s: %s; retry %d in %.2fs", what, problem, attempt, delay)
        await asyncio.sleep(delay)

    def _count_retry(self, counter: Counter, what: str) -> None:
        counter.retries += 1
        self.stats.retries += 1
        self.budget.spend(what)

    async def _before_send(self) -> None:
        await self.gate.wait()
        if self.pacer.rate:
            await self.pacer.acquire()

    def _detail(self, body: bytes) -> str:
        return error_detail(body, self.secrets)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ApiClient used outside 'async with'")
        return self._session

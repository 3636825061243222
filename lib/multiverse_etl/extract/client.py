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
import json
import logging
import random
import re
import time
from collections import defaultdict
from typing import Any, Callable, Mapping, NamedTuple, Optional
from urllib.parse import urlencode

import aiohttp
import orjson
from yarl import URL

from .. import __version__
from ..config import ApiConfig
from .credentials import Credentials
from .errors import ApiError, AuthError, DeadPaginationToken, RetryBudgetExhausted
from .limiter import (
    DROP,
    NEUTRAL,
    OK,
    OVERLOAD,
    OVERLOAD_STATUS,
    ConcurrencyLimiter,
    LatencyHistogram,
    RateMeter,
    RatePacer,
)
from .redaction import Secret, redact
from .retry import RETRYABLE_STATUS, RetryBudget, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

# A tokened request answering 500 this many times in a row has a dead token. The replica and
# the original answer the same plain 500 for a fault and for a foreign token, so one 500 is
# not enough; four in a row at a 20% fault rate happen once in ~600 tokened requests, and a
# needless restart costs only that list again.
DEAD_TOKEN_STREAK = 4
# A run ends on 401s only when this many fresh tokens in a row earned no 2xx at all (the API refuses us);
# one request may be unlucky many times while tokens die faster than the pool uses them.
MAX_BARREN_TOKENS = 3
MAX_RELOGINS_PER_REQUEST = 20
TOKEN_LIVES_KEPT = 4  # the token cap follows the shortest of the last few token lives
DETAIL_CHARS = 200
TRANSIENT_ERRORS = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    asyncio.TimeoutError,
)


class Response(NamedTuple):
    body: bytes  # the bytes as served
    doc: dict[str, Any]  # parsed: has a list "data" and a dict "pagination"


class Counter:
    """Requests and retries of one entity (or of the login)."""

    __slots__ = ("requests", "retries")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0


class RequestStats:
    """Every request and retry of a run, in total and per entity, for progress and the manifest."""

    def __init__(self) -> None:
        self.by_entity: defaultdict[str, Counter] = defaultdict(Counter)
        self.requests = 0
        self.retries = 0
        self.logins = 0
        self.relogins = 0
        self.ok = 0
        self.status_401 = 0
        self.status_429 = 0
        self.status_5xx = 0
        self.drops = 0  # connections refused, reset or closed unanswered
        self.timeouts = 0
        self.pauses = 0  # times every task was held (Retry-After)
        self.token_lives: list[int] = []  # 2xx answers each expired token earned
        self.latency = LatencyHistogram()
        self.limiter: Optional[ConcurrencyLimiter] = None
        self.pacer: Optional[RatePacer] = None

    def entity(self, name: str) -> Counter:
        return self.by_entity[name]

    @property
    def limit(self) -> Optional[int]:
        """The number of requests that may be in flight now."""
        return self.limiter.current if self.limiter else None

    def to_manifest(self) -> dict[str, Any]:
        """The client's statistics as one plain JSON-able dict (the manifest's "client" key)."""
        limiter, pacer = self.limiter, self.pacer
        lives = self.token_lives
        return {
            "concurrency_mode": None if limiter is None else ("adaptive" if limiter.adaptive else "fixed"),
            "limit_final": None if limiter is None else limiter.current,
            "limit_min": None if limiter is None else limiter.min_seen,
            "limit_max": None if limiter is None else limiter.max_seen,
            "limit_ceiling": None if limiter is None else limiter.ceiling,
            "limit_decreases": None if limiter is None else limiter.decreases,
            "token_cap": None if limiter is None else limiter.cap,
            "learnt_requests_per_s": None if pacer is None or pacer.learnt is None else round(pacer.learnt, 1),
            "logins": self.logins,
            "relogins": self.relogins,
            "status_2xx": self.ok,
            "status_401": self.status_401,
            "status_429": self.status_429,
            "status_5xx": self.status_5xx,
            "drops": self.drops,
            "timeouts": self.timeouts,
            "pauses": self.pauses,
            "token_life_min": min(lives) if lives else None,
            "token_life_median": sorted(lives)[len(lives) // 2] if lives else None,
            "tokens_expired": len(lives),
            "latency": self.latency.to_manifest(),
        }


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
        self._learn_after = 0.0  # the rate is learnt again from 429s only after the pause they caused
        self._rng = rng or random.Random()
        self._on_token = on_token
        self._session: Optional[aiohttp.ClientSession] = None
        self._token: Optional[Secret] = None
        self._auth_headers: dict[str, str] = {}
        self._token_version = 0
        self._token_ok = 0  # 2xx answers the current token earned
        self._token_died = False  # the current token got its first 401
        self._barren = 0  # fresh tokens in a row that earned no 2xx
        self._login_lock: Optional[asyncio.Lock] = None
        self._pause_until = 0.0  # a 429's Retry-After holds every task, not just the one that got it
        self._refused: Optional[AuthError] = None  # once refused, never ask again (no lock-out storm)

    def __repr__(self) -> str:
        return f"ApiClient(url={self.display_url!r}, user={self.credentials.username!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be written anywhere (for redaction)."""
        token = self._token.reveal() if self._token else None
        return tuple(v for v in (self.credentials.password.reveal(), token) if v)

    async def __aenter__(self) -> ApiClient:
        if not self.api.verify_tls:
            log.warning(
                "TLS certificate verification is OFF for %s (api.verify_tls=false): "
                "anyone on the path can read the API password",
                self.base_url,
            )
        connector = aiohttp.TCPConnector(
            limit=self.api.concurrency,
            limit_per_host=0,
            ttl_dns_cache=300,
            ssl=None if self.api.verify_tls else False,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.api.connect_timeout_s, sock_read=self.api.read_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            raise_for_status=False,
            headers={"User-Agent": f"multiverse-etl/{__version__}", "Accept": "application/json"},
        )
        # aiohttp quietly re-sends once when a reused connection drops; this client retries (and counts) itself.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        self._login_lock = asyncio.Lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ login

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
                raise self._certificate_error(exc, "/login") from None
            except TRANSIENT_ERRORS as exc:
                problem = _describe(exc)
            else:
                if status == 200:
                    self._accept_token(body)
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

    def _accept_token(self, body: bytes) -> None:
        try:
            doc = orjson.loads(body)
            token = doc["access_token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise AuthError(
                f"login to {self.display_url} answered 200 without an access_token", path="/login"
            ) from None
        if not isinstance(token, str) or not token:
            raise AuthError(f"login to {self.display_url} answered an empty access_token", path="/login")
        if self._on_token is not None:
            self._on_token(token)
        self._token = Secret(token)
        self._auth_headers = {"Authorization": f"Bearer {token}"}
        self._token_version += 1
        self._token_ok = 0
        self._token_died = False
        self.stats.logins += 1

    async def _relogin(self, seen_version: int) -> None:
        """Single flight: the first task to need a token logs in; the others wait and reuse its token."""
        assert self._login_lock is not None
        async with self._login_lock:
            if self._refused is not None:
                raise self._refused
            if self._token_version == seen_version:
                if seen_version:
                    await self._pace_relogin()
                    self.stats.relogins += 1
                    log.debug("token rejected: logging in again (relogin %d)", self.stats.relogins)
                await self.login()

    async def _pace_relogin(self) -> None:
        """One login per token generation; a token that earned nothing counts, and several in a row end the run."""
        self._barren = self._barren + 1 if self._token_ok == 0 else 0
        if self._barren >= MAX_BARREN_TOKENS:
            self._refused = AuthError(
                f"the API rejects fresh tokens: {self._barren} logins in a row gave tokens that earned no 2xx "
                f"answer at all (401 at once); check the account's permissions at {self.display_url}",
                status=401,
                path="/login",
            )
            raise self._refused
        if self._barren:
            await asyncio.sleep(self.policy.delay(self._barren, None, self._rng))

    def _token_expired(self, version: int) -> None:
        """The first 401 of the current token: how many requests it served bounds the requests in flight."""
        if version != self._token_version or self._token_died:
            return
        self._token_died = True
        if self._token_ok == 0:
            return
        lives = self.stats.token_lives
        lives.append(self._token_ok)
        if self.adaptive:
            # Half the shortest recent life in flight: a token serves about its life, not a storm of 401s.
            self.limiter.set_cap(max(1, min(lives[-TOKEN_LIVES_KEPT:]) // 2))

    # ------------------------------------------------------------------ data requests

    async def get_page(self, path: str, params: Mapping[str, Any], *, entity: str) -> Response:
        """GET one page of a list; retried as described above; raises a typed ApiError otherwise."""
        session = self._require_session()
        if not self._auth_headers:
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
                if self._pause_until or self.pacer.rate:
                    await self._before_send()
                version = self._token_version
                counter.requests += 1
                stats.requests += 1
                sent = time.monotonic()
                try:
                    async with session.get(url, headers=self._auth_headers) as resp:
                        status = resp.status
                        body = await resp.read()
                        content_type = resp.content_type
                        if status == 429 or status == 503:
                            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                except aiohttp.ClientConnectorCertificateError as exc:
                    raise self._certificate_error(exc, path) from None
                except TRANSIENT_ERRORS as exc:
                    problem = _describe(exc)
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
                    doc = _parse_page(body)
                    if doc is not None:
                        return Response(body, doc)
                    problem = f"an unreadable page body (HTTP 200 {content_type}: {_snippet(body)})"
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
                    self._token_expired(version)
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

    # ------------------------------------------------------------------ helpers

    def _certificate_error(self, exc: BaseException, path: str) -> ApiError:
        """A bad certificate will not fix itself: no retry, say what is wrong and what to do."""
        reason = getattr(exc, "certificate_error", None) or type(exc).__name__
        return ApiError(
            f"the TLS certificate of {self.display_url} is not trusted ({reason}); fix the certificate "
            f"or its CA bundle, or (never in production) set api.verify_tls: false",
            path=path,
        )

    def _observe(self, status: int, version: int) -> str:
        """Count an answer; what it says about the API's load (for the limiter)."""
        stats = self.stats
        if status < 300:
            stats.ok += 1
            self.accepted.add()
            if version == self._token_version:
                self._token_ok += 1
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
        self._learn_after = max(now, self._pause_until) + 1.0
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
            until = time.monotonic() + delay
            if until > self._pause_until:
                if self._pause_until <= time.monotonic():
                    self.stats.pauses += 1
                self._pause_until = until
        else:
            delay = self.policy.delay(attempt, retry_after, self._rng)
        log.debug("%s: %s; retry %d in %.2fs", what, problem, attempt, delay)
        await asyncio.sleep(delay)

    def _count_retry(self, counter: Counter, what: str) -> None:
        counter.retries += 1
        self.stats.retries += 1
        self.budget.spend(what)

    async def _before_send(self) -> None:
        while self._pause_until:  # a later 429 may have moved the gate while we slept
            wait = self._pause_until - time.monotonic()
            if wait <= 0:
                self._pause_until = 0.0
                break
            await asyncio.sleep(wait)
        if self.pacer.rate:
            await self.pacer.acquire()

    def _detail(self, body: bytes) -> str:
        """A short, secret-free description of an error body for messages."""
        text = body[: DETAIL_CHARS * 2].decode("utf-8", "replace")
        try:
            detail = json.loads(body).get("detail", text)
            text = detail if isinstance(detail, str) else json.dumps(detail)[: DETAIL_CHARS * 2]
        except (ValueError, AttributeError):
            pass
        return redact(" ".join(text.split())[:DETAIL_CHARS] or "<empty body>", self.secrets)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ApiClient used outside 'async with'")
        return self._session


def _parse_page(body: bytes) -> Optional[dict[str, Any]]:
    """The page as a dict with a list 'data' and a dict 'pagination', or None if it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # orjson refuses integers beyond 64 bits; the stdlib does not
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if type(doc) is not dict or type(doc.get("data")) is not list or type(doc.get("pagination")) is not dict:
        return None
    return doc


def _snippet(body: bytes, limit: int = 120) -> str:
    """The start of an unexpected body, tags and runs of white space removed, for the error message."""
    text = re.sub(r"<[^>]*>", " ", body[:2000].decode("utf-8", "replace"))
    text = " ".join(text.split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _describe(exc: BaseException) -> str:
    """Exception class (and OS reason): aiohttp's own messages can carry URLs we do not want in logs."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout ({type(exc).__name__})"
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return f"{type(exc).__name__}: {os_error.strerror}"
    return type(exc).__name__

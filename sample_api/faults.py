"""Fault injection for data endpoints: what a real API does to an extractor.

Faults run before the app, in this order, each with a seeded RNG:

1. ``rate_limit`` – over R requests/s (``rate_limit_shape``: token bucket, fixed or sliding window, see
   ratelimit.py) answer ``429 {"detail": "Too Many Requests"}`` with ``Retry-After`` as ``retry_after`` says;
   (``max_concurrency`` – at most C data requests are served at once, the others wait their
   turn in a FIFO queue: from here on, including the app's answer, a request holds a slot;)
2. ``latency_ms`` – sleep M ms x uniform(0.5, 1.5) (jitter);
3. ``drop_rate`` – close the connection without any answer;
4. ``fault_rate`` – answer the plain ``500 Internal Server Error``.

A request that passes all four is answered by the app untouched: a fault replaces an
answer, it never alters one. ``/login``, ``/docs`` and ``/openapi.json`` are never faulted.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, Optional

from .ratelimit import RateLimiter, retry_after_header
from .settings import ServerSettings

__all__ = ["FaultInjector", "RateLimiter", "drop_connection", "is_data_path", "send_internal_error"]

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

INTERNAL_ERROR_HEADERS = [
    (b"content-length", b"21"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"connection", b"close"),
]


def is_data_path(path: str) -> bool:
    """The three authenticated list endpoints (any method)."""
    if path == "/apprenticeships" or path == "/programmes":
        return True
    return path.startswith("/apprenticeships/") and path.endswith("/projects") and path.count("/") == 3


async def send_internal_error(send: Send) -> None:
    """The original's answer to an unhandled exception (and the connection then closes)."""
    await send({"type": "http.response.start", "status": 500, "headers": INTERNAL_ERROR_HEADERS})
    await send({"type": "http.response.body", "body": b"Internal Server Error"})


def drop_connection(receive: Receive) -> bool:
    """Close the client's TCP connection without answering (uvicorn only).

    uvicorn hands the app ``receive`` bound to its request cycle, which holds the
    transport. Marking the cycle disconnected stops uvicorn from sending its own 500.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    cycle.disconnected = True
    transport.close()
    return True


class FaultInjector:
    """Decides, per data request, whether a fault answers instead of the app."""

    def __init__(self, settings: ServerSettings) -> None:
        self.rng = random.Random(settings.fault_seed)
        self.fault_rate = settings.fault_rate
        self.drop_rate = settings.drop_rate
        self.latency = settings.latency_ms / 1000.0
        self.limiter = (
            RateLimiter(settings.rate_limit, shape=settings.rate_limit_shape, burst=settings.rate_limit_burst)
            if settings.rate_limit
            else None
        )
        self.retry_after = settings.retry_after
        self.active = bool(self.fault_rate or self.drop_rate or self.latency or self.limiter)
        # A saturating server: C requests served at once, the rest queue (made lazily: it needs the loop).
        self.max_concurrency = settings.max_concurrency or None
        self._slots: Optional[asyncio.Semaphore] = None

    @property
    def slots(self) -> Optional[asyncio.Semaphore]:
        """The server's C service slots (None: unlimited)."""
        if self.max_concurrency and self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrency)
        return self._slots

    async def intercept(self, scope: dict[str, Any], receive: Receive, send: Send) -> bool:
        """Apply faults to one data request; True if a fault answered (or dropped) it."""
        if await self.rate_limited(send):
            return True
        return await self.after_admission(scope, receive, send)

    async def rate_limited(self, send: Send) -> bool:
        """Step 1: the 429 of the rate limit (answered at once, never queued)."""
        if self.limiter is not None:
            wait = self.limiter.wait()
            if wait is not None:
                await self._too_many(send, retry_after_header(wait, self.retry_after))
                return True
        return False

    async def after_admission(self, scope: dict[str, Any], receive: Receive, send: Send) -> bool:
        """Steps 2-4 (latency, drop, 500), run while the request holds a service slot."""
        if self.latency:
            await asyncio.sleep(self.latency * self.rng.uniform(0.5, 1.5))
        u = self.rng.random()
        if u < self.drop_rate:
            if drop_connection(receive):
                log.debug("fault: dropped %s", scope.get("path"))
                return True
            await send_internal_error(send)
            return True
        if u < self.drop_rate + self.fault_rate:
            log.debug("fault: 500 on %s", scope.get("path"))
            await send_internal_error(send)
            return True
        return False

    @staticmethod
    async def _too_many(send: Send, retry_after: Optional[str]) -> None:
        body = b'{"detail":"Too Many Requests"}'
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})

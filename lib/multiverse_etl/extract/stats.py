"""What the API client counts: requests, retries and answers per run and per entity, for progress and the manifest."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

from .limiter import ConcurrencyLimiter, LatencyHistogram, RatePacer


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

"""When to try again and how long to wait: backoff with jitter, Retry-After, a run-wide budget, a rate ceiling."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Optional

from ..config import ApiConfig
from .errors import RetryBudgetExhausted

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 600.0  # a server asking for more than this is treated as asking for this
# A 429 (or 503) saying "Retry-After: 0", or nothing, still waits this long, with jitter up to twice it:
# every task waits (a shared gate), so this is what keeps a throttled API from a tight loop.
RETRY_AFTER_FLOOR_S = 0.1


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS style), capped; Retry-After wins when given."""

    max_attempts: int = 8
    base_s: float = 0.2
    max_s: float = 30.0

    @classmethod
    def from_config(cls, api: ApiConfig) -> RetryPolicy:
        return cls(max_attempts=api.max_attempts, base_s=api.backoff_base_s, max_s=api.backoff_max_s)

    def delay(self, attempt: int, retry_after: Optional[float] = None, rng: random.Random = random._inst) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            return retry_after + rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        ceiling = min(self.max_s, self.base_s * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)

    def throttled_delay(self, attempt: int, retry_after: Optional[float], rng: random.Random = random._inst) -> float:
        """The wait after a 429 (or a 503 with Retry-After): Retry-After if it says more than the floor, else
        the floor (or the backoff, if longer) with jitter: never a tight loop."""
        if retry_after is not None and retry_after >= RETRY_AFTER_FLOOR_S:
            return self.delay(attempt, retry_after, rng)
        return max(self.delay(attempt, None, rng), RETRY_AFTER_FLOOR_S * rng.uniform(1.0, 2.0))


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class RetryBudget:
    """All retries of one run draw from one budget, so a sick API fails the run instead of hammering it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, what: str) -> None:
        self.spent += 1
        if self.spent > self.limit:
            raise RetryBudgetExhausted(
                f"retry budget of {self.limit} retries for this run is used up (last: {what}); "
                "the API is failing too often - try later or raise api.retry_budget"
            )


class RateLimiter:
    """A requests-per-second ceiling (evenly spaced slots), shared by every task of the event loop."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

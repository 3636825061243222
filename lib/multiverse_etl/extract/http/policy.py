"""What to do with an answer, and how long to wait: the policy table, backoff with jitter, Retry-After, a budget.

The table is the whole retry logic of the client: an answer's status (0: no answer at all) maps to one action.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import random
import time
from dataclasses import dataclass
from typing import Optional

from ..errors import RetryBudgetExhausted
from .session import ClientSettings

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Action(enum.Enum):
    DONE = "done"  # a page (or a token): hand it back
    RETRY = "retry"  # transient: back off (this task only) and try again
    PAUSE = "pause"  # throttled: every task waits, the rate is learnt, then try again
    RELOGIN = "relogin"  # the token died: one task logs in, everyone retries with the new token
    FAIL = "fail"  # the API's final word: raise ApiError


POLICY: dict[int, Action] = {
    0: Action.RETRY,  # connection refused, reset, dropped or timed out
    200: Action.DONE,
    401: Action.RELOGIN,
    429: Action.PAUSE,
    **{status: Action.RETRY for status in RETRYABLE_STATUS - {429}},
}


def decide(status: int, retry_after: Optional[float]) -> Action:
    """The action for an answer: the table, plus "a 503 that says when to come back is a throttle"."""
    if status == 503 and retry_after is not None:
        return Action.PAUSE
    if 200 <= status < 300:
        return Action.DONE
    return POLICY.get(status, Action.FAIL)


MAX_RETRY_AFTER_S = 600.0  # a server asking for more than this is treated as asking for this


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS style), capped; Retry-After wins when given."""

    max_attempts: int = 8
    base_s: float = 0.2
    max_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> RetryPolicy:
        return cls(max_attempts=settings.max_attempts, base_s=settings.backoff_base_s, max_s=settings.backoff_max_s)

    def delay(self, attempt: int, retry_after: Optional[float] = None, rng: random.Random = random._inst) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            return retry_after + rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        ceiling = min(self.max_s, self.base_s * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)


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

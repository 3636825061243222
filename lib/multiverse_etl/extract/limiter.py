"""How many requests may be in flight, and how fast they may start: learnt from the API's answers.

`ConcurrencyLimiter` is an AIMD limiter with a latency signal, in the spirit of TCP Vegas and
Netflix's concurrency-limits (see docs/extract.md for why this one):

* it starts low (`INITIAL_LIMIT`) and doubles once per window while answers are good (slow start),
  then, after the first sign of overload, grows by one per window (additive increase); it grows
  only while the limit is really what holds requests back (a task waited for a slot);
* a window is `max(MIN_WINDOW, 2 x limit)` answers; its median round trip is compared with the
  baseline (the lowest window median of the last two epochs: the API's latency without our
  queue). Above `max(LATENCY_TOLERANCE x baseline, baseline + LATENCY_SLACK_S)` the limit
  shrinks by `LATENCY_BACKOFF`;
* a 429, 503 or 504, a timeout or a dropped connection shrinks it at once by `OVERLOAD_BACKOFF`,
  at most once per round (the requests already in flight were sent under the old limit and
  their answers say nothing new);
* `cap` (set from the token life, see client.py) and `ceiling` (`api.concurrency`) bound it.

`RatePacer` spaces request starts evenly; its rate is the hard `api.max_requests_per_second`
and/or a rate learnt from 429s (`RateMeter`: what the API accepted over the last seconds).
All of it runs in one event loop: no locks, O(1) per request on the fast path.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any, Callable, Optional

INITIAL_LIMIT = 8
MIN_WINDOW = 32
LATENCY_TOLERANCE = 1.4  # bench/extract.py: 1.25 gave 0.88 of a saturating server, 1.4 keeps p50 under 1.5x
LATENCY_SLACK_S = 0.003  # a few ms of queueing is not worth giving throughput away for
LATENCY_BACKOFF = 0.9
OVERLOAD_BACKOFF = 0.5
DROP_BACKOFF = 0.75
EPOCH_S = 30.0  # the baseline forgets what is older than two epochs (the API itself may get slower)

# What an answer says about the API's load.
OK, NEUTRAL, OVERLOAD, DROP = "ok", "neutral", "overload", "drop"
OVERLOAD_STATUS = frozenset({429, 503, 504})


class ConcurrencyLimiter:
    """An adaptive bound on requests in flight: `await acquire()` before sending, `release(...)` after."""

    def __init__(
        self,
        ceiling: int,
        *,
        adaptive: bool = True,
        initial: int = INITIAL_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.adaptive = adaptive
        self.clock = clock
        self.limit = float(min(self.ceiling, initial) if adaptive else self.ceiling)
        self.latency_floor = float(min(self.ceiling, initial))
        self.cap: Optional[int] = None  # a bound from outside (the token life)
        self.in_flight = 0
        self.min_seen = self.max_seen = self.current
        self.slow_start = True
        self.decreases = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._window: list[float] = []
        self._window_saturated = False
        self._released = 0
        self._decrease_at = 0  # no new decrease before this many releases (the requests in flight returned)
        self._epoch_start = clock()
        self._epoch_min = math.inf
        self._previous_min = math.inf

    @property
    def current(self) -> int:
        """The whole number of requests that may be in flight now."""
        limit = max(1, int(self.limit))
        return min(limit, self.cap) if self.cap else limit

    @property
    def baseline_s(self) -> Optional[float]:
        """The round trip without our own queue (None until a window has been measured)."""
        best = min(self._epoch_min, self._previous_min)
        return None if best == math.inf else best

    async def acquire(self) -> None:
        if self.in_flight < self.current and not self._waiters:
            self.in_flight += 1
            return
        self._window_saturated = True
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():  # given the slot, but we will not use it
                self.in_flight -= 1
                self._wake()
            else:
                try:
                    self._waiters.remove(future)
                except ValueError:
                    pass
            raise

    def release(self, outcome: str = NEUTRAL, rtt_s: Optional[float] = None) -> None:
        """A request ended: give its slot back and learn from how it went."""
        self.in_flight -= 1
        self._released += 1
        if self.adaptive:
            if outcome == OK and rtt_s is not None:
                self._window.append(rtt_s)
                if len(self._window) >= max(MIN_WINDOW, 2 * self.current):
                    self._end_window()
            elif outcome in (OVERLOAD, DROP):
                self._decrease(OVERLOAD_BACKOFF if outcome == OVERLOAD else DROP_BACKOFF)
        self._wake()

    def set_cap(self, cap: Optional[int]) -> None:
        """Bound the limit from outside (None: no bound); takes effect for the next acquire."""
        self.cap = max(1, cap) if cap else None
        self._note()
        self._wake()

    # ------------------------------------------------------------------ internals

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.current:
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    def _end_window(self) -> None:
        window = self._window
        window.sort()
        median = window[len(window) // 2]
        saturated = self._window_saturated
        self._window = []
        self._window_saturated = False
        now = self.clock()
        if now - self._epoch_start > EPOCH_S:
            self._previous_min, self._epoch_min, self._epoch_start = self._epoch_min, math.inf, now
        baseline = self.baseline_s
        self._epoch_min = min(self._epoch_min, median)
        if baseline is not None and median > max(LATENCY_TOLERANCE * baseline, baseline + LATENCY_SLACK_S):
            # Latency alone never takes the limit below where it started: a busy machine (ours or the API's)
            # must not starve the run; the API's own overload signals (429, 503, drops) can go lower.
            if self.limit > self.latency_floor:
                self._decrease(LATENCY_BACKOFF, floor=self.latency_floor)
        elif saturated and self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit * 2 if self.slow_start else self.limit + 1)
            self._note()

    def _decrease(self, factor: float, floor: float = 1.0) -> None:
        if self._released <= self._decrease_at:
            return
        self.slow_start = False
        self.decreases += 1
        self.limit = max(floor, self.limit * factor)
        self._decrease_at = self._released + self.in_flight
        self._window = []
        self._note()

    def _note(self) -> None:
        current = self.current
        self.min_seen = min(self.min_seen, current)
        self.max_seen = max(self.max_seen, current)


class RateMeter:
    """Answers the API accepted (not 429) per second, over the last `span_s` seconds, in 0.1 s buckets."""

    BUCKET_S = 0.1

    def __init__(self, span_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets = max(1, int(span_s / self.BUCKET_S))
        self._counts = [0] * self.buckets
        self._current = int(clock() / self.BUCKET_S)
        self._started = clock()

    def add(self) -> None:
        self._roll()
        self._counts[self._current % self.buckets] += 1

    def rate(self) -> float:
        """Accepted answers per second (the span is at least one second, so a first burst is not a rate)."""
        self._roll()
        span = min(self.buckets * self.BUCKET_S, max(1.0, self.clock() - self._started))
        return sum(self._counts) / span

    def _roll(self) -> None:
        bucket = int(self.clock() / self.BUCKET_S)
        if bucket != self._current:
            for b in range(self._current + 1, min(bucket, self._current + self.buckets) + 1):
                self._counts[b % self.buckets] = 0
            self._current = bucket


class RatePacer:
    """Evenly spaced request starts at `rate` per second (None: no pacing), shared by every task.

    `hard` is `api.max_requests_per_second`; `learn_from_429()` sets a learnt rate from what the API
    accepted (never above `hard`), and `grow()` raises it by `GROWTH_PER_S` of itself per second
    without a 429, so a rate limit that was lifted is found again.
    """

    GROWTH_PER_S = 0.05  # each probe above the limit costs 429s: at 0.1 they were 1.8-2.2% of requests
    MIN_RATE = 1.0

    def __init__(self, hard: Optional[float] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.hard = hard
        self.learnt: Optional[float] = None
        self.clock = clock
        self._next = 0.0
        self._grown_at = clock()

    @property
    def rate(self) -> Optional[float]:
        rates = [r for r in (self.hard, self.learnt) if r]
        return min(rates) if rates else None

    async def acquire(self) -> None:
        rate = self.rate
        if rate is None:
            return
        now = self.clock()
        if self.learnt is not None and now - self._grown_at >= 1.0:
            self.learnt *= 1 + self.GROWTH_PER_S * (now - self._grown_at)
            self._grown_at = now
            rate = self.rate or rate
        slot = max(now, self._next)
        self._next = slot + 1.0 / rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def learn_from_429(self, accepted_per_s: float) -> None:
        rate = max(self.MIN_RATE, accepted_per_s)
        self.learnt = rate if self.learnt is None else min(self.learnt, rate)
        if self.hard:
            self.learnt = min(self.learnt, self.hard)
        self._grown_at = self.clock()


class LatencyHistogram:
    """Round trips in 5% buckets: p50/p99 in O(1) memory for the manifest and the benchmark."""

    STEP = math.log(1.05)
    FLOOR_S = 1e-5

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, seconds: float) -> None:
        index = int(math.log(max(seconds, self.FLOOR_S) / self.FLOOR_S) / self.STEP)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1

    def quantile(self, q: float) -> Optional[float]:
        if not self.total:
            return None
        wanted = q * self.total
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= wanted:
                return self.FLOOR_S * math.exp((index + 0.5) * self.STEP)
        return None

    def to_manifest(self) -> dict[str, Any]:
        p50, p99 = self.quantile(0.5), self.quantile(0.99)
        return {
            "p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        }

"""How fast requests may start: a rate learnt from what the API accepted while it answered 429, probed upward.

Rate limits come in shapes (fixed windows, sliding windows, token buckets with bursts); under every one of
them the number of requests accepted per second while some are refused is the sustainable rate. So a 429
that is news (see throttle.py) sets the pace to what was accepted over the last second, a little under it;
while no 429 comes the pace grows: fast (doubling per second) until a second 429 confirms the first
estimate, then by `GROWTH_PER_S` of itself per second, so a limit that was raised is found again at the cost
of a refused request or two per probe. It grows only while requests wait for it (a pace nothing waited for is
not a probe), and not during a pause.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

# Each probe past the limit costs a 429 or two and a short pause for everyone: 1%/s probes every ~3 s.
GROWTH_PER_S = 0.01
# Until the first learnt rate is confirmed by a second 429, it doubles every second: a first estimate can be
# low (a bucket smaller than a second's worth), and a limit that is reached again costs one 429.
FIRST_GROWTH_PER_S = 1.0
# The pace after a 429 is this share of the accepted rate: the next probe starts a little below the limit.
BACKOFF = 0.97
MIN_RATE = 1.0
NEAR = 0.9  # accepted at least this share of the pace: the 429 was a probe, not a lower limit
# A rate is learnt only from this many accepted answers: a throttle before anything was accepted is a pause.
MIN_SAMPLE = 10


class RateMeter:
    """Answers the API accepted (not 429) per second over the last `span_s` (at most), in 0.05 s buckets."""

    BUCKET_S = 0.05

    def __init__(self, span_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets = max(1, int(round(span_s / self.BUCKET_S)))
        self._counts = [0] * self.buckets
        self._current = int(clock() / self.BUCKET_S)

    @property
    def span_s(self) -> float:
        return self.buckets * self.BUCKET_S

    def add(self, now: Optional[float] = None) -> None:
        """One more accepted answer (`now`: the clock's time, if the caller has just read it)."""
        self._roll(now)
        self._counts[self._current % self.buckets] += 1

    def count(self) -> int:
        """Accepted answers in the span."""
        self._roll()
        return sum(self._counts)

    def rate(self) -> float:
        """Accepted answers per second over the whole span, even at the start of a run: refused requests
        arrive only once the limit is reached, so what was accepted over the last span is the limit's
        worth (a bucket smaller than a second's worth is underestimated at first, and found by the probe)."""
        return self.count() / (self.buckets * self.BUCKET_S)

    def _roll(self, now: Optional[float] = None) -> None:
        bucket = int((self.clock() if now is None else now) / self.BUCKET_S)
        if bucket != self._current:
            for b in range(self._current + 1, min(bucket, self._current + self.buckets) + 1):
                self._counts[b % self.buckets] = 0
            self._current = bucket


class RatePacer:
    """Evenly spaced request starts at `rate` per second (None: no pacing), shared by every task.

    `hard` is `api.max_requests_per_second`, a ceiling; `learn()` sets the learnt rate (never above `hard`).
    """

    def __init__(self, hard: Optional[float] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.hard = hard
        self.learnt: Optional[float] = None
        self.lowest: Optional[float] = None
        self.confirmed = False  # a second 429 came: the rate is known, probe slowly
        self.highest: Optional[float] = None
        self.clock = clock
        self._next = 0.0
        self._grown_at = clock()
        self._binding = False  # a request waited for its slot since the last growth step

    @property
    def rate(self) -> Optional[float]:
        hard, learnt = self.hard, self.learnt
        if hard and learnt:
            return min(hard, learnt)
        return hard or learnt or None

    def delay(self) -> float:
        """Take the next start slot; seconds to wait for it (0: go now)."""
        rate = self.rate
        if rate is None:
            return 0.0
        now = self.clock()
        self._grow(now)
        rate = self.rate or rate
        slot = max(now, self._next)
        self._next = slot + 1.0 / rate
        if slot > now:
            self._binding = True  # the pace held a request back: probing above it means something
        return slot - now

    def restart(self, at: float) -> None:
        """The next slot is no earlier than `at` (a pause ends then; slots promised before it are void). A pause
        is not probing: the pace grows again from its end."""
        self._next = at
        self._grown_at = max(self._grown_at, at)
        self._binding = False

    async def acquire(self) -> None:
        wait = self.delay()
        if wait > 0:
            await asyncio.sleep(wait)

    def learn(self, accepted_per_s: float, accepted: int, paused: bool = False) -> bool:
        """A 429 that is news: pace a little under what the API accepted (False: too few answers to tell).
        `paused`: this client held itself back for part of the span the accepted rate was counted over."""
        if accepted < MIN_SAMPLE:
            return False
        basis = accepted_per_s
        if self.learnt is not None and (paused or accepted_per_s >= NEAR * self.learnt):
            # A probe just past the limit: back off from the pace itself. What was accepted over the last second
            # reads low after a pause (it counts the time we held back: 0.71 of a 200/s sliding window after the
            # first second's pauses), or high across two fixed windows; it is the basis only when the API
            # accepts far less than the pace with nothing held back (its limit went down).
            basis = self.learnt
        rate = max(MIN_RATE, BACKOFF * basis)
        self.confirmed = self.learnt is not None
        self.learnt = min(rate, self.hard) if self.hard else rate
        self.lowest = self.learnt if self.lowest is None else min(self.lowest, self.learnt)
        self.highest = self.learnt if self.highest is None else max(self.highest, self.learnt)
        self._grown_at = self.clock()
        self._next = min(self._next, self.clock() + 1.0 / self.learnt)
        return True

    def confirm(self) -> None:
        """A second 429 that says nothing new about the rate: the estimate stands, probed slowly from here."""
        if self.learnt is not None:
            self.confirmed = True

    def _grow(self, now: float) -> None:
        """Probe upward: GROWTH_PER_S of the rate per second without a 429 (checked every 0.05 s), faster until
        the first estimate is confirmed."""
        if self.learnt is None or now - self._grown_at < 0.05:
            return
        growth = GROWTH_PER_S if self.confirmed else FIRST_GROWTH_PER_S
        if self._binding:  # a pace nothing waited for is not probed: it would grow far past a limit never tried
            self.learnt *= 1 + growth * (now - self._grown_at)
        self._binding = False
        if self.hard:
            self.learnt = min(self.learnt, self.hard)
        self._grown_at = now

"""Who may send now: the concurrency limiter, the rate pacer and the shared pause, behind one surface.

A request takes a `Ticket` (`await throttle.acquire()`), is sent, and gives it back with what the answer
said (`release`). A 429 (or a 503 with Retry-After) goes to `throttled`, which is both a pause for every task
and a rate signal:

* only news counts: a 429 to a request sent before the last pause began says nothing new (it was already
  in flight), so it neither pauses again nor changes the rate;
* `Retry-After` that names a moment (more than a second, or a fraction: "the window reopens in 0.37 s") is
  honoured as the pause; `1`, `0` or none are too coarse to be a schedule, so the pause is a short floor with
  jitter, doubling while throttles come less than a second apart (up to `PAUSE_CEILING_S`, and never past
  the coarse Retry-After counted from the first 429 of the streak), and the pacer (rate.py) does the real work;
* the first throttle also ends slow start (the limiter halves once); after it the rate, not the number of
  requests in flight, is what the API limits, so later 429s do not shrink the limit again.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Callable, NamedTuple, Optional

from .latency import LatencyHistogram
from .limiter import NEUTRAL, OK, OVERLOAD, ConcurrencyLimiter
from .rate import NEAR, RateMeter, RatePacer
from .session import ClientSettings

PAUSE_FLOOR_S = 0.05  # a coarse Retry-After still pauses everyone this long, jittered, doubling per repeat
PAUSE_CEILING_S = 0.4  # ...up to this: a sliding window reopens gradually, the pacer spreads what follows
STREAK_RESET_S = 1.0  # a throttle this long after the last one starts the doubling again
MAX_RETRY_AFTER_S = 600.0
TRAJECTORY_POINTS = 128  # the limit's trajectory kept for the manifest (halved in resolution when full)


class Ticket(NamedTuple):
    sent: float  # when the request went (monotonic)
    epoch: int  # the number of pauses before it went


class Throttle:
    """One per client. Statistics are read from it (`limit`, `pauses`, `to_manifest()`)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        rng: Optional[random.Random] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.limiter = ConcurrencyLimiter(settings.concurrency, adaptive=settings.adaptive, clock=clock)
        self.pacer = RatePacer(settings.max_requests_per_second, clock=clock)
        self.accepted = RateMeter(clock=clock)
        self.latency = LatencyHistogram()
        self.adaptive = settings.adaptive
        self.until = 0.0  # no request starts before this moment (a shared pause); 0: open
        self.pauses = 0
        self._holds = 0  # pauses begun or moved (a pace slot taken before one is void)
        self.throttles = 0  # 429s that were news
        self._epoch = 0
        self._streak = 0  # throttles less than STREAK_RESET_S apart
        self._last_throttle = -1e9
        self._streak_started = 0.0
        self._rng = rng or random.Random()
        self._started = clock()
        self.trajectory: list[tuple[float, int]] = [(0.0, self.limiter.current)]
        self._every = 1  # keep one change in `_every` once the trajectory has been thinned
        self._changes = 0
        self.limiter.on_change = self._record

    @property
    def limit(self) -> int:
        """The number of requests that may be in flight now."""
        return self.limiter.current

    @property
    def slow_start(self) -> bool:
        return self.limiter.slow_start

    @property
    def rate(self) -> Optional[float]:
        """Requests per second starts are paced to (None: not paced)."""
        return self.pacer.rate

    async def acquire(self, first: bool = False) -> Ticket:
        """A slot (`first`: ahead of the queue), after any pause, at the pace: then send at once."""
        await self.limiter.acquire(first)
        if self.until or self.pacer.rate is not None:  # else: no pause, no pace, nothing to wait for
            try:
                await self.wait_turn()
            except BaseException:
                self.limiter.release(NEUTRAL)
                raise
        return Ticket(self.clock(), self._epoch)

    async def wait_turn(self) -> None:
        """Wait out a shared pause and the pace (the login uses this alone: it takes no slot)."""
        while True:
            while self.until:  # a later 429 may move the pause while we sleep
                wait = self.until - self.clock()
                if wait <= 0:
                    self.until = 0.0
                    break
                await asyncio.sleep(wait)
            wait = self.pacer.delay()
            if wait <= 0:
                return
            holds = self._holds
            await asyncio.sleep(wait)
            if holds == self._holds:  # no pause began while we waited for our slot in the pace: it stands
                return
            # A pause began: the pacer starts again when it ends, so a slot taken before it is void (going at it
            # anyway would double the rate after each pause, and a sliding window refuses that burst a second on).

    def give_back(self, ticket: Ticket) -> None:
        """The slot of `ticket`, unused: nothing was sent."""
        self.limiter.give_back()

    def release(self, ticket: Ticket, signal: str, accepted: bool) -> None:
        """The request ended with `signal` (limiter.OK/NEUTRAL/OVERLOAD/DROP); `accepted`: not refused for rate."""
        now = self.clock()
        rtt = now - ticket.sent if signal == OK else None
        if accepted:
            self.accepted.add(now)
        if signal == OVERLOAD and (ticket.epoch < self._epoch or self.pacer.learnt is not None):
            signal = NEUTRAL  # old news, or the pacer already answers for the rate
        self.limiter.release(signal, rtt)
        if rtt is not None:
            self.latency.add(rtt)

    def throttled(self, ticket: Ticket, retry_after: Optional[float]) -> None:
        """A 429 (or a 503 with Retry-After) to the request of `ticket`: pause everyone and learn the rate."""
        if ticket.epoch < self._epoch:
            return  # sent before the last pause: not news
        self._epoch += 1
        self.throttles += 1
        now = self.clock()
        paused = now - self._last_throttle < self.accepted.span_s  # a pause fell in the span of `accepted`
        if now - self._last_throttle < STREAK_RESET_S:
            self._streak += 1
        else:
            self._streak, self._streak_started = 1, now
        self._last_throttle = now
        if self.adaptive:
            accepted, learnt = self.accepted.rate(), self.pacer.learnt
            early = self._streak > 1 and now - self._streak_started < self.accepted.span_s
            if early and learnt is not None and accepted >= NEAR * learnt:
                # A 429 within a second of the streak's first while the API still accepts the pace: what it counts
                # holds what was sent before the pace was set (a sliding window the first burst filled refuses
                # until that slides out), so the pace stands (confirmed: probed slowly from here); a 3% backoff
                # per such 429 (four in the first second) left it ~6% low for the next 8 s. A pace above what is
                # accepted backs off.
                self.pacer.confirm()
            else:
                self.pacer.learn(accepted, self.accepted.count(), paused)
        self._hold(self._pause_s(retry_after))

    def set_cap(self, cap: Optional[int]) -> None:
        """Bound the limit from outside (the token life)."""
        if self.adaptive:
            self.limiter.set_cap(cap)

    def to_manifest(self) -> dict[str, Any]:
        limiter, pacer = self.limiter, self.pacer
        return {
            "concurrency_mode": "adaptive" if limiter.adaptive else "fixed",
            "limit_final": limiter.current,
            "limit_min": limiter.min_seen,
            "limit_max": limiter.max_seen,
            "limit_ceiling": limiter.ceiling,
            "limit_decreases": limiter.decreases,
            "limit_trajectory": [[round(t, 3), limit] for t, limit in self.trajectory],
            "token_cap": limiter.cap,
            "learnt_requests_per_s": None if pacer.learnt is None else round(pacer.learnt, 1),
            "learnt_range": None if pacer.lowest is None else [round(pacer.lowest, 1), round(pacer.highest or 0, 1)],
            "pauses": self.pauses,
            "throttles": self.throttles,
            "latency": self.latency.to_manifest(),
        }

    # ------------------------------------------------------------------ internals

    def _pause_s(self, retry_after: Optional[float]) -> float:
        """An exact Retry-After is the pause; a coarse one (0, 1, none) a jittered floor that doubles per repeat."""
        if retry_after is not None:
            retry_after = min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
            if retry_after > 1.0 or (retry_after > 0 and retry_after != int(retry_after)):
                return retry_after * self._rng.uniform(1.0, 1.05)
        pause = min(PAUSE_CEILING_S, PAUSE_FLOOR_S * 2 ** (self._streak - 1)) * self._rng.uniform(1.0, 1.5)
        if retry_after:  # "1": the limit reopens at most a second after the first 429 of this streak
            pause = min(pause, max(PAUSE_FLOOR_S, self._streak_started + retry_after - self.clock()))
        return pause

    def _hold(self, delay: float) -> None:
        """Close the gate for `delay` seconds from now (never shortening a longer pause)."""
        now = self.clock()
        if now + delay > self.until:
            if self.until <= now:
                self.pauses += 1
            self._holds += 1
            self.until = now + delay
            self.pacer.restart(self.until)  # slots handed out before the pause are void

    def _record(self, limit: int) -> None:
        """The limit's trajectory: every change, thinned to every other one when the list is full."""
        self._changes += 1
        if self._changes % self._every:
            return
        self.trajectory.append((self.clock() - self._started, limit))
        if len(self.trajectory) >= TRAJECTORY_POINTS:
            self.trajectory = self.trajectory[:1] + self.trajectory[2::2]
            self._every *= 2

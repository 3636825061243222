"""How many requests may be in flight: slow start, then AIMD with a latency signal (TCP Reno/Vegas style).

* Slow start: the limit starts at `INITIAL_LIMIT` and grows by one per good answer while a task waits for a
  slot, so it doubles every round trip (TCP's slow start; a round trip counted as at least `SLOW_START_ROUND_S`)
  until the first congestion signal: a 429, 503 or 504, a timeout, a dropped connection, or two windows in a
  row whose median round trip is past the latency tolerance (one can be jitter). A latency exit goes back to
  the limit the best window was measured under, or to what fits the best round trip if that is less.
* Then additive increase while saturated, per window of `max(MIN_WINDOW, 2 x limit)` answers: the square root
  of the limit while the window's median is within `FAST_GROWTH_TOLERANCE` of the baseline (no queue: a limit
  far below the ceiling climbs back in a few windows), else one. A window's median round trip above
  `max(LATENCY_TOLERANCE x baseline, baseline + LATENCY_SLACK_S)` shrinks the limit by `LATENCY_BACKOFF`
  (never below where it started); the baseline is the lowest window median of the last two epochs (the API's
  latency without our queue).
* Overload (429/503/504) halves it, a drop takes a quarter off, at most once per round (the requests in
  flight were sent under the old limit and their answers say nothing new).
* `cap` (half the measured token life, see auth.py) and `ceiling` (`api.concurrency`) bound it.

Everything runs in one event loop: no locks, O(1) per request on the fast path.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Callable, Optional

INITIAL_LIMIT = 8
MIN_WINDOW = 32
# Answers per latency check in slow start, and windows past the latency tolerance in a row that end it. A window's
# median is compared with the best median seen so far, a minimum over noisy medians: against 20 ms ± 50% latency a
# median of 8 round trips passed 1.4x that minimum about one window in five, and a run that left slow start on
# such a window went back to a limit of 8-16 and crawled up by one per window (14-20x the naive client instead of
# 60x, a third of the runs). Medians of 32 (the additive windows' minimum) and a second window to confirm: a
# simulated 20 ms ± 50% API kept the limit at 62 of 64 on average (54 before), while a server that queues past 8
# requests still brings it back to ~11 (bench/extract.py's latency and saturating cases, docs/extract.md).
SLOW_START_WINDOW = 32
SLOW_START_CONFIRM = 2
# Slow start doubles the limit per round trip, a round trip counted as at least this long: an API that answers in
# 1 ms serves 8,000 requests/s at the initial limit already, and a limit grown to 64 in 3 ms is what its rate
# limit then refuses at once (the first 429 burst: 2.3% of a 3,000-apprenticeship run against a 200/s window).
# Against APIs further away than this (any over the internet) slow start is what it was.
SLOW_START_ROUND_S = 0.01
LATENCY_TOLERANCE = 1.4  # bench/extract.py: 1.25 gave 0.88 of a saturating server, 1.4 keeps p50 under 1.5x
# A window whose median is within this of the baseline shows no queue: the limit grows by its square root, not 1.
FAST_GROWTH_TOLERANCE = 1.2
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
        self._current = self._whole()  # `current`, kept by _note at every change (read on every request)
        self.min_seen = self.max_seen = self._current
        self.slow_start = adaptive
        self.on_change: Optional[Callable[[int], None]] = None  # told every new whole limit (the trajectory)
        self.decreases = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._first_waiters: deque[asyncio.Future] = deque()  # served before _waiters, in their own order
        self._window: list[float] = []
        self._window_saturated = False
        self._released = 0
        self._decrease_at = 0  # no new decrease before this many releases (the requests in flight returned)
        self._window_limit = self._best_limit = self.limit  # slow start: the limit a window began under
        self._slow_windows_over = 0  # slow start: windows past the latency tolerance in a row
        self._shortest = math.inf  # slow start: the shortest round trip seen
        self._epoch_start = clock()
        self._epoch_min = math.inf
        self._previous_min = math.inf

    @property
    def waiting(self) -> int:
        """Tasks queued for a slot."""
        return len(self._first_waiters) + len(self._waiters)

    @property
    def current(self) -> int:
        """The whole number of requests that may be in flight now."""
        return self._current

    @property
    def baseline_s(self) -> Optional[float]:
        """The round trip without our own queue (None until a window has been measured)."""
        best = min(self._epoch_min, self._previous_min)
        return None if best == math.inf else best

    async def acquire(self, first: bool = False) -> None:
        """A slot; `first`: ahead of the ordinary waiters, behind earlier `first` ones (a request refused
        for a dead token, so that the queue's order cannot hand one request the dead end of every token)."""
        if self.in_flight < self._current and not self._waiters and not self._first_waiters:
            self.in_flight += 1
            return
        self._window_saturated = True
        future = asyncio.get_running_loop().create_future()
        queue = self._first_waiters if first else self._waiters
        queue.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():  # given the slot, but we will not use it
                self.in_flight -= 1
                self._wake()
            else:
                try:
                    queue.remove(future)
                except ValueError:
                    pass
            raise

    def release(self, outcome: str = NEUTRAL, rtt_s: Optional[float] = None) -> None:
        """A request ended: give its slot back and learn from how it went."""
        self.in_flight -= 1
        self._released += 1
        waiting = bool(self._waiters or self._first_waiters)
        if waiting:  # tasks queue for a slot: the limit is what holds them back
            self._window_saturated = True
        if self.adaptive:
            if outcome == OK and rtt_s is not None:
                self._window.append(rtt_s)
                if self.slow_start:
                    self._shortest = min(self._shortest, rtt_s)
                    self._slow_start_step()
                elif len(self._window) >= max(MIN_WINDOW, 2 * self._current):
                    self._end_window()
            elif outcome in (OVERLOAD, DROP):
                self._decrease(OVERLOAD_BACKOFF if outcome == OVERLOAD else DROP_BACKOFF)
        if waiting:
            self._wake()

    def give_back(self) -> None:
        """A slot taken but not used (nothing was sent): nothing to learn."""
        self.in_flight -= 1
        self._wake()

    def set_cap(self, cap: Optional[int]) -> None:
        """Bound the limit from outside (None: no bound); takes effect for the next acquire."""
        self.cap = max(1, cap) if cap else None
        self._note()
        self._wake()

    # ------------------------------------------------------------------ internals

    def _wake(self) -> None:
        while (self._first_waiters or self._waiters) and self.in_flight < self._current:
            future = (self._first_waiters or self._waiters).popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    def _slow_start_step(self) -> None:
        """One more slot per good answer while slots are short (doubling per round trip); two windows in a row
        of round trips past the tolerance of the best seen so far end slow start."""
        if self._window_saturated and self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + min(1.0, self._shortest / SLOW_START_ROUND_S))
            self._note()
        if len(self._window) >= max(SLOW_START_WINDOW, self.current // 2):
            window = sorted(self._window)
            median = window[len(window) // 2]
            baseline = self.baseline_s
            began = self._window_limit  # about what was in flight while this window's requests were out
            if median < self._epoch_min:  # the best round trip yet: remember the limit it was measured under
                self._best_limit = began
            self._epoch_min = min(self._epoch_min, median)
            self._window_limit = self.limit
            self._window = []
            self._window_saturated = False
            over = baseline is not None and median > max(LATENCY_TOLERANCE * baseline, baseline + LATENCY_SLACK_S)
            self._slow_windows_over = self._slow_windows_over + 1 if over else 0
            if baseline is not None and self._slow_windows_over >= SLOW_START_CONFIRM:
                # The API queues us: back to the limit the best round trip was measured under, or less if even
                # that is more than fits the best round trip at the rate this window was served (TCP Vegas:
                # `began` requests took `median` each, so `began x baseline / median` take `baseline`). The
                # additive phase climbs back fast from a limit far below the tolerance (see _end_window).
                self.slow_start = False
                self.decreases += 1
                fits = began * baseline / median
                self.limit = max(self.latency_floor, min(self.limit, self._best_limit, fits))
                self._note()

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
            # No queue to speak of: grow by the square root of the limit (Netflix's gradient limiter's queue
            # allowance), so a limit left far below the ceiling by slow start's exit climbs back in a few windows;
            # near the tolerance, by one.
            clear = baseline is not None and median <= FAST_GROWTH_TOLERANCE * baseline
            self.limit = min(float(self.ceiling), self.limit + (max(1.0, math.sqrt(self.limit)) if clear else 1.0))
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

    def _whole(self) -> int:
        limit = max(1, int(self.limit))
        return min(limit, self.cap) if self.cap else limit

    def _note(self) -> None:
        """After every change of `limit` or `cap`: the whole limit, its range, the trajectory."""
        current = self._whole()
        self.min_seen = min(self.min_seen, current)
        self.max_seen = max(self.max_seen, current)
        if current != self._current:
            self._current = current
            if self.on_change is not None:
                self.on_change(current)

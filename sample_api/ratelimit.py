"""Rate limits of the common shapes, and the ways real APIs say when to come back.

* ``bucket`` – a token bucket: ``rate`` tokens per second, at most ``burst`` saved up (default: ``rate``);
* ``fixed`` – at most ``rate`` requests per one-second window, the window resetting on the second;
* ``sliding`` – at most ``rate`` requests in any one second (the last second, looking back).

Refused requests never count against the limit. ``Retry-After`` is sent as ``ceil`` (whole seconds,
rounded up, at least 1: the default), ``exact`` (seconds until a request would pass, to the
millisecond), ``1``, ``0``, or ``none`` (no header).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable, Optional

SHAPES = ("bucket", "fixed", "sliding")
RETRY_AFTER_MODES = ("ceil", "exact", "1", "0", "none")


class RateLimiter:
    """``wait()``: None if a request may pass now (it is counted), else the seconds until one would."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        shape: str = "bucket",
        burst: Optional[int] = None,
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"rate limit shape must be one of {SHAPES}, got {shape!r}")
        self.rate = rate
        self.shape = shape
        self.clock = clock
        self.capacity = float(burst) if burst else max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = clock()
        self.per_window = max(1, int(rate))
        self.window = -1
        self.in_window = 0
        self.accepted: deque[float] = deque()

    def wait(self) -> Optional[float]:
        now = self.clock()
        if self.shape == "bucket":
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return None
            return (1.0 - self.tokens) / self.rate
        if self.shape == "fixed":
            window = math.floor(now)
            if window != self.window:
                self.window, self.in_window = window, 0
            if self.in_window < self.per_window:
                self.in_window += 1
                return None
            return window + 1.0 - now
        accepted = self.accepted
        while accepted and accepted[0] <= now - 1.0:
            accepted.popleft()
        if len(accepted) < self.per_window:
            accepted.append(now)
            return None
        return accepted[0] + 1.0 - now

    def acquire(self) -> Optional[int]:
        """``wait()`` in whole seconds rounded up (at least 1), as the replica always answered."""
        wait = self.wait()
        return None if wait is None else max(1, math.ceil(wait))


def retry_after_header(wait: float, mode: str) -> Optional[str]:
    """The ``Retry-After`` value for a refusal ``wait`` seconds before a request would pass (None: no header)."""
    if mode == "ceil":
        return str(max(1, math.ceil(wait)))
    if mode == "exact":
        return f"{max(wait, 0.001):.3f}"
    if mode in ("1", "0"):
        return mode
    return None

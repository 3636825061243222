"""A shared pause: a 429's (or 503's) Retry-After holds every task, not only the one that got it."""

from __future__ import annotations

import asyncio
import time

from .stats import RequestStats


class PauseGate:
    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats
        self.until = 0.0  # monotonic time before which no request is sent; 0 when open

    def hold(self, delay: float) -> None:
        """Close the gate for `delay` seconds from now (never shortening a longer pause)."""
        now = time.monotonic()
        if now + delay > self.until:
            if self.until <= now:
                self.stats.pauses += 1
            self.until = now + delay

    async def wait(self) -> None:
        while self.until:  # a later 429 may have moved the gate while we slept
            wait = self.until - time.monotonic()
            if wait <= 0:
                self.until = 0.0
                break
            await asyncio.sleep(wait)

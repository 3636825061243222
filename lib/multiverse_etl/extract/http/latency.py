"""Round trips in O(1) memory: p50/p99 for the manifest and the benchmark."""

from __future__ import annotations

import math
from typing import Any, Optional


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

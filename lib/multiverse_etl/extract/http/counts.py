"""What the client sent and what came back, in total and per entity: written by the client alone, read by all."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


class Counter:
    """Requests and retries of one entity (or of the login)."""

    __slots__ = ("requests", "retries")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0


class Counts:
    def __init__(self) -> None:
        self.by_entity: defaultdict[str, Counter] = defaultdict(Counter)
        self.requests = 0
        self.retries = 0
        self.ok = 0
        self.status_401 = 0
        self.status_429 = 0
        self.status_5xx = 0
        self.drops = 0  # connections refused, reset or closed unanswered
        self.timeouts = 0

    def entity(self, name: str) -> Counter:
        return self.by_entity[name]

    def sent(self, entity: str) -> None:
        self.by_entity[entity].requests += 1
        self.requests += 1

    def retried(self, entity: str) -> None:
        self.by_entity[entity].retries += 1
        self.retries += 1

    def answered(self, status: int) -> None:
        if status < 300:
            self.ok += 1
        elif status == 401:
            self.status_401 += 1
        elif status == 429:
            self.status_429 += 1
        elif status >= 500:
            self.status_5xx += 1

    def unanswered(self, timeout: bool) -> None:
        if timeout:
            self.timeouts += 1
        else:
            self.drops += 1

    def to_manifest(self) -> dict[str, Any]:
        return {
            "status_2xx": self.ok,
            "status_401": self.status_401,
            "status_429": self.status_429,
            "status_5xx": self.status_5xx,
            "drops": self.drops,
            "timeouts": self.timeouts,
            "requests_by_name": {name: c.requests for name, c in sorted(self.by_entity.items())},
        }

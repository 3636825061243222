"""The sample API in a thread with every fault mode, restartable on demand (a new process key: old tokens die)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from typing import Callable

from sample_api.server import run_in_thread
from sample_api.settings import ServerSettings

# ---------------------------------------------------------------- the sample API, restarted on a signal

_DROP_SEEN: contextvars.ContextVar = contextvars.ContextVar("drop_seen", default=None)


def _watch_drops() -> None:
    """Wrap sample_api.faults.drop_connection once, so a request's task can tell a drop from a 500."""
    import sample_api.faults as faults_module

    real = faults_module.drop_connection
    if getattr(real, "_watched", False):
        return

    def watching_drop(receive):
        dropped = real(receive)
        seen = _DROP_SEEN.get()
        if seen is not None:
            seen["drop"] = dropped
        return dropped

    watching_drop._watched = True  # type: ignore[attr-defined]
    faults_module.drop_connection = watching_drop


class RestartableApi:
    """An in-process sample API that counts the faults it injects and can be restarted on the same port.

    A restart makes a new pagination key (every token handed out before answers 500) and, with
    --token-ttl, a new access-token store (every access token is refused).
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.restarts = 0
        self.issued: list[str] = []  # every access token handed out (for the secret scan)
        self.faults: Counter = Counter()  # "429", "drop", "500", "401" (expired token), "restart"
        self.requests = 0  # data requests that reached authentication (faulted ones do not)
        self.server = run_in_thread(settings)
        self.url = self.server.url
        self._instrument()

    def _instrument(self) -> None:
        _watch_drops()
        app, counts = self.server.app, self.faults
        access = app.service.access
        issue, consume = access.issue, access.consume

        def recording_issue() -> str:
            token = issue()
            self.issued.append(token)
            return token

        def counting_consume(token: str) -> bool:
            ok = consume(token)
            self.requests += 1
            if not ok:
                counts["401"] += 1
            return ok

        access.issue, access.consume = recording_issue, counting_consume
        injector = app.faults
        intercept, too_many = injector.intercept, injector._too_many

        async def counting_too_many(send, retry_after):
            counts["429"] += 1
            await too_many(send, retry_after)

        async def counting_intercept(scope, receive, send) -> bool:
            before = counts["429"]
            seen = {"drop": False}
            _DROP_SEEN.set(seen)  # each request is its own task: its own context
            answered = await intercept(scope, receive, send)
            if answered and counts["429"] == before:
                counts["drop" if seen["drop"] else "500"] += 1
            return answered

        injector._too_many = counting_too_many
        injector.intercept = counting_intercept

    def restart(self, pause_s: float = 0.2) -> None:
        dataset, port = self.server.dataset, self.server.port
        self.server.stop()
        time.sleep(pause_s)  # connections are refused meanwhile
        self.server = run_in_thread(self.settings, port=port, dataset=dataset)
        self._instrument()
        self.restarts += 1
        self.faults["restart"] += 1

    def restart_when(self, condition: Callable[[], bool], timeout_s: float = 120.0) -> threading.Thread:
        """Restart once `condition()` holds (polled); the thread ends after it (or at the timeout)."""

        def watch() -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if condition():
                    self.restart()
                    return
                time.sleep(0.002)

        thread = threading.Thread(target=watch, name="api-restarter", daemon=True)
        thread.start()
        return thread

    def describe_faults(self) -> str:
        order = ("500", "drop", "429", "401", "restart")
        return " ".join(f"{name}x{self.faults[name]}" for name in order if self.faults[name])

    def stop(self) -> None:
        self.server.stop()

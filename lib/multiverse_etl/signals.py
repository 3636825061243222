"""SIGTERM and SIGINT as a clean stop, not a death: a cancelled EMR step, a Glue timeout or Ctrl-C.

The first signal raises `Stopped` in the main thread. It unwinds the job like a crash would (in-flight landing
parts stay for --resume; a Delta commit is all-or-nothing), but every `finally` runs: the lake lock is released.
cli.run_job ends with exit code 128 + the signal (143, 130) and one line saying what state the lake is in
(`lake_state`, kept up to date by the job). A second signal while stopping is ignored, so cleanup finishes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any, Iterator

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
NOTHING_COMMITTED = (
    "nothing was committed; an interrupted extract run (named above, if one started) resumes with --resume"
)
_state = {"lake": NOTHING_COMMITTED}


class Stopped(BaseException):
    """A stop signal arrived; a BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def note_lake_state(text: str) -> None:
    """What a stop now would leave in the lake (said in the job's last line)."""
    _state["lake"] = text


def lake_state() -> str:
    return _state["lake"]


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM/SIGINT raise `Stopped` once (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        if stopping.is_set():
            log.warning("%s again: already stopping (releasing the lake lock)", signal.Signals(signum).name)
            return
        stopping.set()
        raise Stopped(signum)

    note_lake_state(NOTHING_COMMITTED)
    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

"""SIGTERM and SIGINT as a clean stop, not a death: a cancelled EMR step, a Glue timeout or Ctrl-C.

The first signal raises `Stopped` in the main thread. It unwinds the job like a crash would (in-flight landing
parts stay for --resume; a Delta commit is all-or-nothing), but every `finally` runs: the lake lock is released.
cli.run_job ends with exit code 128 + the signal (143, 130) and one line saying what state the lake is in
(`lake_state`, kept up to date by the job). A second signal while stopping is ignored, so cleanup finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
DRIVER_PID_ENV = "MV_DRIVER_PID_FILE"  # set by spark-submit.sh: where the Python driver writes its pid
NOTHING_COMMITTED = (
    "nothing was committed; an interrupted extract run (named above, if one started) resumes with --resume"
)
_state = {"lake": NOTHING_COMMITTED}
PR_SET_PDEATHSIG = 1


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
    """Within the block, the first SIGTERM/SIGINT stops the job with `Stopped` (main thread only; else a no-op).

    Outside an event loop the handler raises `Stopped` at once. Inside one (the extractor's), an exception from a
    signal handler may be swallowed by the loop (uvloop logs it), so the handler cancels the loop's tasks instead
    and whatever the cancellation unwinds with leaves this block as `Stopped`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    requested: list[Stopped] = []

    def handler(signum: int, _frame: Any) -> None:
        if requested:
            log.warning("%s again: already stopping (releasing the lake lock)", signal.Signals(signum).name)
            return
        requested.append(Stopped(signum))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise requested[0] from None
        for task in asyncio.all_tasks(loop):
            task.cancel()

    note_lake_state(NOTHING_COMMITTED)
    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    except BaseException as exc:
        if requested and exc is not requested[0]:
            raise requested[0] from exc
        raise
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    if requested:  # the work finished despite the stop: still report it as stopped
        raise requested[0]


def announce_driver() -> None:
    """Under spark-submit.sh: tell it our pid (so its SIGTERM reaches us, not only the JVM between us), and ask
    Linux for a SIGTERM should our parent (the JVM, or spark-submit.sh itself) die first: never run on orphaned."""
    pid_file = os.environ.get(DRIVER_PID_ENV)
    if not pid_file:
        return
    with contextlib.suppress(OSError):
        Path(pid_file + ".tmp").write_text(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

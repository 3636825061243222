"""The event loop the extractor runs on, and the all-or-nothing task group its lists run in."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (less CPU per request), else on asyncio's own loop."""
    if sys.version_info < (3, 11):  # asyncio.Runner, which takes uvloop's loop factory, is 3.11+
        return asyncio.run(coro)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def all_or_nothing(coros: list[Coroutine[Any, Any, Any]]) -> None:
    """Run the coroutines as tasks; the first failure cancels the others and is raised as is.

    (asyncio.TaskGroup does this on 3.11+, but wraps the error in an ExceptionGroup; this runs on 3.10 too.)
    """
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        errors = [error for t in done if not t.cancelled() and (error := t.exception()) is not None]
        if errors:
            raise errors[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

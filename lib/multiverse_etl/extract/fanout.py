"""The projects fan-out: apprenticeship ids from a listing → a bounded queue → workers, one parent each.

A worker lists one apprenticeship's projects, buffers that parent's pages and hands them to the
projects writer as one group, so a part never holds half a parent (resume keeps whole parents).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Optional

from ..entities import PROJECTS
from .http import ApiClient
from .lines import landed_page
from .paginate import PageSize, paginate
from .parents import ParentSet, parent_id
from .progress import FanoutState
from .writer import PartWriter

log = logging.getLogger("multiverse_etl.extract")

# Parent ids waiting for a worker: two listing pages' worth, so the listing runs a page ahead of the
# fan-out and the workers never wait for it (ints: ~100 bytes each, bounded by the page size).
QUEUE_PAGES_AHEAD = 2


class ProjectsFanout:
    """Feeds parent ids (each once, skipping those an earlier attempt completed) to `workers` listers."""

    def __init__(
        self,
        writer: PartWriter,
        page_size: PageSize,
        run_id: str,
        workers: int,
        max_restarts: int,
        done_before: ParentSet,
        state: FanoutState,
    ) -> None:
        self.writer = writer
        self.page_size = page_size
        self.run_id = run_id
        self.workers = workers
        self.max_restarts = max_restarts
        self.done_before = done_before
        self.state = state
        self.seen = ParentSet()
        self.skipped = 0  # apprenticeships without a usable id: their projects cannot be listed
        self.queue: asyncio.Queue[Optional[int]] = asyncio.Queue(
            maxsize=max(4 * workers, QUEUE_PAGES_AHEAD * page_size.requested)
        )

    async def feed(self, records: list[Any]) -> None:
        state = self.state
        if state.started is None:
            state.started = time.monotonic()
        for record in records:
            pid = parent_id(record)
            if pid is None:
                self.skipped += 1
                continue
            if pid in self.done_before or not self.seen.add(pid):
                continue  # a restarted listing re-feeds ids: the parent set drops repeats
            state.known += 1
            await self.queue.put(pid)

    async def end_feed(self) -> None:
        self.state.listing_finished = True
        if self.skipped:
            log.warning(
                "%d apprenticeship(s) have no usable id (null, missing or not an integer): "
                "their projects cannot be listed",
                self.skipped,
            )
        for _ in range(self.workers):
            await self.queue.put(None)

    async def worker(self, client: ApiClient) -> None:
        """List one apprenticeship's projects at a time; land its pages together once the listing is complete."""
        while True:
            pid = await self.queue.get()
            if pid is None:
                return
            parent = {"apprenticeship_id": pid}
            lines: list[bytes] = []
            prints: list[list[int]] = []
            records = 0
            async for page in paginate(
                client,
                entity=PROJECTS.name,
                path=PROJECTS.api_path.format(parent=pid),
                page_size=self.page_size,
                max_restarts=self.max_restarts,
            ):
                if page.page_index == 0 and lines:  # restarted
                    lines, prints, records = [], [], 0
                line, fingerprints = landed_page(page, self.run_id, parent)
                lines.append(line)
                prints.append(fingerprints)
                records += len(page.doc["data"])
            await self.writer.add(lines, records, prints, pid)
            self.state.done += 1

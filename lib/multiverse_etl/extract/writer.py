"""Landing parts: gzip JSON Lines streamed into numbered parts, rolled at a size, written whole.

Memory stays bounded by the part size, whatever the dataset: a part is compressed as lines
arrive and written (one `Storage.put`: atomic rename locally, multipart upload with the
configured encryption on S3) when it reaches `part_max_bytes`; at most one part is being
written while the next fills. `add` takes a whole group of lines at once (all pages of one
parent), so a part never holds half a parent: a part that exists is complete, which is what
resume relies on.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any, Optional, Sequence

from ..landing import LandingDigest, Part, part_key
from ..storage import Storage

log = logging.getLogger(__name__)

GZIP_LEVEL = 3  # landing JSON: ~7% of its size at ~3 us a page (level 6: ~5%, twice the CPU)
_DEFLATE_RATIO_GUESS = 4  # bytes still inside zlib count as 1/4 of their size towards the roll


class PartWriter:
    """Writes one entity of one run as raw/<entity>/ingest_date=…/run_id=…/part-NNNNN.jsonl.gz."""

    def __init__(
        self,
        storage: Storage,
        entity: str,
        run_id: str,
        max_bytes: int,
        *,
        prior_parts: Sequence[Part] = (),
        level: int = GZIP_LEVEL,
    ) -> None:
        """`prior_parts`: parts an interrupted attempt of this run already wrote (resume); numbering continues after them."""
        self.storage = storage
        self.entity = entity
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.level = level
        self.prior_parts = list(prior_parts)
        self.first_number = 1 + max((part_number(p.key) for p in self.prior_parts), default=-1)
        self.parts: list[Part] = list(self.prior_parts)  # written parts, in order: the manifest lists them as they are
        self._lock = asyncio.Lock()
        self._next_number = self.first_number
        self._sealing_pages = 0
        self._sealing_records = 0
        self._generation = 0  # bumped by discard: a sealed part of an earlier generation is never written
        # The entity's landing digest; unknown once a part of an earlier attempt (resume) or a line without
        # fingerprints is part of it.
        self.digest: Optional[LandingDigest] = None if self.prior_parts else LandingDigest()
        self._reset_open()

    def _reset_open(self) -> None:
        self._zip = zlib.compressobj(self.level, zlib.DEFLATED, 31)  # wbits 31: gzip container
        self._chunks: list[bytes] = []
        self._out = 0
        self._raw_pending = 0
        self._open_pages = 0
        self._open_records = 0

    @property
    def pages(self) -> int:
        """Pages accepted so far (written or in the open part)."""
        return sum(p.pages for p in self.parts) + self._open_pages + self._sealing_pages

    @property
    def records(self) -> int:
        return sum(p.records for p in self.parts) + self._open_records + self._sealing_records

    async def add(
        self,
        lines: Sequence[bytes],
        records: int,
        fingerprints: Optional[Sequence[list[int]]] = None,
        parent_id: Any = None,
    ) -> None:
        """Append a group of lines (kept together in one part); write the part when it is full. `fingerprints`: each
        line's, as it holds them (`lines.landed_page`), taken by the digest as they are (else read from the line)."""
        compress = self._zip.compress
        for i, line in enumerate(lines):
            digest = self.digest
            if digest is not None:
                if fingerprints is not None:
                    digest.add(fingerprints[i], parent_id)
                elif not digest.add_line(line):
                    self.digest = None
            out = compress(line)
            if out:
                self._chunks.append(out)
                self._out += len(out)
                self._raw_pending = 0
            else:
                self._raw_pending += len(line)
        self._open_pages += len(lines)
        self._open_records += records
        if self._out + self._raw_pending // _DEFLATE_RATIO_GUESS >= self.max_bytes:
            await self._write(self._seal())

    async def close(self) -> list[Part]:
        """Write the last part (if it holds anything) and wait for every write; the written parts."""
        if self._open_pages:
            await self._write(self._seal())
        async with self._lock:  # any write still running
            pass
        return self.parts

    async def discard(self) -> None:
        """Forget everything this writer wrote (a list restarted from page one): parts are deleted."""
        async with self._lock:
            keys = [p.key for p in self.parts[len(self.prior_parts) :]]
            await asyncio.to_thread(_delete_all, self.storage, keys)
            self.parts = list(self.prior_parts)
            self._next_number = self.first_number
            self._generation += 1
            self._sealing_pages = self._sealing_records = 0
            self.digest = None if self.prior_parts else LandingDigest()
            self._reset_open()
        log.info("%s: discarded %d part(s) of an interrupted listing", self.entity, len(keys))

    def _seal(self) -> tuple[int, int, bytes, int, int]:
        """Close the open part's gzip stream and start a new one (synchronous: no line is lost)."""
        self._chunks.append(self._zip.flush())
        data = b"".join(self._chunks)
        sealed = (self._generation, self._next_number, data, self._open_pages, self._open_records)
        self._next_number += 1
        self._sealing_pages += self._open_pages
        self._sealing_records += self._open_records
        self._reset_open()
        return sealed

    async def _write(self, sealed: tuple[int, int, bytes, int, int]) -> None:
        generation, number, data, pages, records = sealed
        key = part_key(self.entity, self.run_id, number)
        async with self._lock:  # one write at a time, in part order: memory stays at ~2 parts
            if generation != self._generation:  # discarded while it waited
                return
            await asyncio.to_thread(self.storage.put, key, data)
            self.parts.append(Part(key, pages, records, len(data)))
            self._sealing_pages -= pages
            self._sealing_records -= records
        log.debug("%s: wrote %s (%d pages, %d records, %d bytes)", self.entity, key, pages, records, len(data))


def _delete_all(storage: Storage, keys: Sequence[str]) -> None:
    for key in keys:
        storage.delete(key)


def part_number(key: str) -> int:
    """17 for …/part-00017.jsonl.gz"""
    name = key.rsplit("/", 1)[-1]
    return int(name[len("part-") :].split(".", 1)[0])

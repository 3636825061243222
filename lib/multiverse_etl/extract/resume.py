"""What an interrupted attempt of a run left behind, so --resume finishes it without duplicates.

Projects parts hold only complete parents, and a part exists only once fully written, so
every parent found in the run's projects parts is done and is skipped. Lists
(apprenticeships, programmes) are re-listed from page one (old tokens are dead), so their
parts from the interrupted attempt are deleted first.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass, field

from .. import jsonsafe
from ..entities import ENTITIES
from ..landing import Part, run_prefix
from ..storage import Storage
from .parents import ParentSet

log = logging.getLogger(__name__)


@dataclass
class PriorAttempt:
    project_parts: list[Part] = field(default_factory=list)
    done_parents: ParentSet = field(default_factory=ParentSet)
    deleted_keys: list[str] = field(default_factory=list)


def take_over(storage: Storage, run_id: str) -> PriorAttempt:
    """Read the run's committed projects parts, delete its list parts; what the resume starts from."""
    prior = PriorAttempt()
    for spec in ENTITIES:  # lists are listed again from page one; fanned-out entities keep complete parents
        if spec.parent is not None:
            continue
        for info in list(storage.list(run_prefix(spec.name, run_id))):
            storage.delete(info.key)
            prior.deleted_keys.append(info.key)
    fanned_out = next(spec for spec in ENTITIES if spec.parent is not None)
    for info in list(storage.list(run_prefix(fanned_out.name, run_id))):
        if not info.key.endswith(".jsonl.gz"):
            continue
        try:
            pages, records = _read_part(storage.get(info.key), prior.done_parents)
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
            # cannot happen with atomic writes; if it does, its parents are simply listed again
            log.warning(
                "resume: %s is unreadable (%s): deleting it, its parents will be listed again",
                info.key,
                type(exc).__name__,
            )
            storage.delete(info.key)
            prior.deleted_keys.append(info.key)
            continue
        prior.project_parts.append(Part(info.key, pages, records, info.size))
    log.info(
        "resume of %s: %d projects part(s) kept with %d parents done; %d list part(s) deleted",
        run_id,
        len(prior.project_parts),
        len(prior.done_parents),
        len(prior.deleted_keys),
    )
    return prior


def _read_part(data: bytes, done: ParentSet) -> tuple[int, int]:
    """A whole projects part: its pages and records; its parents are added to `done` once it is all read."""
    pages = records = 0
    parents = []
    for line in gzip.decompress(data).splitlines():
        if not line:
            continue
        doc = jsonsafe.loads(line)  # a landed page may hold anything valid JSON can
        pages += 1
        records += len(doc["data"])
        if doc["page_index"] == 0:
            parents.append(doc["parent"]["apprenticeship_id"])
    for parent in parents:  # only once the whole part has been read
        done.add(parent)
    return pages, records

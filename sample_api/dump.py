"""Ground truth: exactly what a replica with the same arguments serves, raw, in order.

Tests and benchmarks compare the lake against it. Projects carry their
``apprenticeship_id`` (which the API only has in the URL) as a last extra key.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, BinaryIO, Iterable, Optional

import orjson

from .data import Dataset, build_dataset

log = logging.getLogger(__name__)

FILES = ("apprenticeships", "projects", "programmes")


def ground_truth_of(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    """In-memory ground truth of an already built dataset."""
    return {
        "apprenticeships": list(ds.iter_apprenticeships()),
        "projects": [{**project, "apprenticeship_id": aid} for aid, project in ds.iter_projects()],
        "programmes": [ds.programme_record(i) for i in range(len(ds.programme_rows))],
    }


def ground_truth(scale: int, seed: int, generation: int, corrupt_rate: float = 0.0) -> dict[str, list[dict[str, Any]]]:
    """What ``dump`` writes, as dicts: ``apprenticeships``, ``projects``, ``programmes``."""
    return ground_truth_of(build_dataset(scale, seed, generation, corrupt_rate))


def _served_rows(ds: Dataset, name: str) -> Iterable[bytes]:
    """The served JSON bytes of each row (projects with ``apprenticeship_id`` appended)."""
    if name == "apprenticeships":
        return (ds.apprenticeship_row(pos) for pos in range(len(ds)))
    if name == "programmes":
        return iter(ds.programme_rows)
    return (
        orjson.dumps(project)[:-1] + b',"apprenticeship_id":' + str(aid).encode() + b"}"
        for aid, project in ds.iter_projects()
    )


def _write_array(out: BinaryIO, rows: Iterable[bytes]) -> int:
    """A JSON array, one object per line, streamed (1,000,000 rows fit in little memory)."""
    count = 0
    for row in rows:
        out.write(b"[\n" if count == 0 else b",\n")
        out.write(row)
        count += 1
    out.write(b"\n]\n" if count else b"[]\n")
    return count


def write_dump(
    out_dir: str, scale: int, seed: int, generation: int, corrupt_rate: float = 0.0, dataset: Optional[Dataset] = None
) -> dict[str, int]:
    """Write ``apprenticeships.json``, ``projects.json``, ``programmes.json``; row counts."""
    started = time.perf_counter()
    ds = dataset or build_dataset(scale, seed, generation, corrupt_rate)
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for name in FILES:
        path = os.path.join(out_dir, f"{name}.json")
        tmp = path + ".tmp"
        with open(tmp, "wb") as out:
            counts[name] = _write_array(out, _served_rows(ds, name))
        os.replace(tmp, path)
    log.info("dump of %s written in %.1fs: %s", out_dir, time.perf_counter() - started, counts)
    return counts

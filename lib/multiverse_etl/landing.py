"""The landing zone's contract, shared by the driver (writer) and the Spark jobs (reader).

Layout under the lake root:
    raw/<entity>/ingest_date=YYYY-MM-DD/run_id=<run_id>/part-NNNNN.jsonl.gz   one API page per line
    raw/_manifests/<run_id>.json                                            written last: the commit marker
    _state/watermark.json                                                    incremental watermark

A landing line (gzip JSON Lines) holds the page exactly as served plus lineage:
    {"entity": "projects", "run_id": "...", "extracted_at": "2026-11-27T03:34:00.123456Z",
     "page_index": 0, "request": {"path": "/apprenticeships/17/projects", "params": {"page_size": 1000}},
     "parent": {"apprenticeship_id": 17},        # null for apprenticeships and programmes
     "data": [...], "pagination": {...}}          # untouched
Readers take only runs whose manifest exists and says status "committed".
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Any, Iterator, Optional

from .storage import ObjectNotFound, Storage

ENTITIES = ("apprenticeships", "projects", "programmes")
RAW_PREFIX = "raw"
MANIFEST_PREFIX = "raw/_manifests"
STATE_PREFIX = "_state"
MANIFEST_VERSION = 1
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class LandingError(RuntimeError):
    """The landing zone is not what the contract says (bad run id, broken manifest)."""

    user_facing = True


def new_run_id(now: Optional[dt.datetime] = None) -> str:
    """Sortable by time, unique across concurrent starts: 20261127T033400Z-1a2b3c."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise LandingError(f"run id {run_id!r} is not of the form 20261127T033400Z-1a2b3c")
    return run_id


def run_ingest_date(run_id: str) -> str:
    """The ingest date of a run is the UTC date its id was made: stable across a resume."""
    return f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]}"


def run_prefix(entity: str, run_id: str) -> str:
    return f"{RAW_PREFIX}/{entity}/ingest_date={run_ingest_date(run_id)}/run_id={run_id}/"


def part_key(entity: str, run_id: str, number: int) -> str:
    return f"{run_prefix(entity, run_id)}part-{number:05d}.jsonl.gz"


def manifest_key(run_id: str) -> str:
    return f"{MANIFEST_PREFIX}/{run_id}.json"


def write_manifest(storage: Storage, manifest: dict[str, Any]) -> str:
    """Write the manifest last: from this moment the run exists for readers."""
    key = manifest_key(check_run_id(manifest["run_id"]))
    storage.put(key, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return key


def read_manifest(storage: Storage, run_id: str) -> Optional[dict[str, Any]]:
    try:
        raw = storage.get(manifest_key(run_id))
    except ObjectNotFound:
        return None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LandingError(f"manifest {storage.uri(manifest_key(run_id))} is not valid JSON: {exc}") from None
    return manifest


def committed_runs(storage: Storage) -> Iterator[dict[str, Any]]:
    """Manifests of committed runs, oldest first (run ids sort by time)."""
    keys = sorted(o.key for o in storage.list(MANIFEST_PREFIX + "/") if o.key.endswith(".json"))
    for key in keys:
        run_id = key.rsplit("/", 1)[1][: -len(".json")]
        manifest = read_manifest(storage, run_id)
        if manifest and manifest.get("status") == "committed":
            yield manifest

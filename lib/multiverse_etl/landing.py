"""The landing zone's contract, shared by the driver (writer) and the Spark jobs (reader).

Layout under the lake root:
    raw/<entity>/ingest_date=YYYY-MM-DD/run_id=<run_id>/part-NNNNN.jsonl.gz   one API page per line
    raw/_manifests/<run_id>.json                                            written last: the commit marker
    _state/watermark.json                                                    incremental watermark

A landing line (gzip JSON Lines) holds the page exactly as served plus lineage:
    {"entity": "projects", "run_id": "...", "extracted_at": "2026-11-27T03:34:00.123456Z",
     "page_index": 0, "request": {"path": "/apprenticeships/17/projects", "params": {"page_size": 1000}},
      "parent": {"apprenticeship_id": 17},        # null for apprenticeships and programmes
     "fingerprints": [-812..., 4471...],          # one per record of `data` (`record_fingerprint`)
     "data": [...], "pagination": {...}}          # untouched
Readers take only runs whose manifest exists and says status "committed".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import orjson

from . import jsonsafe
from .entities import ENTITY_NAMES
from .errors import EtlError
from .ids import RUN_ID_PATTERN
from .ids import new_run_id as new_run_id  # re-exported: the extractor names its runs through the contract
from .storage import ObjectNotFound, Storage

ENTITIES = ENTITY_NAMES
RAW_PREFIX = "raw"
MANIFEST_PREFIX = "raw/_manifests"
STATE_PREFIX = "_state"
MANIFEST_VERSION = 1
# The scheme of the record fingerprints the extractor writes into landing lines (recorded in the manifest): a
# landing without it has its fingerprints computed by the transform instead (transform/classify.py).
FINGERPRINT_SCHEME = "blake2b64-sorted-json-v1"


class LandingError(EtlError):
    """The landing zone is not what the contract says (bad run id, broken manifest)."""


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


@dataclass(frozen=True)
class Part:
    """One landing part file of an entity: its key and what it holds."""

    key: str
    pages: int
    records: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Part:
        return cls(str(doc["key"]), int(doc["pages"]), int(doc["records"]), int(doc.get("bytes", 0)))


@dataclass(frozen=True)
class EntityManifest:
    """What a run landed of one entity. `complete_listing`: the listing shows every id the source has."""

    pages: int
    records: int
    complete_listing: bool
    parts: tuple[Part, ...] = ()
    requests: int = 0
    retries: int = 0
    parents: Optional[int] = None  # projects: the apprenticeships whose listings were landed
    parents_skipped: Optional[int] = None  # projects: apprenticeships without a usable id
    digest: Optional[str] = None  # `LandingDigest.text()` of every line (None: not known, e.g. a resumed run)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "pages": self.pages,
            "records": self.records,
            "requests": self.requests,
            "retries": self.retries,
            "complete_listing": self.complete_listing,
            "parts": [p.to_json() for p in self.parts],
        }
        for name in ("parents", "parents_skipped", "digest"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EntityManifest:
        return cls(
            pages=int(doc["pages"]),
            records=int(doc["records"]),
            complete_listing=bool(doc["complete_listing"]),
            parts=tuple(Part.from_json(p) for p in doc.get("parts", ())),
            requests=int(doc.get("requests", 0)),
            retries=int(doc.get("retries", 0)),
            parents=doc.get("parents"),
            parents_skipped=doc.get("parents_skipped"),
            digest=doc.get("digest"),
        )


# Top-level keys written only when set (older manifests and test landings may not have them).
_OPTIONAL_KEYS = ("api_url", "duration_s", "logins", "client", "record_fingerprints")


@dataclass(frozen=True)
class Manifest:
    """A run's manifest (raw/_manifests/<run_id>.json): written last, it commits the run."""

    run_id: str
    mode: str
    started_at: str  # ISO 8601, UTC
    finished_at: str
    entities: Mapping[str, EntityManifest]
    status: str = "committed"
    manifest_version: int = MANIFEST_VERSION
    projects_scope: str = "all"
    attempt: int = 1
    watermark_before: Optional[str] = None
    watermark_after: Optional[str] = None
    modified_after: Optional[str] = None
    requests: int = 0
    retries: int = 0
    api_url: Optional[str] = None
    duration_s: Optional[float] = None
    logins: Optional[int] = None
    client: Optional[Mapping[str, Any]] = field(default=None, compare=False)  # the extractor's request statistics
    record_fingerprints: Optional[str] = None  # FINGERPRINT_SCHEME when every landing line carries `fingerprints`

    def entity(self, name: str) -> EntityManifest:
        """An entity's section; an entity the run did not land counts as landed empty, not complete."""
        return self.entities.get(name) or EntityManifest(pages=0, records=0, complete_listing=False)

    def to_json(self) -> dict[str, Any]:
        doc = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _OPTIONAL_KEYS and f.name != "entities"
        }
        doc["entities"] = {name: e.to_json() for name, e in self.entities.items()}
        for name in _OPTIONAL_KEYS:
            value = getattr(self, name)
            if value is not None:
                doc[name] = dict(value) if name == "client" else value
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Manifest:
        """The manifest of a parsed JSON document; LandingError when it is not one this version understands."""
        if not isinstance(doc, Mapping):
            raise LandingError(f"a manifest must be a JSON object, got {type(doc).__name__}")
        run_id = doc.get("run_id")
        if not isinstance(run_id, str):
            raise LandingError(f"manifest without a run_id: {str(doc)[:200]}")
        version = doc.get("manifest_version")
        if version != MANIFEST_VERSION:
            raise LandingError(
                f"run {run_id}: manifest_version {version!r} is not supported "
                f"(expected {MANIFEST_VERSION}); upgrade multiverse-etl to read it"
            )
        entities = doc.get("entities")
        if not isinstance(entities, Mapping):
            raise LandingError(f"run {run_id}: the manifest has no 'entities' section")
        try:
            return cls(
                run_id=run_id,
                mode=str(doc.get("mode", "unknown")),
                started_at=doc.get("started_at") or "",
                finished_at=doc.get("finished_at") or "",
                entities={name: EntityManifest.from_json(e) for name, e in entities.items()},
                status=str(doc.get("status")),
                manifest_version=version,
                projects_scope=str(doc.get("projects_scope", "all")),
                attempt=int(doc.get("attempt", 1)),
                watermark_before=doc.get("watermark_before"),
                watermark_after=doc.get("watermark_after"),
                modified_after=doc.get("modified_after"),
                requests=int(doc.get("requests", 0)),
                retries=int(doc.get("retries", 0)),
                api_url=doc.get("api_url"),
                duration_s=doc.get("duration_s"),
                logins=doc.get("logins"),
                client=doc.get("client"),
                record_fingerprints=doc.get("record_fingerprints"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LandingError(f"run {run_id}: the manifest is malformed ({type(exc).__name__}: {exc})") from None


def record_fingerprint(record: Any, parent_id: Any = None) -> int:
    """A signed 64-bit fingerprint of one record as served, with its parent's id (FINGERPRINT_SCHEME).

    Taken over the record's canonical JSON (keys sorted, compact), so it does not depend on how the API
    spaced or ordered it, nor on the Spark line that later reads it. The transform compares it with the
    fingerprint silver and quarantine keep, to skip the records that did not change.
    """
    return record_fingerprints((record,), parent_id)[0]


def record_fingerprints(records: Iterable[Any], parent_id: Any = None) -> list[int]:
    """`record_fingerprint` of each record of one parent, in order: the parent's part is encoded once, and the
    loop makes no call per record but the hashing (it runs for every record the extractor lands)."""
    tail = b"\0" + str(parent_id).encode()
    prints = []
    for record in records:
        try:
            canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):  # huge numbers, deep nesting, lone surrogates
            canonical = jsonsafe.dumps(record, sort_keys=True)  # = json.dumps(sort_keys, compact, ASCII), no recursion
        digest = hashlib.blake2b(canonical + tail, digest_size=8).digest()
        prints.append(int.from_bytes(digest, "big", signed=True))
    return prints


_MASK = (1 << 64) - 1


class LandingDigest:
    """An order-independent digest of an entity's landing: its records' fingerprints and its empty listings.

    Two runs whose digests are equal landed the same records (as a multiset) under the same parents: loading
    the second after the first changes nothing, so the transform may skip it (transform/skip.py).
    """

    def __init__(self) -> None:
        self.count = self.total = self.xor = 0

    def add(self, fingerprints: list[int], parent_id: Any = None) -> None:
        for value in fingerprints or [record_fingerprint({"empty listing": True}, parent_id)]:
            unsigned = value & _MASK
            self.count += 1
            self.total = (self.total + unsigned) & _MASK
            self.xor ^= unsigned

    def add_line(self, line: bytes) -> bool:
        """Take a landing line's fingerprints (False: the line carries none)."""
        at = line.find(b',"fingerprints":[')
        if at < 0:
            return False
        end = line.index(b"]", at)
        parent_at = line.rfind(b'"parent":', 0, at)
        parent = orjson.loads(line[parent_at + 9 : at]) if parent_at >= 0 else None
        self.add(orjson.loads(line[at + 16 : end + 1]), parent.get("apprenticeship_id") if parent else None)
        return True

    def text(self) -> str:
        return f"v1:{self.count}:{self.total:016x}:{self.xor:016x}"


def landing_line(
    entity: str,
    run_id: str,
    extracted_at: str,
    page_index: int,
    path: str,
    params: Mapping[str, Any],
    parent: Optional[Mapping[str, Any]],
    payload: bytes,
    fingerprints: Optional[list[int]] = None,
) -> bytes:
    """One landing line (with its newline): the lineage head, then `payload`, the page's compact JSON
    object holding `data` and `pagination`, spliced in as bytes (the values exactly as served).
    `fingerprints`: one per record of `data`, in order (`record_fingerprint`)."""
    head_doc: dict[str, Any] = {
        "entity": entity,
        "run_id": run_id,
        "extracted_at": extracted_at,
        "page_index": page_index,
        "request": {"path": path, "params": dict(params)},
        "parent": dict(parent) if parent is not None else None,
    }
    if fingerprints is not None:
        head_doc["fingerprints"] = fingerprints
    head = orjson.dumps(head_doc)
    return head[:-1] + b"," + payload.strip()[1:] + b"\n"


def write_manifest(storage: Storage, manifest: Manifest) -> str:
    """Write the manifest last: from this moment the run exists for readers."""
    key = manifest_key(check_run_id(manifest.run_id))
    storage.put(key, json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode())
    return key


def read_manifest_json(storage: Storage, run_id: str) -> Optional[dict[str, Any]]:
    """The manifest's JSON as stored (None: the run has none yet)."""
    try:
        raw = storage.get(manifest_key(run_id))
    except ObjectNotFound:
        return None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LandingError(f"manifest {storage.uri(manifest_key(run_id))} is not valid JSON: {exc}") from None
    return manifest


def read_manifest(storage: Storage, run_id: str) -> Optional[Manifest]:
    doc = read_manifest_json(storage, run_id)
    return None if doc is None else Manifest.from_json(doc)


def committed_runs(storage: Storage) -> Iterator[Manifest]:
    """Manifests of committed runs, oldest first (run ids sort by time)."""
    keys = sorted(o.key for o in storage.list(MANIFEST_PREFIX + "/") if o.key.endswith(".json"))
    for key in keys:
        run_id = key.rsplit("/", 1)[1][: -len(".json")]
        doc = read_manifest_json(storage, run_id)
        if doc and doc.get("status") == "committed":
            yield Manifest.from_json(doc)

"""Landed runs for the transform tests: landing runs written exactly as `multiverse_etl.landing` says.

A run is written as gzip JSON Lines parts (one API page per line, lineage included) and then its
manifest, last, as the extractor does. Records are dicts, or `Raw("...")` text spliced into the
page verbatim (to land values the JSON encoder would never produce, e.g. a quoted number).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from multiverse_etl.landing import EntityManifest, Manifest, Part, part_key, write_manifest
from multiverse_etl.landing import landing_line as format_landing_line
from multiverse_etl.storage import Storage

T0 = dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Raw:
    """A record's JSON text, landed as is."""

    text: str


Record = Union[dict, Raw, str, int, None]


@dataclass
class Page:
    data: Sequence[Record]
    parent: Optional[int] = None  # projects: the apprenticeship id of the URL
    page_index: Optional[int] = None  # default: position in its list (per parent for projects)
    extracted_at: Optional[dt.datetime] = None  # default: the run start + one second per page
    run_id: Optional[str] = None  # default: the run's (override to break the landing contract)


def run_id_at(when: dt.datetime, suffix: str = "a0a0a0") -> str:
    return f"{when:%Y%m%dT%H%M%SZ}-{suffix}"


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record_text(record: Record) -> str:
    if isinstance(record, Raw):
        return record.text
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def landing_line(
    entity: str, run_id: str, page: Page, page_index: int, extracted_at: dt.datetime, fingerprints: bool = False
) -> bytes:
    """The page's landing line, by the landing contract's own `landing_line` (records spliced in as text);
    `fingerprints`: with each record's fingerprint in the head, as the extractor writes it."""
    data = "[" + ",".join(_record_text(r) for r in page.data) + "]"
    pagination = json.dumps({"next_token": None, "previous_token": None, "page_size": 1000})
    payload = f'{{"data":{data},"pagination":{pagination}}}'.encode()
    path = f"/apprenticeships/{page.parent}/projects" if entity == "projects" else f"/{entity}"
    parent = {"apprenticeship_id": page.parent} if entity == "projects" else None
    prints = None
    if fingerprints:
        from multiverse_etl import jsonsafe
        from multiverse_etl.landing import record_fingerprint

        prints = [
            record_fingerprint(jsonsafe.loads(_record_text(r)), page.parent if entity == "projects" else None)
            for r in page.data
        ]
    return format_landing_line(
        entity, page.run_id or run_id, iso(extracted_at), page_index, path, {"page_size": 1000}, parent, payload, prints
    )


@dataclass
class LandedRun:
    run_id: str
    manifest: Manifest
    started_at: dt.datetime
    keys: dict[str, list[str]] = field(default_factory=dict)


def write_run(
    storage: Storage,
    started_at: dt.datetime,
    *,
    apprenticeships: Sequence[Page] = (),
    projects: Sequence[Page] = (),
    programmes: Sequence[Page] = (),
    mode: str = "full",
    complete_listing: Optional[dict[str, bool]] = None,
    pages_per_part: int = 1000,
    suffix: str = "a0a0a0",
    commit: bool = True,
    fingerprints: bool = False,
) -> LandedRun:
    """Land one run (parts, then the manifest) and return it; `fingerprints`: as the extractor lands it (each
    record's fingerprint in its line, each entity's digest and the fingerprint scheme in the manifest)."""
    from multiverse_etl.landing import FINGERPRINT_SCHEME, LandingDigest

    run_id = run_id_at(started_at, suffix)
    complete = {"apprenticeships": mode == "full", "projects": True, "programmes": True, **(complete_listing or {})}
    landed = LandedRun(run_id, None, started_at)  # type: ignore[arg-type]
    entities: dict[str, EntityManifest] = {}
    clock = started_at
    for entity, pages in (("programmes", programmes), ("apprenticeships", apprenticeships), ("projects", projects)):
        per_parent: dict[Optional[int], int] = {}
        lines: list[tuple[bytes, int]] = []
        digest = LandingDigest()
        for page in pages:
            index = page.page_index if page.page_index is not None else per_parent.get(page.parent, 0)
            per_parent[page.parent] = index + 1
            clock = clock + dt.timedelta(seconds=1)
            line = landing_line(entity, run_id, page, index, page.extracted_at or clock, fingerprints)
            digest.add_line(line)
            lines.append((line, len(page.data)))
        parts = []
        for number, start in enumerate(range(0, len(lines), pages_per_part)):
            chunk = lines[start : start + pages_per_part]
            key = part_key(entity, run_id, number)
            body = gzip.compress(b"".join(line for line, _ in chunk))
            storage.put(key, body)
            parts.append(Part(key, len(chunk), sum(n for _, n in chunk), len(body)))
        landed.keys[entity] = [p.key for p in parts]
        entities[entity] = EntityManifest(
            pages=sum(p.pages for p in parts),
            records=sum(p.records for p in parts),
            complete_listing=complete[entity],
            parts=tuple(parts),
            requests=len(lines),
            parents=len({p.parent for p in projects}) if entity == "projects" else None,
            digest=digest.text() if fingerprints else None,
        )
    landed.manifest = Manifest(
        run_id=run_id,
        mode=mode,
        started_at=iso(started_at),
        finished_at=iso(clock + dt.timedelta(seconds=1)),
        entities=entities,
        requests=sum(e.requests for e in entities.values()),
        record_fingerprints=FINGERPRINT_SCHEME if fingerprints else None,
    )
    if commit:
        write_manifest(storage, landed.manifest)
    return landed


def apprenticeship(aid: int, **fields: Any) -> dict:
    record = {
        "id": aid,
        "name": f"Data Fellowship – Acme {aid}",
        "programme_id": 7,
        "modified_date": "2024-03-05T10:21:33",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email_address": f"ada{aid}@example.org",
    }
    record.update(fields)
    return record


def project(pid: int, **fields: Any) -> dict:
    record = {"id": pid, "title": f"Project {pid}", "description": "Built a pipeline.", "status": "pending"}
    record.update(fields)
    return record


def programme(pid: int, **fields: Any) -> dict:
    record = {"id": pid, "name": f"Programme {pid}", "duration": 12, "description": "Learn by doing."}
    record.update(fields)
    return record


def without(record: dict, *names: str) -> dict:
    return {k: v for k, v in record.items() if k not in names}


# ---------------------------------------------------------------- DataFrames for unit tests

RUN = "20260302T090000Z-a0a0a0"
INGEST = dt.date(2026, 3, 2)
EXTRACTED = dt.datetime(2026, 3, 2, 9, 0, 1, tzinfo=dt.timezone.utc)


def landing_file(entity: str, run_id: str = RUN, part: int = 0) -> str:
    return part_key(entity, run_id, part)


def bronze_frame(
    spark,
    entity: str,
    records: Sequence[Record],
    parents: Optional[Sequence[Optional[int]]] = None,
    run_id: str = RUN,
    extracted_at: dt.datetime = EXTRACTED,
    page_index: int = 0,
):
    """Bronze rows (BRONZE_SCHEMA) of one page holding `records` (dicts are landed as compact JSON)."""
    from multiverse_etl.transform.schemas import BRONZE_SCHEMA

    parents = parents if parents is not None else [None] * len(records)
    rows = [
        (
            run_id,
            dt.date.fromisoformat(f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"),
            extracted_at,
            landing_file(entity, run_id),
            page_index,
            index,
            parent,
            None if record is None else _record_text(record),
            1000 * page_index + index,
        )
        for index, (record, parent) in enumerate(zip(records, parents))
    ]
    return spark.createDataFrame(rows, BRONZE_SCHEMA)


def lineage(
    index: int,
    parent: Optional[int] = None,
    entity: str = "apprenticeships",
    run_id: str = RUN,
    extracted_at: dt.datetime = EXTRACTED,
    page_index: int = 0,
) -> tuple:
    """The lineage columns `bronze_frame` gives record `index`."""
    return (
        run_id,
        dt.date.fromisoformat(f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"),
        extracted_at,
        landing_file(entity, run_id),
        page_index,
        index,
        parent,
    )


def cleaned(spec):
    """Bronze rows → what the transform makes of each row, in its order (prepare.py, then merge.py's `merge_silver`):
    validated, ranked, the version kept of each key (rank 1) NFC-normalised as silver takes it; rejected rows as
    validated (quarantine's input); older versions of a valid key dropped."""
    from pyspark.sql import functions as F

    from multiverse_etl.transform.clean import normalize_unicode, validate_records
    from multiverse_etl.transform.dedupe import RANK_COLUMN, rank_versions

    def step(bronze):
        ranked = bronze.transform(validate_records(spec)).transform(rank_versions(spec))
        columns = [c for c in ranked.columns if c != RANK_COLUMN]
        kept = ranked.filter(F.col(RANK_COLUMN) == 1).select(*columns).transform(normalize_unicode(spec))
        return kept.unionByName(ranked.filter(F.col(RANK_COLUMN).isNull()).select(*columns))

    return step


def kept_versions(spec):
    """Validated rows → the version of each key the transform keeps (rank 1 of `rank_versions`, as `merge_silver`)."""
    from pyspark.sql import functions as F

    from multiverse_etl.transform.dedupe import RANK_COLUMN, rank_versions

    return lambda rows: rows.transform(rank_versions(spec)).filter(F.col(RANK_COLUMN) == 1).select(*rows.columns)


def compact(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@contextmanager
def spark_conf(spark, key: str, value: str):
    """Set a session conf for the block and restore it (the session is shared by the whole test run)."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)

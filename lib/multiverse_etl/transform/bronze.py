"""Step 1, bronze load: every entity's landing → bronze, then validated and ranked (kept in memory).

One chain per entity, side by side: a gzip part is read by one task, so while the largest landing is
still being read the other core validates the entities already in bronze. A landing that cannot be
read, or does not match its manifest, stops the run here and its bronze rows are taken back out.
Each chain returns a frozen `Prepared`: its counts and its ranked rows (persisted; the run unpersists them).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from ..entities import LOAD_ORDER, EntitySpec
from .clean import validate_records
from .context import Job, results_or_raise
from .dedupe import RANK_COLUMN, rank_versions
from .drift import DriftField, apply_policy, field_presence, schema_drift
from .quarantine import is_valid, possible_reasons
from .read import (
    LandingReadError,
    LoadPlan,
    explode_pages,
    find_unreadable_part,
    is_read_failure,
    landing_problems,
    landing_read_error,
    page_checks,
    read_landing_pages,
)
from .tables import bronze_table, delete_run_rows, read_run_rows, replace_run_rows

log = logging.getLogger("multiverse_etl.transform")

# A landing part is written to bronze by one task; files of at most this many rows let the reads that
# follow split it across tasks (docs/transform.md#performance).
BRONZE_ROWS_PER_FILE = 250_000


@dataclass(frozen=True)
class Prepared:
    """An entity of a run between validation and MERGE: what was read and validated, and its ranked rows."""

    spec: EntitySpec
    landing: Mapping[str, Any]  # what the landing's pages showed (`read.page_checks`) and the bronze rows written
    bronze_read: int
    valid_rows: int
    duplicates_collapsed: int
    upsert_candidates: int
    reasons: Mapping[str, int]
    ranked: DataFrame  # persisted
    drift: Optional[tuple[DriftField, ...]] = None  # schema drift (drift.py); None when not scanned

    @property
    def quarantined_rows(self) -> int:
        return self.bronze_read - self.valid_rows

    def unpersist(self) -> None:
        self.ranked.unpersist()


def load_bronze(job: Job, plan: LoadPlan) -> dict[str, Prepared]:
    """Every entity's landing → bronze, each validated and ranked as soon as its bronze is written."""
    try:
        futures = {spec.name: job.pool.submit(_bronze_and_prepare, job, plan, spec) for spec in LOAD_ORDER}
        prepared = results_or_raise(futures, cleanup=Prepared.unpersist)
        problems = [
            p
            for spec in LOAD_ORDER
            for p in landing_problems(plan.run_id, spec.name, prepared[spec.name].landing, plan.pages[spec.name])
        ]
        if problems:
            for value in prepared.values():
                value.unpersist()
            raise read_error_of(plan.run_id, problems)
        try:  # warn, or (on_unknown_fields: fail) take the run's bronze back out and stop
            apply_policy(plan.run_id, [item for p in prepared.values() for item in p.drift or ()], job.drift_policy)
        except Exception:
            for value in prepared.values():
                value.unpersist()
            raise
    except Exception:
        for spec in LOAD_ORDER:  # whatever an entity's job committed before the failure
            delete_run_rows(job.spark, job.lake, bronze_table(spec), plan.run_id, plan.ingest_date)
        raise
    return prepared


def _bronze_and_prepare(job: Job, plan: LoadPlan, spec: EntitySpec) -> Prepared:
    return prepare_entity(job, plan, spec, write_bronze(job, plan, spec))


def write_bronze(job: Job, plan: LoadPlan, spec: EntitySpec) -> dict[str, Any]:
    """An entity's landing parts → its bronze rows of the run; what the pages showed (`read.page_checks`) and rows."""
    entity, keys = spec.name, plan.parts[spec.name]
    if not keys:
        log.info("run %s %s: no landing parts", plan.run_id, entity)
        return {"pages": 0, "records": 0, "rows": 0, "empty_parents": ""}
    start = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    pages_seen, rows_seen = Observation(f"pages_{tag}"), Observation(f"rows_{tag}")
    try:
        pages = read_landing_pages(job.spark, job.lake.root, keys, job.lake.scheme)
        rows = (
            pages.observe(pages_seen, *page_checks(plan.run_id, entity))
            .transform(explode_pages(plan.run_id))
            .observe(rows_seen, F.count(F.lit(1)).alias("rows"))
        )
        replace_run_rows(
            rows, job.lake, bronze_table(spec), plan.run_id, plan.ingest_date, max_rows_per_file=BRONZE_ROWS_PER_FILE
        )
    except Exception as exc:
        if not is_read_failure(exc):
            raise
        culprit = find_unreadable_part(job.spark, job.lake.root, keys, job.lake.scheme) if len(keys) > 1 else keys[0]
        raise landing_read_error(plan.run_id, keys, exc, culprit) from exc  # type: ignore[misc]
    observed = {**pages_seen.get, "rows": rows_seen.get["rows"]}
    seconds = time.monotonic() - start
    log.info(
        "run %s %s: bronze %d rows from %d pages in %d file(s) in %.1fs",
        plan.run_id,
        entity,
        observed["rows"],
        observed["pages"],
        len(keys),
        seconds,
        extra={
            "step": "bronze",
            "landing_run_id": plan.run_id,
            "entity": entity,
            "rows": observed["rows"],
            "pages": observed["pages"],
            "files": len(keys),
            "duration_s": round(seconds, 3),
        },
    )
    return observed


def prepare_entity(job: Job, plan: LoadPlan, spec: EntitySpec, observed: Mapping[str, Any]) -> Prepared:
    """One entity of one run: validate and rank its bronze rows (kept in memory for what follows) and count them."""
    start = time.monotonic()
    bronze = read_run_rows(job.spark, job.lake, bronze_table(spec), plan.run_id, plan.ingest_date)
    # Validated and ranked once, kept for the counts, the quarantine and the plan; NFC after (see clean.py).
    ranked = (
        bronze.transform(validate_records(spec)).transform(rank_versions(spec)).persist(StorageLevel.MEMORY_AND_DISK)
    )
    reasons = possible_reasons(spec)
    try:
        valid = is_valid(F.col("reasons"))
        stats = ranked.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(valid, 1).otherwise(0)).alias("valid"),
            F.sum(F.when(F.col(RANK_COLUMN) > 1, 1).otherwise(0)).alias("duplicates"),
            F.sum(F.when(F.col(RANK_COLUMN) == 1, 1).otherwise(0)).alias("candidates"),
            *[F.sum(F.when(F.array_contains("reasons", reason), 1).otherwise(0)).alias(reason) for reason in reasons],
        ).first()
        assert stats is not None  # an aggregate without grouping has one row
    except BaseException:
        ranked.unpersist()
        raise
    drift = None  # one pass over the run's bronze records' top-level keys
    if job.drift_policy != "ignore":
        drift = tuple(
            schema_drift(spec.name, field_presence(bronze), [f.name for f in spec.contract], int(stats["rows"]))
        )
    prepared = Prepared(
        spec,
        dict(observed),
        bronze_read=int(stats["rows"]),
        valid_rows=int(stats["valid"] or 0),
        duplicates_collapsed=int(stats["duplicates"] or 0),
        upsert_candidates=int(stats["candidates"] or 0),
        reasons={reason: int(stats[reason]) for reason in reasons if stats[reason]},
        ranked=ranked,
        drift=drift,
    )
    log.info(
        "run %s %s: %d bronze rows validated and ranked in %.1fs",
        plan.run_id,
        spec.name,
        prepared.bronze_read,
        time.monotonic() - start,
        extra={
            "step": "validate",
            "landing_run_id": plan.run_id,
            "entity": spec.name,
            "rows": prepared.bronze_read,
            "valid": prepared.valid_rows,
            "quarantined": prepared.quarantined_rows,
            "duration_s": round(time.monotonic() - start, 3),
        },
    )
    return prepared


def read_error_of(run_id: str, problems: list[str]) -> LandingReadError:
    return LandingReadError(
        f"run {run_id}: the landing does not match its manifest ({'; '.join(problems)}); nothing of the run was loaded"
    )

"""The `_audit/runs` rows: one per loaded landing run (its "loaded" marker), or one for a run that failed.

Only a run with a `loaded` row counts as loaded; a run whose reconciliation failed gets a
`failed` row (with the mismatches) and stays pending, so the next transform tries it again.
"""

from __future__ import annotations

import logging
from typing import Optional

from pyspark.sql import DataFrame, SparkSession

from ..lake import Lake
from .results import GoldSummary, RunReport
from .schemas import AUDIT_SCHEMA, ENTITY_COUNTS_SCHEMA
from .tables import append_audit

log = logging.getLogger("multiverse_etl.transform")

LOADED, FAILED = "loaded", "failed"


def audit_row(
    job_id: str, report: RunReport, status: str, gold: GoldSummary, spark_version: str, spark_jobs: Optional[int]
) -> tuple:
    """One `AUDIT_SCHEMA` row."""
    entities = [tuple(getattr(counts, f.name) for f in ENTITY_COUNTS_SCHEMA.fields) for counts in report.entities]
    return (
        job_id,
        report.run_id,
        report.ingest_date,
        report.mode,
        status,
        not report.mismatches,
        list(report.mismatches),
        entities,
        dict(sorted(report.quarantine_reasons.items())),
        gold.orphan_apprenticeships,
        gold.orphan_projects,
        gold.gold_apprenticeships,
        gold.gold_apprenticeship_projects,
        report.started_at,
        report.finished_at or report.started_at,
        report.duration_s,
        spark_version,
        None if report.schema_drift is None else [item.as_row() for item in report.schema_drift],
        spark_jobs,
        dict(report.landing_digests) or None,
        dict(report.lake_versions) or None,
        _fencing_token(),
    )


def _fencing_token() -> Optional[int]:
    from ..lock import current_lock

    held = current_lock()
    return None if held is None else int(held.fencing_token)


def audit_rows(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, AUDIT_SCHEMA)


def write_audit(
    spark: SparkSession,
    lake: Lake,
    job_id: str,
    reports: list[RunReport],
    status: str,
    gold: GoldSummary,
    spark_jobs: Optional[int] = None,
) -> None:
    """Step 5, audit: one row per run, appended last (a `loaded` row is the run's loaded marker)."""
    if not reports:
        return
    rows = [audit_row(job_id, report, status, gold, spark.version, spark_jobs) for report in reports]
    append_audit(audit_rows(spark, rows), lake)
    log.info("audit: %d run(s) marked %s: %s", len(rows), status, ", ".join(r.run_id for r in reports))

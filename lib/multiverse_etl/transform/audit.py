"""The `_audit/runs` rows: one per loaded landing run (its "loaded" marker), or one for a run that failed.

Only a run with a `loaded` row counts as loaded; a run whose reconciliation failed gets a
`failed` row (with the mismatches) and stays pending, so the next transform tries it again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession

from ..lake import Lake
from .drift import summary_line
from .reconcile import EntityCounts, summary_table
from .schemas import AUDIT_SCHEMA, ENTITY_COUNTS_SCHEMA
from .tables import append_audit

log = logging.getLogger("multiverse_etl.transform")

LOADED, FAILED = "loaded", "failed"


@dataclass
class RunReport:
    """What the transform did with one landing run."""

    run_id: str
    ingest_date: dt.date
    mode: str
    started_at: dt.datetime
    finished_at: Optional[dt.datetime] = None
    entities: list[EntityCounts] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    schema_drift: Optional[list] = None  # drift.DriftField per entity and field; None = not scanned (ignore)
    landing_digests: dict[str, str] = field(default_factory=dict)  # skip.landing_key per entity
    lake_versions: dict[str, int] = field(default_factory=dict)  # silver/quarantine after the load; gold after gold
    skipped: list[str] = field(default_factory=list)  # entities not read: landed as the last loaded run (skip.py)

    @property
    def duration_s(self) -> float:
        end = self.finished_at or self.started_at
        return round((end - self.started_at).total_seconds(), 3)

    def entity(self, name: str) -> EntityCounts:
        return {counts.entity: counts for counts in self.entities}[name]


@dataclass(frozen=True)
class GoldSummary:
    gold_apprenticeships: Optional[int] = None
    gold_apprenticeship_projects: Optional[int] = None
    orphan_apprenticeships: Optional[int] = None
    orphan_projects: Optional[int] = None


@dataclass
class TransformResult:
    """What one transform job did."""

    job_id: str
    runs: list[RunReport] = field(default_factory=list)
    gold_mode: str = "unchanged"  # gold_refresh: "rebuilt", "merged" (what silver changed) or "unchanged"
    gold: GoldSummary = GoldSummary()
    duration_s: float = 0.0
    spark_jobs: Optional[int] = None  # Spark jobs the job started (spark_jobs.py); None: unknown

    @property
    def gold_written(self) -> bool:
        return self.gold_mode != "unchanged"

    @property
    def loaded_run_ids(self) -> list[str]:
        return [report.run_id for report in self.runs]

    def summary_extra(self) -> dict[str, Any]:
        """The run's totals as JSON log fields (what a log store queries: counts per stage, gold, duration)."""
        totals = {
            name: sum(getattr(c, name) for r in self.runs for c in r.entities)
            for name in ("landed_records", "bronze_rows", "quarantined_rows", "inserted", "updated", "deleted")
        }
        return {
            "transform_job_id": self.job_id,
            "runs_loaded": len(self.runs),
            "landing_run_ids": [r.run_id for r in self.runs],
            **totals,
            "gold_mode": self.gold_mode,
            "gold_apprenticeships": self.gold.gold_apprenticeships,
            "gold_apprenticeship_projects": self.gold.gold_apprenticeship_projects,
            "duration_s": round(self.duration_s, 3),
            "spark_jobs": self.spark_jobs,
        }

    def summary_lines(self) -> list[str]:
        g = self.gold
        extra = [
            f"runs loaded: {len(self.runs)}; gold {self.gold_mode}"
            + (
                f": {g.gold_apprenticeships} apprenticeships ({g.orphan_apprenticeships} with an unknown programme), "
                f"{g.gold_apprenticeship_projects} projects ({g.orphan_projects} with an unknown apprenticeship)"
                if g.gold_apprenticeships is not None
                else ""
            )
            + f"; {self.duration_s:.1f}s"
            + (f"; {self.spark_jobs} Spark jobs" if self.spark_jobs is not None else "")
        ]
        drift = [line for r in self.runs if (line := summary_line(r.run_id, r.schema_drift))]
        return summary_table([(r.run_id, r.entities, r.mismatches) for r in self.runs], drift + extra)


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

"""The `_audit/runs` rows: one per loaded landing run (its "loaded" marker), or one for a run that failed.

Only a run with a `loaded` row counts as loaded; a run whose reconciliation failed gets a
`failed` row (with the mismatches) and stays pending, so the next transform tries it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Optional

from pyspark.sql import DataFrame, SparkSession

from .reconcile import EntityCounts
from .schemas import AUDIT_SCHEMA, ENTITY_COUNTS_SCHEMA

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

    @property
    def duration_s(self) -> float:
        end = self.finished_at or self.started_at
        return round((end - self.started_at).total_seconds(), 3)

    def entity(self, name: str) -> EntityCounts:
        return next(counts for counts in self.entities if counts.entity == name)


@dataclass(frozen=True)
class GoldSummary:
    gold_apprenticeships: Optional[int] = None
    gold_apprenticeship_projects: Optional[int] = None
    orphan_apprenticeships: Optional[int] = None
    orphan_projects: Optional[int] = None


def audit_row(job_id: str, report: RunReport, status: str, gold: GoldSummary, spark_version: str) -> tuple:
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
    )


def audit_rows(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, AUDIT_SCHEMA)

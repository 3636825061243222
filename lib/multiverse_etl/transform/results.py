"""What the transform's steps return and what a job reports: plain values, no Spark work, no I/O.

At the bottom of the package (it imports only drift's summary line): every step returns one of these (`MergeOutcome`, `QuarantineOutcome`,
`GoldOutcome`), the run assembles them into `RunReport`s and a `TransformResult`, and the reconciliation
(`reconcile.py`) and the audit rows (`audit.py`) read them. Keeping them here lets any module name a result
without importing the step that makes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from .drift import summary_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# How gold was brought up to date by a job (`GoldOutcome.mode`, `TransformResult.gold_mode`).
REBUILT, MERGED, UNCHANGED = "rebuilt", "merged", "unchanged"


@dataclass
class EntityCounts:
    entity: str
    landed_pages: int = 0  # manifest
    landed_records: int = 0  # manifest
    pages_read: int = 0
    records_read: int = 0  # sum of page sizes while reading the landing
    bronze_rows: int = 0  # new distinct versions written to bronze by the run
    bronze_read: int = 0  # changed records validated
    valid_rows: int = 0
    quarantined_rows: int = 0
    quarantine_written: int = 0
    duplicates_collapsed: int = 0
    upsert_candidates: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    merge_inserted: int = 0  # Delta's own MERGE metrics
    merge_updated: int = 0
    silver_live_rows: int = 0
    unchanged_records: int = 0  # the classification (classify.py)
    known_bad_records: int = 0
    changed_records: int = 0
    revisited_records: int = 0
    refreshed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


SUMMARY_COLUMNS = (
    ("entity", "entity", 15),
    ("landed", "landed_records", 9),
    ("same", "unchanged_records", 9),
    ("kn.bad", "known_bad_records", 7),
    ("changed", "changed_records", 9),
    ("quarant.", "quarantined_rows", 8),
    ("dupes", "duplicates_collapsed", 7),
    ("inserted", "inserted", 9),
    ("updated", "updated", 8),
    ("unchanged", "unchanged", 9),
    ("deleted", "deleted", 8),
    ("live", "silver_live_rows", 9),
)


def summary_table(
    runs: Iterable[tuple[str, Iterable[EntityCounts], list[str]]], extra: Optional[list[str]] = None
) -> list[str]:
    """Fixed-width lines: one per entity per run, then the verdict of each run."""
    header = (
        f"{'run':<24} "
        + " ".join(
            f"{title:>{width}}" if title != "entity" else f"{title:<{width}}" for title, _, width in SUMMARY_COLUMNS
        )
        + "  ok"
    )
    lines = [header, "-" * len(header)]
    for run_id, entities, mismatches in runs:
        for counts in entities:
            values = counts.as_dict()
            cells = " ".join(
                f"{values[key]:<{width}}" if key == "entity" else f"{values[key]:>{width}}"
                for _, key, width in SUMMARY_COLUMNS
            )
            bad = any(m.startswith(counts.entity + ":") for m in mismatches)
            lines.append(f"{run_id:<24} {cells}  {'NO' if bad else 'yes'}")
    lines.extend(extra or [])
    return lines


@dataclass(frozen=True)
class MergeOutcome:
    """What the plan said and what Delta's MERGE reported doing (reconcile.py compares them)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    refreshed: int = 0
    restored: int = 0  # updates that brought a deleted row back
    merge_inserted: int = 0
    merge_updated: int = 0
    seconds: float = 0.0
    # What gold needs to follow incrementally (`gold.SilverChanges`): the `spec.gold.touches` values of every
    # inserted, updated or deleted row, and the table's version before this MERGE. `planned` is False for a
    # first load (appended without a plan: gold is rebuilt whole).
    touched: frozenset[int] = frozenset()
    version_before: Optional[int] = None
    planned: bool = True
    # A first load's appended rows, held (`frames.hold`) for gold to build from instead of reading the table back;
    # whoever assembles the outcomes releases them (`SilverChanges.release`). None: not a first load, or no rows.
    rows: Optional[DataFrame] = field(default=None, compare=False, repr=False)

    @property
    def live_change(self) -> int:
        return self.inserted + self.restored - self.deleted


@dataclass(frozen=True)
class QuarantineOutcome:
    """Rows written per entity (as observed while writing), and why they do not match Delta's own count."""

    written: Mapping[str, int] = field(default_factory=dict)
    mismatches: tuple[str, ...] = ()


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
    gold_mode: str = UNCHANGED  # how gold_refresh brought gold up to date: REBUILT, MERGED or UNCHANGED
    gold: GoldSummary = GoldSummary()
    duration_s: float = 0.0
    spark_jobs: Optional[int] = None  # Spark jobs the job started (spark_jobs.py); None: unknown

    @property
    def gold_written(self) -> bool:
        return self.gold_mode != UNCHANGED

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


@dataclass(frozen=True)
class GoldOutcome:
    """How gold was brought up to date (`REBUILT`, `MERGED` or `UNCHANGED`) and its counts (None: not read)."""

    mode: str = UNCHANGED
    summary: GoldSummary = GoldSummary()
    seconds: float = 0.0

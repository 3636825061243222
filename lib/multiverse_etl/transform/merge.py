"""Step 3, silver: an entity's deduplicated valid rows → its change plan → a guarded Delta MERGE.

The first load of a table appends (nothing to compare with, guard or delete). Otherwise the run's
rows are planned against silver (`changes.plan_upserts`), with what the run proves gone
(`deletions.proven_deletions`), and the planned changes are merged. Returns a frozen `MergeOutcome`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .bronze import Prepared
from .changes import ACTION, DELETE, INSERT, UNCHANGED, UPDATE, merge_source, plan_upserts, silver_rows
from .clean import normalize_unicode
from .context import Job
from .dedupe import RANK_COLUMN
from .deletions import proven_deletions
from .read import LoadPlan
from .tables import append_rows, is_empty_table, last_commit, merge_changes, read_table, silver_table

log = logging.getLogger("multiverse_etl.transform")


@dataclass(frozen=True)
class MergeOutcome:
    """What the plan said and what Delta's MERGE reported doing (reconcile.py compares them)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    merge_inserted: int = 0
    merge_updated: int = 0
    seconds: float = 0.0
    # What gold needs to follow incrementally (gold_incremental.py): the `spec.gold.touches` values of every
    # inserted, updated or deleted row, and the table's version before this MERGE. `planned` is False for a
    # first load (appended without a plan: gold is rebuilt whole).
    touched: frozenset[int] = frozenset()
    version_before: Optional[int] = None
    planned: bool = True


def merge_silver(job: Job, plan: LoadPlan, prepared: Prepared, listed_parents: DataFrame) -> MergeOutcome:
    """One entity of one run into silver, by plan and guarded MERGE."""
    spark, lake, spec = job.spark, job.lake, prepared.spec
    start = time.monotonic()
    changes: Optional[DataFrame] = None
    try:
        candidates = (
            prepared.ranked.filter(F.col(RANK_COLUMN) == 1)
            .transform(normalize_unicode(spec))
            .transform(silver_rows(spec))
        )
        head = last_commit(spark, lake, silver_table(spec))
        if is_empty_table(head):
            inserted = prepared.upsert_candidates
            written = append_rows(candidates, lake, silver_table(spec)) if inserted else 0
            outcome = MergeOutcome(
                inserted=inserted, merge_inserted=written, version_before=int(head["version"]), planned=False
            )
        else:
            current = read_table(spark, lake, silver_table(spec))
            upserts = candidates.transform(plan_upserts(spec, current))
            deletions = proven_deletions(spark, lake, plan, spec, prepared.ranked, current, listed_parents)
            changes = (upserts if deletions is None else upserts.unionByName(deletions)).persist(
                StorageLevel.MEMORY_AND_DISK
            )
            # One job: the plan's counts, and the ids gold must build again (none for unchanged rows).
            touches = F.when(F.col(ACTION) != UNCHANGED, F.col(spec.gold.touches))
            grouped = (
                changes.groupBy(ACTION)
                .agg(F.count(F.lit(1)).alias("count"), F.collect_set(touches).alias("touched"))
                .collect()
            )
            planned = {row[ACTION]: int(row["count"]) for row in grouped}
            metrics = {"inserted": 0, "updated": 0}
            if planned.get(INSERT, 0) + planned.get(UPDATE, 0) + planned.get(DELETE, 0):
                actions = tuple(a for a in (INSERT, UPDATE, DELETE) if planned.get(a))
                metrics = merge_changes(spark, lake, spec, merge_source(changes, None), actions, head["version"])
            outcome = MergeOutcome(
                planned.get(INSERT, 0),
                planned.get(UPDATE, 0),
                planned.get(UNCHANGED, 0),
                planned.get(DELETE, 0),
                metrics["inserted"],
                metrics["updated"],
                touched=frozenset(int(i) for row in grouped for i in row["touched"]),
                version_before=int(head["version"]),
            )
    finally:
        if changes is not None:
            changes.unpersist()
    seconds = time.monotonic() - start
    reasons = f" {json.dumps(dict(prepared.reasons), sort_keys=True)}" if prepared.reasons else ""
    log.info(
        "run %s %s: %d bronze rows, %d valid, %d quarantined%s, %d duplicates collapsed; silver %d inserted, "
        "%d updated, %d unchanged, %d deleted (MERGE) in %.1fs",
        plan.run_id,
        spec.name,
        prepared.bronze_read,
        prepared.valid_rows,
        prepared.quarantined_rows,
        reasons,
        prepared.duplicates_collapsed,
        outcome.inserted,
        outcome.updated,
        outcome.unchanged,
        outcome.deleted,
        seconds,
        extra={
            "step": "silver",
            "landing_run_id": plan.run_id,
            "entity": spec.name,
            "rows": prepared.bronze_read,
            "valid": prepared.valid_rows,
            "quarantined": prepared.quarantined_rows,
            "quarantine_reasons": dict(prepared.reasons),
            "duplicates": prepared.duplicates_collapsed,
            "inserted": outcome.inserted,
            "updated": outcome.updated,
            "unchanged": outcome.unchanged,
            "deleted": outcome.deleted,
            "duration_s": round(seconds, 3),
        },
    )
    return dataclasses.replace(outcome, seconds=seconds)

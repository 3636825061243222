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
from typing import Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .changes import ACTION, DELETE, INSERT, REFRESH, UNCHANGED, UPDATE, WAS_DELETED, plan_upserts, silver_rows
from .classify import REVISIT
from .clean import normalize_unicode
from .context import Job
from .dedupe import RANK_COLUMN
from .deletions import present_keys, proven_deletions, unseen_rows
from .delta_log import table_version
from .frames import hold, release
from .prepare import Prepared
from .read import LoadPlan
from .results import MergeOutcome
from .tables import append_rows, merge_changes, read_table, silver_table

log = logging.getLogger("multiverse_etl.transform")


def merge_silver(job: Job, plan: LoadPlan, prepared: Prepared, listed_parents: DataFrame) -> MergeOutcome:
    """One entity of one run into silver, by plan and guarded MERGE (nothing at all when nothing changed)."""
    lake, spec = job.lake, prepared.spec
    start = time.monotonic()
    table = silver_table(spec)
    version = table_version(lake.storage, table)
    ranked = prepared.ranked
    candidates = None
    if ranked is not None:
        candidates = (
            ranked.filter((F.col(RANK_COLUMN) == 1) & ~F.col(REVISIT))
            .drop(REVISIT)
            .transform(normalize_unicode(spec))
            .transform(silver_rows(spec))
        )
    kept = prepared.revisit_winners  # keys whose ranking kept silver's own version
    if version == 0:  # the table's first load: nothing to compare with, guard or delete
        inserted, written, rows = prepared.upsert_candidates - kept, 0, None
        if candidates is not None and inserted:
            rows = hold(candidates)  # kept: gold is built from them, not from the table read back (gold_refresh.py)
            try:
                written = append_rows(rows, lake, table)
            except BaseException:
                release(rows)
                raise
        outcome = MergeOutcome(
            inserted=inserted, merge_inserted=written, version_before=version, planned=False, rows=rows
        )
    else:
        outcome = _plan_and_merge(job, plan, prepared, candidates, listed_parents, version)
        outcome = dataclasses.replace(outcome, unchanged=outcome.unchanged + kept)
    seconds = time.monotonic() - start
    reasons = f" {json.dumps(dict(prepared.reasons), sort_keys=True)}" if prepared.reasons else ""
    log.info(
        "run %s %s: %d changed records, %d valid, %d quarantined%s, %d duplicates collapsed; silver %d inserted, "
        "%d updated, %d unchanged, %d deleted (MERGE) in %.1fs",
        plan.run_id,
        spec.name,
        prepared.validated,
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
            "rows": prepared.validated,
            "valid": prepared.valid_rows,
            "quarantined": prepared.quarantined_rows,
            "quarantine_reasons": dict(prepared.reasons),
            "duplicates": prepared.duplicates_collapsed,
            "inserted": outcome.inserted,
            "updated": outcome.updated,
            "unchanged": outcome.unchanged,
            "refreshed": outcome.refreshed,
            "deleted": outcome.deleted,
            "duration_s": round(seconds, 3),
        },
    )
    return dataclasses.replace(outcome, seconds=seconds)


def _plan_and_merge(
    job: Job,
    plan: LoadPlan,
    prepared: Prepared,
    candidates: Optional[DataFrame],
    listed_parents: DataFrame,
    version: int,
) -> MergeOutcome:
    """Plan the changed keys against their silver rows, add what the run proves gone, MERGE what changes."""
    spark, lake, spec = job.spark, job.lake, prepared.spec
    frames = []
    if candidates is not None:
        keys = candidates.select(*spec.key)
        current = read_table(spark, lake, silver_table(spec)).join(keys, on=list(spec.key), how="left_semi")
        frames.append(candidates.transform(plan_upserts(spec, current)))
    unseen = unseen_rows(spec, prepared.classified)
    present = present_keys(spec, prepared.classified, prepared.ranked)
    if unseen is not None and present is not None:
        deletions = proven_deletions(spark, lake, plan, spec, unseen, present, listed_parents)
        if deletions is not None:
            frames.append(deletions)
    if not frames:
        return MergeOutcome(version_before=version)
    changes = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1], allowMissingColumns=True)
    changes = changes.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # One job: the plan's counts, and the ids gold must build again (none for unchanged or refreshed rows).
        touching = F.col(ACTION).isin(INSERT, UPDATE, DELETE)
        grouped = (
            changes.groupBy(ACTION)
            .agg(
                F.count(F.lit(1)).alias("count"),
                F.sum(F.when(F.coalesce(F.col(WAS_DELETED), F.lit(False)), 1).otherwise(0)).alias("restored"),
                F.collect_set(F.when(touching, F.col(spec.gold.touches))).alias("touched"),
            )
            .collect()
        )
        planned = {row[ACTION]: int(row["count"]) for row in grouped}
        metrics = {"inserted": 0, "updated": 0}
        actions = tuple(a for a in (INSERT, UPDATE, DELETE, REFRESH) if planned.get(a))
        if actions:
            metrics = merge_changes(spark, lake, spec, changes.filter(F.col(ACTION) != UNCHANGED), actions)
        restored = sum(int(row["restored"] or 0) for row in grouped if row[ACTION] == UPDATE)
        return MergeOutcome(
            planned.get(INSERT, 0),
            planned.get(UPDATE, 0),
            planned.get(UNCHANGED, 0),
            planned.get(DELETE, 0),
            planned.get(REFRESH, 0),
            restored,
            metrics["inserted"],
            metrics["updated"],
            touched=frozenset(int(i) for row in grouped for i in row["touched"]),
            version_before=version,
        )
    finally:
        changes.unpersist()

"""Step 3, silver: an entity's deduplicated valid rows → its change plan → a guarded Delta MERGE.

The first load of a table appends (nothing to compare with, guard or delete). Otherwise the run's
rows are planned against silver (`changes.plan_upserts`), with what the run proves gone
(`deletions.proven_deletions`), and the planned changes are merged. Planning (`plan_silver`) and applying
(`apply_silver`) are apart so that the run can plan projects from apprenticeships' plan (their deletions
cascade, `parents_deleted_after`) while apprenticeships' MERGE runs. Returns a frozen `MergeOutcome`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from ..entities import EntitySpec
from .changes import (
    ACTION,
    ACTIONS,
    DELETE,
    INSERT,
    REFRESH,
    UNCHANGED,
    UPDATE,
    WAS_DELETED,
    deleted_after,
    plan_upserts,
    silver_rows,
)
from .classify import REVISIT
from .clean import normalize_unicode
from .context import Job
from .dedupe import RANK_COLUMN
from .deletions import deleted_rows, present_keys, proven_deletions, unseen_rows
from .delta_log import table_version
from .frames import hold, release
from .prepare import Prepared
from .read import LoadPlan
from .results import MergeOutcome
from .tables import append_rows, merge_changes, read_table, silver_table

log = logging.getLogger("multiverse_etl.transform")


@dataclass(frozen=True)
class SilverPlan:
    """An entity's changes to silver as planned, before they are applied: what `apply_silver` writes.

    A first load (the table at its version 0) has no plan: its `candidates` are appended. Otherwise `changes` are
    the planned change rows, held (`frames.hold`: computed once, against the table as it was planned against, even
    while another entity's MERGE commits), and `counts` what they plan, counted while they were held.
    """

    spec: EntitySpec
    version: int  # the table's version the plan was made against
    candidates: Optional[DataFrame] = None  # a first load's rows (lazy; `apply_silver` holds them for gold)
    changes: Optional[DataFrame] = None  # held; None: nothing planned
    counts: Mapping[str, int] = field(default_factory=dict)  # rows per action, and the updates that restore a row
    touched: frozenset[int] = frozenset()  # the `spec.gold.touches` values of inserted, updated and deleted rows
    seconds: float = 0.0

    @property
    def first_load(self) -> bool:
        return self.version == 0

    def release(self) -> None:
        release(self.changes)


def merge_silver(
    job: Job,
    plan: LoadPlan,
    prepared: Prepared,
    listed_parents: DataFrame,
    deleted_parents: Optional[DataFrame] = None,
) -> MergeOutcome:
    """One entity of one run into silver, by plan and guarded MERGE (nothing at all when nothing changed)."""
    planned = plan_silver(job, plan, prepared, listed_parents, deleted_parents)
    try:
        return apply_silver(job, plan, prepared, planned)
    finally:
        planned.release()


def plan_silver(
    job: Job,
    plan: LoadPlan,
    prepared: Prepared,
    listed_parents: DataFrame,
    deleted_parents: Optional[DataFrame] = None,
) -> SilverPlan:
    """The run's rows of one entity planned against its silver rows, with what the run proves gone (projects:
    `deleted_parents` as `deletions.proven_deletions` takes them). The caller releases the plan."""
    start = time.monotonic()
    spec = prepared.spec
    version = table_version(job.lake.storage, silver_table(spec))
    candidates = None
    if prepared.ranked is not None:
        candidates = (
            prepared.ranked.filter((F.col(RANK_COLUMN) == 1) & ~F.col(REVISIT))
            .drop(REVISIT)
            .transform(normalize_unicode(spec))
            .transform(silver_rows(spec))
        )
    if version == 0:  # the table's first load: nothing to compare with, guard or delete
        return SilverPlan(spec, version, candidates=candidates, seconds=time.monotonic() - start)
    planned = _plan(job, plan, prepared, candidates, listed_parents, deleted_parents, version)
    return dataclasses.replace(planned, seconds=time.monotonic() - start)


def apply_silver(job: Job, plan: LoadPlan, prepared: Prepared, planned: SilverPlan) -> MergeOutcome:
    """A planned entity into silver: appended (its first load) or MERGEd; what the plan and Delta say was done."""
    lake, spec = job.lake, prepared.spec
    start = time.monotonic()
    table = silver_table(spec)
    kept = prepared.revisit_winners  # keys whose ranking kept silver's own version
    if planned.first_load:
        inserted, written, rows = prepared.upsert_candidates - kept, 0, None
        if planned.candidates is not None and inserted:
            # kept: gold is built from them, not from the table read back (gold_refresh.py)
            rows = hold(planned.candidates)
            try:
                written = append_rows(rows, lake, table)
            except BaseException:
                release(rows)
                raise
        outcome = MergeOutcome(
            inserted=inserted, merge_inserted=written, version_before=planned.version, planned=False, rows=rows
        )
    else:
        outcome = _merge(job, planned)
        outcome = dataclasses.replace(outcome, unchanged=outcome.unchanged + kept)
    seconds = planned.seconds + time.monotonic() - start  # planning and applying, apart when run apart
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


def _plan(
    job: Job,
    plan: LoadPlan,
    prepared: Prepared,
    candidates: Optional[DataFrame],
    listed_parents: DataFrame,
    deleted_parents: Optional[DataFrame],
    version: int,
) -> SilverPlan:
    """Plan the changed keys against their silver rows and add what the run proves gone; held and counted."""
    spark, lake, spec = job.spark, job.lake, prepared.spec
    frames = []
    if candidates is not None:
        keys = candidates.select(*spec.key)
        current = read_table(spark, lake, silver_table(spec)).join(keys, on=list(spec.key), how="left_semi")
        frames.append(candidates.transform(plan_upserts(spec, current)))
    unseen = unseen_rows(spec, prepared.classified)
    present = present_keys(spec, prepared.classified, prepared.ranked)
    if unseen is not None and present is not None:
        deletions = proven_deletions(spark, lake, plan, spec, unseen, present, listed_parents, deleted_parents)
        if deletions is not None:
            frames.append(deletions)
    if not frames:
        return SilverPlan(spec, version)
    changes = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1], allowMissingColumns=True)
    # One job: the plan held (never computed again, whatever the run writes next) and counted while it is held.
    counted = Observation(f"plan_{uuid.uuid4().hex[:8]}")
    changes = hold(changes.observe(counted, *plan_counts(spec)))
    row = counted.get
    counts = {name: int(str(row.get(name) or 0)) for name in (*ACTIONS, "restored")}
    touched = frozenset(int(i) for i in json.loads(str(row.get("touched") or "[]")))
    return SilverPlan(spec, version, changes=changes, counts=counts, touched=touched)


def plan_counts(spec: EntitySpec) -> list[Column]:
    """Aggregates over a plan, fit for `observe`: rows per action, updates that restore a deleted row, and the
    `spec.gold.touches` values gold must build again (none for unchanged or refreshed rows), as JSON text."""
    action = F.col(ACTION)
    count = lambda condition: F.sum(F.when(condition, 1).otherwise(0))  # noqa: E731
    touching = action.isin(INSERT, UPDATE, DELETE)
    return [
        *[count(action == name).alias(name) for name in ACTIONS],
        count((action == UPDATE) & F.coalesce(F.col(WAS_DELETED), F.lit(False))).alias("restored"),
        F.to_json(F.collect_set(F.when(touching, F.col(spec.gold.touches)))).alias("touched"),
    ]


def _merge(job: Job, planned: SilverPlan) -> MergeOutcome:
    """MERGE what the plan changes (nothing when it changes nothing); the plan's counts and Delta's."""
    counts, version = planned.counts, planned.version
    metrics = {"inserted": 0, "updated": 0}
    actions = tuple(a for a in (INSERT, UPDATE, DELETE, REFRESH) if counts.get(a))
    if actions and planned.changes is not None:
        changes = planned.changes.filter(F.col(ACTION) != UNCHANGED)
        metrics = merge_changes(job.spark, job.lake, planned.spec, changes, actions)
    return MergeOutcome(
        counts.get(INSERT, 0),
        counts.get(UPDATE, 0),
        counts.get(UNCHANGED, 0),
        counts.get(DELETE, 0),
        counts.get(REFRESH, 0),
        counts.get("restored", 0),
        metrics["inserted"],
        metrics["updated"],
        touched=planned.touched,
        version_before=version,
    )


def parents_deleted_after(job: Job, planned: SilverPlan) -> Optional[DataFrame]:
    """A parent entity's deleted rows as they will be once its plan is merged (`changes.deleted_after`), for its
    children to cascade from while its MERGE runs; None on its first load (nothing deleted before or by it)."""
    if planned.first_load:
        return None
    return deleted_after(planned.spec, deleted_rows(job.spark, job.lake, planned.spec), planned.changes)

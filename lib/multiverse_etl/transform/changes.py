"""What a run changes in silver: the plan a guarded Delta MERGE then applies.

Each deduplicated record of the run is compared with the current silver row of its key:

* `insert`    – the key is new;
* `update`    – the record is newer (apprenticeships: later `modified_date`, a tie broken by a
                later extraction; others: a later extraction) *and* its content differs, or the
                row was deleted and the record was extracted after the deletion (it came back);
* `refresh`   – the same content, extracted later, from a landed version of another fingerprint (its text
                differs in a way cleaning removes, or the fingerprint's rules changed): only the row's
                fingerprint is updated, so that the next landing of this version is classified unchanged;
* `unchanged` – anything else: an older record (replaying an old run) or the same content.

A run that lists an entity completely also proves what is gone: a live row that the listing
does not hold (valid or quarantined), last seen before the run started, is `delete`d (marked,
never removed: `is_deleted`, `deleted_at`, `deleted_by_run_id`). For projects the listing of
each parent apprenticeship is complete on its own, and the projects of a deleted apprenticeship
are deleted with it. Because every rule compares extraction times, replaying an old run plans
nothing, and running the same run twice plans nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..entities import EntitySpec
from .clean import month_start
from .schemas import silver_schema

ACTION = "_action"
INSERT, UPDATE, UNCHANGED, DELETE, REFRESH = "insert", "update", "unchanged", "delete", "refresh"
ACTIONS = (INSERT, UPDATE, UNCHANGED, DELETE, REFRESH)
WAS_DELETED = "_was_deleted"  # an update of a deleted row brings it back (live rows: + inserted + restored - deleted)


def record_hash(spec: EntitySpec) -> Column:
    """A 64-bit hash of the business columns: an unchanged record is not rewritten (every business column is non-null)."""
    return F.xxhash64(*[F.col(c) for c in spec.business_columns])


def silver_rows(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Deduplicated valid cleaned rows → silver rows (`schemas.silver_schema`), live, with lineage and hash."""
    schema = silver_schema(spec)
    partition = spec.silver_partition
    partition_value = month_start(F.col(partition.source)) if partition.monthly else F.col(partition.source)

    def step(deduped: DataFrame) -> DataFrame:
        derived = {
            partition.name: partition_value,
            "is_deleted": F.lit(False),
            "deleted_at": F.lit(None).cast("timestamp"),
            "deleted_by_run_id": F.lit(None).cast("string"),
            "record_hash": record_hash(spec),
        }
        columns = []
        for field in schema.fields:
            value = derived.get(field.name)
            columns.append(value.alias(field.name) if value is not None else F.col(field.name))
        return deduped.select(*columns)

    return step


def update_condition(spec: EntitySpec, source: str = "s.", target: str = "t.") -> str:
    """SQL: the run's record replaces the current row (shared by the plan and the MERGE guard).

    `source`/`target` are column prefixes: "s."/"t." inside the MERGE, ""/"_t_" in the plan.
    """
    s, t = source, target
    later_extraction = f"{s}extracted_at > {t}extracted_at"
    marker = spec.change_marker
    if marker is not None:
        newer = f"{s}{marker} > {t}{marker} OR ({s}{marker} = {t}{marker} AND {later_extraction})"
    else:
        newer = later_extraction
    return (
        f"(({t}is_deleted AND {s}extracted_at > {t}deleted_at) OR "
        f"(NOT {t}is_deleted AND {s}record_hash <> {t}record_hash AND ({newer})))"
    )


def refresh_condition(source: str = "s.", target: str = "t.") -> str:
    """SQL: the landed version has the live row's content, is no older, and another fingerprint."""
    s, t = source, target
    return (
        f"(NOT {t}is_deleted AND {s}record_hash = {t}record_hash AND {s}extracted_at > {t}extracted_at "
        f"AND ({t}fingerprint IS NULL OR {s}fingerprint <> {t}fingerprint))"
    )


def delete_condition(source: str = "s.", target: str = "t.") -> str:
    """SQL: a deletion applies to a live row last seen before it (a replayed old run deletes nothing newer)."""
    return f"(NOT {target}is_deleted AND {target}extracted_at < {source}deleted_at)"


def plan_upserts(spec: EntitySpec, current: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Silver rows of a run → the same rows with `_action` insert, update or unchanged against `current`."""
    keys = list(spec.key)
    compared = [
        *([spec.change_marker] if spec.change_marker else []),
        "extracted_at",
        "record_hash",
        "is_deleted",
        "deleted_at",
        "fingerprint",
    ]

    def step(candidates: DataFrame) -> DataFrame:
        target = current.select(
            *keys,
            F.lit(True).alias("_t_exists"),
            *[F.col(name).alias(f"_t_{name}") for name in compared if name in current.columns],
        )
        joined = candidates.join(target, on=keys, how="left")
        action = (
            F.when(F.col("_t_exists").isNull(), F.lit(INSERT))
            .when(F.expr(update_condition(spec, source="", target="_t_")), F.lit(UPDATE))
            .when(F.expr(refresh_condition(source="", target="_t_")), F.lit(REFRESH))
            .otherwise(F.lit(UNCHANGED))
        )
        was_deleted = F.coalesce(F.col("_t_is_deleted"), F.lit(False))
        return joined.select(*candidates.columns, action.alias(ACTION), was_deleted.alias(WAS_DELETED))

    return step


def _as_deletions(spec: EntitySpec, gone: DataFrame) -> DataFrame:
    """Rows (keys, deleted_at, deleted_by_run_id) → the change rows that mark them deleted."""
    keep = set(spec.key) | {"deleted_at", "deleted_by_run_id"}
    columns = [
        F.col(f.name)
        if f.name in keep
        else (F.lit(True) if f.name == "is_deleted" else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in silver_schema(spec).fields
    ]
    return gone.select(*columns, F.lit(DELETE).alias(ACTION), F.lit(False).alias(WAS_DELETED))


def plan_deletions(
    spec: EntitySpec,
    current: DataFrame,
    present: DataFrame,
    run_id: str,
    run_started_at: dt.datetime,
    listed_parents: Optional[DataFrame] = None,
    deleted_parents: Optional[DataFrame] = None,
) -> DataFrame:
    """Change rows that mark live rows deleted because this run proves them gone.

    `present`: the keys of every record of the run with a readable id (valid or quarantined).
    An entity without a parent (apprenticeships, programmes): pass only for a complete listing.
    Projects (`DeletionPolicy.within_parent`): `listed_parents` (apprenticeship_id) whose listings
    this run holds, and `deleted_parents` (apprenticeship_id, deleted_at, deleted_by_run_id) whose
    projects go with them.
    """
    keys = list(spec.key)
    started = F.lit(run_started_at).cast("timestamp")
    live = current.filter(~F.col("is_deleted"))
    if not spec.deletion.within_parent:
        gone = (
            live.filter(F.col("extracted_at") < started)
            .join(present, on=keys, how="left_anti")
            .select(*keys, started.alias("deleted_at"), F.lit(run_id).alias("deleted_by_run_id"))
        )
        return _as_deletions(spec, gone)
    frames = []
    if listed_parents is not None:
        frames.append(
            live.filter(F.col("extracted_at") < started)
            .join(listed_parents.select("apprenticeship_id").distinct(), on="apprenticeship_id", how="left_semi")
            .join(present, on=keys, how="left_anti")
            .select(*keys, started.alias("deleted_at"), F.lit(run_id).alias("deleted_by_run_id"))
        )
    if deleted_parents is not None:
        parents = deleted_parents.select(
            "apprenticeship_id",
            F.col("deleted_at").alias("_p_deleted_at"),
            F.col("deleted_by_run_id").alias("_p_run_id"),
        )
        cascade = (
            live.join(parents, on="apprenticeship_id", how="inner")
            .filter(F.col("extracted_at") < F.col("_p_deleted_at"))
            .join(present, on=keys, how="left_anti")
            .select(*keys, F.col("_p_deleted_at").alias("deleted_at"), F.col("_p_run_id").alias("deleted_by_run_id"))
        )
        if frames:
            cascade = cascade.join(frames[0].select(*keys), on=keys, how="left_anti")
        frames.append(cascade)
    if not frames:
        return _as_deletions(
            spec, live.limit(0).select(*keys, started.alias("deleted_at"), F.lit(run_id).alias("deleted_by_run_id"))
        )
    gone = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    return _as_deletions(spec, gone)


def deleted_after(spec: EntitySpec, deleted_before: DataFrame, planned: Optional[DataFrame]) -> DataFrame:
    """The rows (keys, deleted_at, deleted_by_run_id) that are deleted once `planned` (change rows with `_action`) is
    merged into a table whose deleted rows are `deleted_before`: those the plan does not touch, and its deletions.

    An update brings a deleted row back; a deletion marks it with the plan's time and run. A key the plan updates or
    deletes takes its state from the plan, so the answer is the same whether `deleted_before` is read before the
    MERGE or after it: what lets projects plan their cascade while apprenticeships' MERGE runs.
    """
    keys = list(spec.key)
    before = deleted_before.select(*keys, "deleted_at", "deleted_by_run_id")
    if planned is None:
        return before
    touched = planned.where(F.col(ACTION).isin(UPDATE, DELETE)).select(
        *keys,
        F.col(ACTION).alias("_p_action"),
        F.col("deleted_at").alias("_p_deleted_at"),
        F.col("deleted_by_run_id").alias("_p_run_id"),
    )
    joined = before.join(touched, on=keys, how="full_outer")
    deleted_here = F.col("_p_action") == DELETE
    return joined.where(F.col("_p_action").isNull() | deleted_here).select(
        *keys,
        F.when(deleted_here, F.col("_p_deleted_at")).otherwise(F.col("deleted_at")).alias("deleted_at"),
        F.when(deleted_here, F.col("_p_run_id")).otherwise(F.col("deleted_by_run_id")).alias("deleted_by_run_id"),
    )

"""Step 3b, deletions: what a run proves gone, by the entity's `DeletionPolicy` (changes.plan_deletions plans them).

Only live rows that no landed record matched (`unseen_rows`) can be gone: a row whose version was
landed again is present by definition. Presence counts every record whose id can be read, valid or not.
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..entities import BY_NAME, PARENT_COLUMN, EntitySpec
from ..lake import Lake
from .changes import plan_deletions
from .classify import CLASS, KNOWN_BAD, KNOWN_EXTRACTED_AT, REVISIT, UNCHANGED, UNSEEN
from .clean import to_integer
from .read import LoadPlan, parse_id_list
from .tables import read_table, silver_table


def proven_deletions(
    spark: SparkSession,
    lake: Lake,
    plan: LoadPlan,
    spec: EntitySpec,
    unseen: DataFrame,
    present: DataFrame,
    listed_parents: DataFrame,
    deleted_parents: Optional[DataFrame] = None,
) -> Optional[DataFrame]:
    """The change rows of what this run proves gone, or None when it proves nothing.

    A complete listing of the entity, or of a child entity (which holds one listing, maybe empty, per
    parent of the source: an incremental run with projects_scope 'all'), shows every id the source
    has. Within a parent (projects): each listed parent's listing is complete, and the rows of a
    deleted parent go with them: `deleted_parents` (keys, deleted_at, deleted_by_run_id) as they are once the
    parent's own MERGE is done (`changes.deleted_after`); None: as silver holds them now.
    """
    if spec.deletion.within_parent:
        if deleted_parents is None:
            deleted_parents = deleted_rows(spark, lake, BY_NAME[str(spec.parent)])
        return plan_deletions(
            spec,
            unseen,
            present,
            plan.run_id,
            plan.started_at,
            listed_parents=listed_parents,
            deleted_parents=deleted_parents,
        )
    proving = [name for name in spec.deletion.complete_listings if plan.complete_listing.get(name)]
    if not proving:
        return None
    if any(BY_NAME[name].parent == spec.name for name in proving):  # a child's complete listing shows its parents
        present = present.unionByName(listed_parents)
    return plan_deletions(spec, unseen, present, plan.run_id, plan.started_at)


def deleted_rows(spark: SparkSession, lake: Lake, spec: EntitySpec) -> DataFrame:
    """Silver's deleted rows of an entity: keys, deleted_at, deleted_by_run_id."""
    return (
        read_table(spark, lake, silver_table(spec))
        .filter(F.col("is_deleted"))
        .select(*spec.key, "deleted_at", "deleted_by_run_id")
    )


def keys_of_ranked(spec: EntitySpec, ranked: DataFrame) -> DataFrame:
    """Keys of validated records whose id can be read (valid or quarantined)."""
    parent_keys = [F.col(PARENT_COLUMN).alias(k) for k in spec.key[:-1]]  # the key within a parent starts with it
    return ranked.select(*parent_keys, to_integer(F.col("record_id")).alias(spec.id_column))


def listed_parents(
    spark: SparkSession, classified: Optional[DataFrame], child: EntitySpec, empty_parents: Optional[str]
) -> DataFrame:
    """Parent ids whose children this run listed: parents of landed children and of empty listings."""
    parent_key = BY_NAME[str(child.parent)].id_column
    schema = T.StructType([T.StructField(parent_key, T.LongType(), True)])
    empty = spark.createDataFrame([(pid,) for pid in parse_id_list(empty_parents)], schema)
    if classified is None:
        return empty
    landed = classified.where(F.col(CLASS) != UNSEEN).select(F.col(PARENT_COLUMN).alias(parent_key))
    return landed.unionByName(empty).where(F.col(parent_key).isNotNull()).distinct()


def present_keys(spec: EntitySpec, classified: Optional[DataFrame], ranked: Optional[DataFrame]) -> Optional[DataFrame]:
    """Keys of every record of the run whose id can be read (unchanged, known bad, changed valid or not), from an
    entity's classification and ranked rows (`prepare.Prepared`); None: the entity landed nothing."""
    if classified is None:
        return None
    known = classified.where(F.col(CLASS).isin(UNCHANGED, KNOWN_BAD)).select(*spec.key)
    if ranked is not None:
        known = known.unionByName(keys_of_ranked(spec, ranked.where(~F.col(REVISIT))))
    condition = F.lit(True)
    for k in spec.key:
        condition = condition & F.col(k).isNotNull()
    return known.where(condition)


def unseen_rows(spec: EntitySpec, classified: Optional[DataFrame]) -> Optional[DataFrame]:
    """Live silver rows no landed record matched (keys, extracted_at): the only rows this run can prove gone."""
    if classified is None:
        return None
    return classified.where(F.col(CLASS) == UNSEEN).select(
        *spec.key, F.col(KNOWN_EXTRACTED_AT).alias("extracted_at"), F.lit(False).alias("is_deleted")
    )

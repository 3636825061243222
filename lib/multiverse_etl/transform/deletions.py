"""Step 3b, deletions: what a run proves gone, by the entity's `DeletionPolicy` (changes.plan_deletions plans them)."""

from __future__ import annotations

from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..entities import BY_NAME, PARENT_COLUMN, EntitySpec
from .changes import plan_deletions
from .clean import to_integer
from .read import LoadPlan, parse_id_list
from .tables import Lake, bronze_table, read_run_rows, read_table, silver_table


def proven_deletions(
    spark: SparkSession,
    lake: Lake,
    plan: LoadPlan,
    spec: EntitySpec,
    ranked: DataFrame,
    current: DataFrame,
    listed_parents: DataFrame,
) -> Optional[DataFrame]:
    """The change rows of what this run proves gone, or None when it proves nothing.

    A complete listing of the entity, or of a child entity (which holds one listing, maybe empty, per
    parent of the source: an incremental run with projects_scope 'all'), shows every id the source
    has. Within a parent (projects): each listed parent's listing is complete, and the rows of a
    deleted parent go with it.
    """
    present = present_keys(spec, ranked)
    if spec.deletion.within_parent:
        parent = BY_NAME[str(spec.parent)]
        deleted_parents = (
            read_table(spark, lake, silver_table(parent))
            .filter(F.col("is_deleted"))
            .select(*parent.key, "deleted_at", "deleted_by_run_id")
        )
        return plan_deletions(
            spec,
            current,
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
    return plan_deletions(spec, current, present, plan.run_id, plan.started_at)


def present_keys(spec: EntitySpec, ranked: DataFrame) -> DataFrame:
    """Keys of every record of the run whose id can be read (valid or quarantined): they are not gone."""
    parent_keys = [F.col(PARENT_COLUMN).alias(k) for k in spec.key[:-1]]  # the key within a parent starts with it
    keyed = ranked.select(*parent_keys, to_integer(F.col("record_id")).alias(spec.id_column))
    condition = F.col(spec.key[0]).isNotNull()
    for k in spec.key[1:]:
        condition = F.col(k).isNotNull() & condition
    return keyed.where(condition)


def listed_parents(
    spark: SparkSession, lake: Lake, plan: LoadPlan, child: EntitySpec, empty_parents: Optional[str]
) -> DataFrame:
    """Parent ids whose children this run listed: parents of landed children and of empty listings."""
    parent_key = BY_NAME[str(child.parent)].id_column
    landed = read_run_rows(spark, lake, bronze_table(child), plan.run_id, plan.ingest_date).select(
        F.col(PARENT_COLUMN).alias(parent_key)
    )
    schema = T.StructType([T.StructField(parent_key, T.LongType(), True)])
    empty = spark.createDataFrame([(pid,) for pid in parse_id_list(empty_parents)], schema)
    return landed.unionByName(empty).where(F.col(parent_key).isNotNull()).distinct()

"""Incremental gold: build again only the gold rows of the apprenticeships whose inputs changed.

A gold/apprenticeships row depends on its apprenticeship, its programme's attributes and its live
projects; a gold/apprenticeship_projects row on its project, its apprenticeship and that
apprenticeship's programme. Both tables are keyed by apprenticeship id first, so one set of
*touched* apprenticeship ids covers both: the apprenticeships the silver MERGEs inserted, updated
or deleted, the parents of every project they inserted, updated or deleted, and every
apprenticeship of a programme that changed (each entity's `gold.touches`). Their rows are built
from silver exactly as a full rebuild builds them (`gold.build_*`, restricted to those ids) and
MERGEd into gold: a new row is inserted, a touched one replaced, one no longer built (deleted, no
longer live) deleted. No other row can have changed, so gold equals a full rebuild
(tests/test_gold_incremental.py checks it over generations 0 → 3 of the replica's data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..entities import APPRENTICESHIPS, EntitySpec
from .gold import build_gold_apprenticeship_projects, build_gold_apprenticeships
from .merge import MergeOutcome
from .tables import silver_table

GOLD_OP = "_gold_op"  # 'upsert' (a row built again) or 'delete' (a current row no longer built)
_ID = APPRENTICESHIPS.id_column


@dataclass(frozen=True)
class SilverChanges:
    """What a job's silver MERGEs changed, as gold needs it (assembled from the returned MergeOutcomes)."""

    touched: Mapping[str, frozenset[int]] = field(default_factory=dict)  # a `gold.touches` column → its ids
    versions_before: Mapping[str, int] = field(default_factory=dict)  # silver table → version before the job
    complete: bool = True  # False once a table was loaded without a plan (a first load): gold is rebuilt

    @classmethod
    def of(cls, outcomes: Mapping[EntitySpec, MergeOutcome]) -> SilverChanges:
        touched: dict[str, frozenset[int]] = {}
        for spec, outcome in outcomes.items():
            touched[spec.gold.touches] = touched.get(spec.gold.touches, frozenset()) | outcome.touched
        return cls(
            {column: ids for column, ids in touched.items() if ids},
            {silver_table(s): o.version_before for s, o in outcomes.items() if o.version_before is not None},
            all(o.planned for o in outcomes.values()),
        )

    def then(self, later: SilverChanges) -> SilverChanges:
        """This job's changes followed by a later run's (the earliest version of each table is kept)."""
        columns = set(self.touched) | set(later.touched)
        return dataclasses.replace(
            self,
            touched={c: self.touched.get(c, frozenset()) | later.touched.get(c, frozenset()) for c in columns},
            versions_before={**later.versions_before, **self.versions_before},
            complete=self.complete and later.complete,
        )

    @property
    def empty(self) -> bool:
        return not any(self.touched.values())

    def describe(self) -> str:
        return ", ".join(f"{len(ids)} {column}" for column, ids in sorted(self.touched.items())) or "nothing"


def touched_apprenticeships(spark: SparkSession, changes: SilverChanges, apprenticeships: DataFrame) -> DataFrame:
    """One column, apprenticeship_id: the touched ids, and every apprenticeship (live or not) of a touched value of
    another column (a programme)."""
    schema = T.StructType([T.StructField(_ID, T.LongType(), False)])
    ids = spark.createDataFrame([(i,) for i in sorted(changes.touched.get(_ID, ()))], schema)
    for column, values in sorted(changes.touched.items()):
        if column != _ID and values:
            of_values = spark.createDataFrame([(v,) for v in sorted(values)], f"{column} bigint")
            ids = ids.unionByName(apprenticeships.join(F.broadcast(of_values), on=column, how="left_semi").select(_ID))
    return ids.distinct()


def rebuilt_rows(
    ids: DataFrame, apprenticeships: DataFrame, projects: DataFrame, programmes: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """Both gold tables' rows of the touched apprenticeships, built as a full rebuild builds them."""
    keep = F.broadcast(ids)
    some_apprenticeships = apprenticeships.join(keep, on=_ID, how="left_semi")
    some_projects = projects.join(keep, on=_ID, how="left_semi")
    return (
        build_gold_apprenticeships(some_apprenticeships, programmes, some_projects),
        build_gold_apprenticeship_projects(some_projects, some_apprenticeships, programmes),
    )


def gold_merge_source(built: DataFrame, current: DataFrame, keys: tuple[str, ...], ids: DataFrame) -> DataFrame:
    """The MERGE source of one gold table: the rows built again ('upsert') and the keys of the touched
    apprenticeships' current rows that are no longer built ('delete')."""
    gone = (
        current.join(F.broadcast(ids), on=_ID, how="left_semi")
        .select(*keys)
        .join(built.select(*keys), on=list(keys), how="left_anti")
    )
    deletions = gone.select(
        *[F.col(c) if c in keys else F.lit(None).cast(built.schema[c].dataType).alias(c) for c in built.columns],
        F.lit("delete").alias(GOLD_OP),
    )
    return built.withColumn(GOLD_OP, F.lit("upsert")).unionByName(deletions)

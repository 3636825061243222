"""Gold: the current, live state joined for analysis, built whole or again only where silver changed.

Deleted rows never reach gold. Joins are left joins from the entity the table is about, so an
apprenticeship whose programme is unknown, or with no projects, and a project whose
apprenticeship is unknown (its record was quarantined) are kept and flagged, never lost:
`programme_known`, `has_projects`, `apprenticeship_known`.

Incremental gold builds again only the gold rows of the apprenticeships whose inputs changed.
A gold/apprenticeships row depends on its apprenticeship, its programme's attributes and its live
projects; a gold/apprenticeship_projects row on its project, its apprenticeship and that
apprenticeship's programme. Both tables are keyed by apprenticeship id first, so one set of
*touched* apprenticeship ids covers both: the apprenticeships the silver MERGEs inserted, updated
or deleted, the parents of every project they inserted, updated or deleted, and every
apprenticeship of a programme that changed (each entity's `gold.touches`). Their rows are built
from silver exactly as a full rebuild builds them (`build_*`, restricted to those ids) and
MERGEd into gold: a new row is inserted, a touched one replaced, one no longer built (deleted, no
longer live) deleted. No other row can have changed, so gold equals a full rebuild
(tests/test_gold_incremental.py checks it over generations 0 → 3 of the replica's data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..entities import APPRENTICESHIPS, STATUSES, EntitySpec
from .frames import release
from .results import MergeOutcome
from .schemas import GOLD_APPRENTICESHIP_PROJECTS_SCHEMA, GOLD_APPRENTICESHIPS_SCHEMA
from .tables import silver_table


def live(silver: DataFrame) -> DataFrame:
    """Rows the source still has."""
    return silver.filter(~F.col("is_deleted"))


def project_counts(projects: DataFrame) -> DataFrame:
    """Live projects → one row per apprenticeship: total and per-status counts."""
    return (
        live(projects)
        .groupBy("apprenticeship_id")
        .agg(
            F.count(F.lit(1)).alias("projects_total"),
            *[
                F.sum(F.when(F.col("status") == status, 1).otherwise(0)).cast("bigint").alias(f"projects_{status}")
                for status in STATUSES
            ],
        )
    )


def _programme_attributes(programmes: DataFrame) -> DataFrame:
    return live(programmes).select(
        "programme_id",
        F.lit(True).alias("_programme_found"),
        F.col("name").alias("programme_name"),
        F.col("duration").alias("programme_duration"),
        F.col("description").alias("programme_description"),
    )


def build_gold_apprenticeships(apprenticeships: DataFrame, programmes: DataFrame, projects: DataFrame) -> DataFrame:
    """One row per live apprenticeship: its cleaned fields, programme name and duration, project counts by status."""
    counts = project_counts(projects)
    joined = (
        live(apprenticeships)
        .join(_programme_attributes(programmes), on="programme_id", how="left")
        .join(counts, on="apprenticeship_id", how="left")
    )
    filled = {
        name: F.coalesce(F.col(name), F.lit(0).cast("bigint"))
        for name in ("projects_total", *[f"projects_{status}" for status in STATUSES])
    }
    derived = {
        **filled,
        "programme_known": F.col("_programme_found").isNotNull(),
        "has_projects": F.coalesce(F.col("projects_total"), F.lit(0)) > 0,
    }
    return joined.select(
        *[
            (derived[f.name] if f.name in derived else F.col(f.name)).alias(f.name)
            for f in GOLD_APPRENTICESHIPS_SCHEMA.fields
        ]
    )


def build_gold_apprenticeship_projects(
    projects: DataFrame, apprenticeships: DataFrame, programmes: DataFrame
) -> DataFrame:
    """One row per live project: its cleaned fields with its apprenticeship's and programme's attributes."""
    parents = live(apprenticeships).select(
        "apprenticeship_id",
        F.lit(True).alias("_apprenticeship_found"),
        F.col("name").alias("apprenticeship_name"),
        "first_name",
        "last_name",
        "email_address",
        "email_is_valid",
        "modified_date",
        "programme_id",
        "modified_month",
    )
    joined = (
        live(projects)
        .join(parents, on="apprenticeship_id", how="left")
        .join(_programme_attributes(programmes), on="programme_id", how="left")
    )
    derived = {
        "apprenticeship_known": F.col("_apprenticeship_found").isNotNull(),
        "programme_known": F.col("_programme_found").isNotNull(),
    }
    return joined.select(
        *[
            (derived[f.name] if f.name in derived else F.col(f.name)).alias(f.name)
            for f in GOLD_APPRENTICESHIP_PROJECTS_SCHEMA.fields
        ]
    )


# ---------------------------------------------------------------- incremental gold

GOLD_OP = "_gold_op"  # 'upsert' (a row built again) or 'delete' (a current row no longer built)
_ID = APPRENTICESHIPS.id_column


@dataclass(frozen=True)
class SilverChanges:
    """What a job's silver MERGEs changed, as gold needs it (assembled from the returned MergeOutcomes)."""

    touched: Mapping[str, frozenset[int]] = field(default_factory=dict)  # a `gold.touches` column → its ids
    versions_before: Mapping[str, int] = field(default_factory=dict)  # silver table → version before the job
    complete: bool = True  # False once a table was loaded without a plan (a first load): gold is rebuilt
    # silver table → the rows a first load appended to it (held; `MergeOutcome.rows`), until `release`
    appended: Mapping[str, DataFrame] = field(default_factory=dict)

    @classmethod
    def of(cls, outcomes: Mapping[EntitySpec, MergeOutcome]) -> SilverChanges:
        touched: dict[str, frozenset[int]] = {}
        for spec, outcome in outcomes.items():
            touched[spec.gold.touches] = touched.get(spec.gold.touches, frozenset()) | outcome.touched
        return cls(
            {column: ids for column, ids in touched.items() if ids},
            {silver_table(s): o.version_before for s, o in outcomes.items() if o.version_before is not None},
            all(o.planned for o in outcomes.values()),
            {silver_table(s): o.rows for s, o in outcomes.items() if o.rows is not None},
        )

    def then(self, later: SilverChanges) -> SilverChanges:
        """This job's changes followed by a later run's (the earliest version of each table is kept)."""
        columns = set(self.touched) | set(later.touched)
        return dataclasses.replace(
            self,
            touched={c: self.touched.get(c, frozenset()) | later.touched.get(c, frozenset()) for c in columns},
            versions_before={**later.versions_before, **self.versions_before},
            complete=self.complete and later.complete,
            appended={**self.appended, **later.appended},  # a table is appended once: by its first load
        )

    def silver(self, table: str, version: int) -> Optional[DataFrame]:
        """Silver `table` at `version` from the rows this job appended, if that version is their commit (a table is
        created empty at version 0 and first appended to at 1; any later commit changed it); else None."""
        return self.appended.get(table) if version == 1 else None

    def release(self) -> None:
        """Free the appended rows held for gold; `silver` must not be used after."""
        for rows in self.appended.values():
            release(rows)

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

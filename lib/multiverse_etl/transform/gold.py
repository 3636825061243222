"""Gold: the current, live state joined for analysis (rebuilt from silver after every load).

Deleted rows never reach gold. Joins are left joins from the entity the table is about, so an
apprenticeship whose programme is unknown, or with no projects, and a project whose
apprenticeship is unknown (its record was quarantined) are kept and flagged, never lost:
`programme_known`, `has_projects`, `apprenticeship_known`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..entities import STATUSES
from .schemas import GOLD_APPRENTICESHIP_PROJECTS_SCHEMA, GOLD_APPRENTICESHIPS_SCHEMA


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

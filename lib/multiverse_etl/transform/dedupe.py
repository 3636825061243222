"""Deterministic deduplication: one version per key, chosen by a total order (never dropDuplicates).

The source repeats rows: an offset-paginated list that shifts while it is read serves a row
twice in one run, and every run serves unchanged rows again. Apprenticeships keep the latest
`modified_date` (a tie goes to the latest extraction); projects and programmes, which carry no
change marker, keep the latest extraction. The rest of the order (landing file, page, position
in the page) only breaks exact ties, so the same input always keeps the same row.
"""

from __future__ import annotations

from typing import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..entities import EntitySpec
from .quarantine import is_valid

RANK_COLUMN = "version_rank"


def latest_first(spec: EntitySpec) -> list[Column]:
    """The entity's version order (`EntitySpec.version_order`), latest first."""
    return [F.col(name).desc() for name in spec.version_order]


def rank_versions(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """Cleaned rows + `version_rank` (1 = the version kept) for valid rows; null for rows that break the contract."""

    def step(cleaned: DataFrame) -> DataFrame:
        valid = is_valid(F.col("reasons"))
        window = Window.partitionBy(valid, *[F.col(k) for k in spec.key]).orderBy(*latest_first(spec))
        ranked = cleaned.withColumn(RANK_COLUMN, F.when(valid, F.row_number().over(window)))
        return ranked.select(*cleaned.columns, RANK_COLUMN)

    return step

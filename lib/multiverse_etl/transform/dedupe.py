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

from .quarantine import is_valid
from .schemas import KEYS

_EXTRACTION_ORDER = ("extracted_at", "landing_file", "page_index", "record_index")
VERSION_ORDER: dict[str, tuple[str, ...]] = {
    "apprenticeships": ("modified_date", *_EXTRACTION_ORDER),
    "projects": _EXTRACTION_ORDER,
    "programmes": _EXTRACTION_ORDER,
}
RANK_COLUMN = "version_rank"


def latest_first(entity: str) -> list[Column]:
    return [F.col(name).desc() for name in VERSION_ORDER[entity]]


def rank_versions(entity: str) -> Callable[[DataFrame], DataFrame]:
    """Cleaned rows + `version_rank` (1 = the version kept) for valid rows; null for rows that break the contract."""

    def step(cleaned: DataFrame) -> DataFrame:
        valid = is_valid(F.col("reasons"))
        window = Window.partitionBy(valid, *[F.col(k) for k in KEYS[entity]]).orderBy(*latest_first(entity))
        ranked = cleaned.withColumn(RANK_COLUMN, F.when(valid, F.row_number().over(window)))
        return ranked.select(*cleaned.columns, RANK_COLUMN)

    return step


def dedupe_latest(entity: str) -> Callable[[DataFrame], DataFrame]:
    """Valid cleaned rows → one row per key: the latest version (see module doc)."""

    def step(cleaned: DataFrame) -> DataFrame:
        ranked = cleaned.transform(rank_versions(entity))
        return ranked.filter(F.col(RANK_COLUMN) == 1).select(*cleaned.columns)

    return step

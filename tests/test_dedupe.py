"""Deduplication keeps one version per key by a total order: the same input always keeps the same row."""

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import types as T

from multiverse_etl.entities import entity as spec_of
from multiverse_etl.transform.dedupe import rank_versions
from support.landed import kept_versions

UTC = dt.timezone.utc
D1, D2, D3 = (dt.datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3))
T1, T2, T3 = (dt.datetime(2026, 3, 2, 9, 0, s, tzinfo=UTC) for s in (1, 2, 3))
PART0, PART1 = (
    "raw/apprenticeships/ingest_date=2026-03-02/run_id=r/part-00000.jsonl.gz",
    "raw/apprenticeships/ingest_date=2026-03-02/run_id=r/part-00001.jsonl.gz",
)

APPRENTICESHIPS = T.StructType(
    [
        T.StructField("label", T.StringType()),
        T.StructField("apprenticeship_id", T.LongType()),
        T.StructField("modified_date", T.TimestampType()),
        T.StructField("extracted_at", T.TimestampType()),
        T.StructField("landing_file", T.StringType()),
        T.StructField("page_index", T.IntegerType()),
        T.StructField("record_index", T.IntegerType()),
        T.StructField("reasons", T.ArrayType(T.StringType())),
    ]
)
ROWS = [
    # id 1: the latest modified_date wins, even from an older extraction
    ("1-old", 1, D1, T2, PART0, 0, 0, []),
    ("1-newest-modified", 1, D3, T1, PART0, 0, 1, []),
    ("1-mid", 1, D2, T3, PART0, 1, 0, []),
    # id 2: same modified_date, the later extraction wins (a list that shifted while it was paged)
    ("2-first-page", 2, D1, T1, PART0, 0, 2, []),
    ("2-later-page", 2, D1, T2, PART0, 1, 3, []),
    # id 3: same page: the later position wins; id 4: same time, the later part file wins
    ("3-a", 3, D1, T1, PART0, 0, 4, []),
    ("3-b", 3, D1, T1, PART0, 0, 5, []),
    ("4-part0", 4, D1, T1, PART0, 0, 6, []),
    ("4-part1", 4, D1, T1, PART1, 0, 6, []),
    # id 5: a rejected version never competes; rows without an id are not ranked
    ("5-rejected", 5, D3, T3, PART0, 2, 0, ["wrong_type:programme_id"]),
    ("5-valid", 5, D1, T1, PART0, 0, 7, []),
    ("no-id", None, D1, T1, PART0, 0, 8, ["null_value:id"]),
]


def test_rank_versions_orders_by_modified_date_then_extraction(spark):
    ranks = {
        "1-newest-modified": 1,
        "1-mid": 2,
        "1-old": 3,
        "2-later-page": 1,
        "2-first-page": 2,
        "3-b": 1,
        "3-a": 2,
        "4-part1": 1,
        "4-part0": 2,
        "5-valid": 1,
        "5-rejected": None,
        "no-id": None,
    }
    expected_schema = T.StructType(APPRENTICESHIPS.fields + [T.StructField("version_rank", T.IntegerType())])
    expected = spark.createDataFrame([(*row, ranks[row[0]]) for row in ROWS], expected_schema)
    actual = spark.createDataFrame(ROWS, APPRENTICESHIPS).transform(rank_versions(spec_of("apprenticeships")))
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_dedupe_latest_keeps_one_row_per_key(spark):
    kept = {"1-newest-modified", "2-later-page", "3-b", "4-part1", "5-valid"}
    actual = spark.createDataFrame(ROWS, APPRENTICESHIPS).transform(kept_versions(spec_of("apprenticeships")))
    assert_df_equality(
        actual, spark.createDataFrame([r for r in ROWS if r[0] in kept], APPRENTICESHIPS), ignore_row_order=True
    )


def test_projects_keep_the_latest_extraction_per_parent_and_project(spark):
    schema = T.StructType(
        [
            T.StructField("label", T.StringType()),
            T.StructField("apprenticeship_id", T.LongType()),
            T.StructField("project_id", T.LongType()),
            T.StructField("extracted_at", T.TimestampType()),
            T.StructField("landing_file", T.StringType()),
            T.StructField("page_index", T.IntegerType()),
            T.StructField("record_index", T.IntegerType()),
            T.StructField("reasons", T.ArrayType(T.StringType())),
        ]
    )
    rows = [
        ("run1", 10, 1, T1, PART0, 0, 0, []),
        ("run2", 10, 1, T2, PART0, 0, 0, []),
        ("other-parent", 11, 1, T1, PART0, 0, 0, []),
    ]
    actual = spark.createDataFrame(rows, schema).transform(kept_versions(spec_of("projects")))
    assert_df_equality(actual, spark.createDataFrame(rows[1:], schema), ignore_row_order=True)


def test_dedupe_of_nothing_is_nothing(spark):
    actual = spark.createDataFrame([], APPRENTICESHIPS).transform(kept_versions(spec_of("apprenticeships")))
    assert_df_equality(actual, spark.createDataFrame([], APPRENTICESHIPS))

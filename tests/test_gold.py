"""Gold joins: live rows only, left joins that keep and flag unknown programmes, childless apprenticeships, orphan projects."""

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import types as T

from multiverse_etl.transform.gold import build_gold_apprenticeship_projects, build_gold_apprenticeships
from multiverse_etl.transform.schemas import (
    GOLD_APPRENTICESHIP_PROJECTS_SCHEMA,
    GOLD_APPRENTICESHIPS_SCHEMA,
    SILVER_SCHEMAS,
)

UTC = dt.timezone.utc
M1, M2 = dt.datetime(2024, 3, 5, 10, 21, 33, tzinfo=UTC), dt.datetime(2024, 4, 1, tzinfo=UTC)
T1 = dt.datetime(2026, 3, 2, 9, tzinfo=UTC)
RUN = "20260302T090000Z-a0a0a0"
DAY = dt.date(2026, 3, 2)


def _tail(deleted=False):
    return (
        deleted,
        T1 if deleted else None,
        RUN if deleted else None,
        RUN,
        T1,
        "raw/x",
        0,
        0,
    )  # ..., hash, fingerprint


def apprenticeships(spark):
    return spark.createDataFrame(
        [
            (1, "Data – Acme", 7, M1, "Ada", "Lovelace", "ada@example.org", True, dt.date(2024, 3, 1), *_tail()),
            (2, "No projects", 7, M2, "Bo", "Li", "bo@example", False, dt.date(2024, 4, 1), *_tail()),
            (3, "Unknown programme", 99, M1, "Cy", "Ng", "cy@example.org", True, dt.date(2024, 3, 1), *_tail()),
            (4, "Gone", 7, M1, "Di", "Xu", "di@example.org", True, dt.date(2024, 3, 1), *_tail(deleted=True)),
            (5, "Programme gone", 8, M1, "Ed", "Yo", "ed@example.org", True, dt.date(2024, 3, 1), *_tail()),
        ],
        SILVER_SCHEMAS["apprenticeships"],
    )


def programmes(spark):
    return spark.createDataFrame(
        [
            (7, "Data Analyst – Level 4", 15, "Learn.", DAY, *_tail()),
            (8, "Retired programme", 12, "Old.", DAY, *_tail(deleted=True)),
        ],
        SILVER_SCHEMAS["programmes"],
    )


def projects(spark):
    return spark.createDataFrame(
        [
            (1, 10, "P10", "d10", "pending", DAY, *_tail()),
            (1, 11, "P11", "d11", "graded", DAY, *_tail()),
            (1, 12, "P12", "d12", "graded", DAY, *_tail()),
            (1, 13, "P13", "d13", "submitted", DAY, *_tail(deleted=True)),
            (3, 30, "P30", "d30", "submitted", DAY, *_tail()),
            (4, 40, "P40", "d40", "pending", DAY, *_tail(deleted=True)),
            (6, 60, "Orphan", "parent quarantined", "graded", DAY, *_tail()),
        ],
        SILVER_SCHEMAS["projects"],
    )


def test_gold_apprenticeships_keep_and_flag_unknown_programmes_and_count_live_projects(spark):
    actual = build_gold_apprenticeships(apprenticeships(spark), programmes(spark), projects(spark))
    expected = spark.createDataFrame(
        [
            (
                1,
                "Data – Acme",
                7,
                M1,
                "Ada",
                "Lovelace",
                "ada@example.org",
                True,
                "Data Analyst – Level 4",
                15,
                True,
                3,
                1,
                0,
                2,
                True,
                dt.date(2024, 3, 1),
            ),
            (
                2,
                "No projects",
                7,
                M2,
                "Bo",
                "Li",
                "bo@example",
                False,
                "Data Analyst – Level 4",
                15,
                True,
                0,
                0,
                0,
                0,
                False,
                dt.date(2024, 4, 1),
            ),
            (
                3,
                "Unknown programme",
                99,
                M1,
                "Cy",
                "Ng",
                "cy@example.org",
                True,
                None,
                None,
                False,
                1,
                0,
                1,
                0,
                True,
                dt.date(2024, 3, 1),
            ),
            (
                5,
                "Programme gone",
                8,
                M1,
                "Ed",
                "Yo",
                "ed@example.org",
                True,
                None,
                None,
                False,
                0,
                0,
                0,
                0,
                False,
                dt.date(2024, 3, 1),
            ),
        ],
        GOLD_APPRENTICESHIPS_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_gold_projects_carry_their_apprenticeship_and_programme_and_flag_orphans(spark):
    actual = build_gold_apprenticeship_projects(projects(spark), apprenticeships(spark), programmes(spark))
    ada = (
        "Data – Acme",
        "Ada",
        "Lovelace",
        "ada@example.org",
        True,
        M1,
        7,
        True,
        "Data Analyst – Level 4",
        15,
        "Learn.",
        dt.date(2024, 3, 1),
    )
    expected = spark.createDataFrame(
        [
            (10, 1, "P10", "d10", "pending", True, *ada),
            (11, 1, "P11", "d11", "graded", True, *ada),
            (12, 1, "P12", "d12", "graded", True, *ada),
            (
                30,
                3,
                "P30",
                "d30",
                "submitted",
                True,
                "Unknown programme",
                "Cy",
                "Ng",
                "cy@example.org",
                True,
                M1,
                99,
                False,
                None,
                None,
                None,
                dt.date(2024, 3, 1),
            ),
            (
                60,
                6,
                "Orphan",
                "parent quarantined",
                "graded",
                False,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                False,
                None,
                None,
                None,
                None,
            ),
        ],
        GOLD_APPRENTICESHIP_PROJECTS_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_gold_of_an_empty_lake_is_empty_with_its_schema(spark):
    empty = {e: spark.createDataFrame([], SILVER_SCHEMAS[e]) for e in SILVER_SCHEMAS}
    a = build_gold_apprenticeships(empty["apprenticeships"], empty["programmes"], empty["projects"])
    p = build_gold_apprenticeship_projects(empty["projects"], empty["apprenticeships"], empty["programmes"])
    assert_df_equality(a, spark.createDataFrame([], GOLD_APPRENTICESHIPS_SCHEMA))
    assert_df_equality(p, spark.createDataFrame([], GOLD_APPRENTICESHIP_PROJECTS_SCHEMA))
    assert isinstance(a.schema["projects_total"].dataType, T.LongType)

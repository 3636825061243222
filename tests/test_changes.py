"""The change plan: what a run inserts, updates, leaves alone and proves deleted (replays change nothing).

The plans are intermediate frames whose nullability follows the hand-made inputs here, so these comparisons
ignore it; what the tables carry, NOT NULL included, is checked whole on a real lake in
test_transform.test_every_table_carries_its_declared_schema_nullability_included.
"""

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import types as T

from multiverse_etl.entities import entity as spec_of
from multiverse_etl.transform.changes import deleted_after, plan_deletions, plan_upserts, silver_rows
from multiverse_etl.transform.schemas import CLEAN_SCHEMAS, SILVER_SCHEMAS
from support.landed import lineage

UTC = dt.timezone.utc
D1, D2 = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)
T0, T1, T2, T3 = (dt.datetime(2026, 3, d, 9, tzinfo=UTC) for d in (1, 2, 3, 4))
RUN = "20260304T090000Z-c0c0c0"


def _schema(*fields):
    return T.StructType([T.StructField(name, dtype) for name, dtype in fields])


CURRENT = _schema(
    ("apprenticeship_id", T.LongType()),
    ("modified_date", T.TimestampType()),
    ("extracted_at", T.TimestampType()),
    ("record_hash", T.LongType()),
    ("is_deleted", T.BooleanType()),
    ("deleted_at", T.TimestampType()),
    ("fingerprint", T.LongType()),
)
CANDIDATES = _schema(
    ("apprenticeship_id", T.LongType()),
    ("label", T.StringType()),
    ("modified_date", T.TimestampType()),
    ("extracted_at", T.TimestampType()),
    ("record_hash", T.LongType()),
    ("fingerprint", T.LongType()),
)


def test_plan_upserts_compares_each_record_with_the_current_row(spark):
    current = spark.createDataFrame(
        [
            (1, D1, T1, 100, False, None, 1),
            (2, D1, T1, 100, False, None, 1),
            (3, D1, T1, 100, False, None, 1),
            (4, D2, T1, 100, False, None, 1),
            (5, D1, T1, 100, True, T2, 1),
            (6, D1, T1, 100, True, T2, 1),
            (8, D1, T2, 100, False, None, 1),
            (9, D1, T1, 100, False, None, None),
            (10, D1, T2, 100, False, None, 1),
        ],
        CURRENT,
    )
    candidates = [
        (1, "later modified_date, older extraction", D2, T0, 200, 2, "update", False),
        (2, "same content seen again", D1, T2, 100, 1, "unchanged", False),
        (3, "same modified_date, later extraction, new content", D1, T2, 101, 2, "update", False),
        (4, "older modified_date", D1, T2, 101, 2, "unchanged", False),
        (5, "deleted, seen again after the deletion", D1, T3, 100, 1, "update", True),
        (6, "deleted, replay of a run before the deletion", D1, T1, 101, 2, "unchanged", True),
        (7, "new key", D1, T2, 100, 1, "insert", False),
        (8, "replay of an older run", D1, T1, 999, 2, "unchanged", False),
        (9, "same content, a row older than fingerprints", D1, T2, 100, 5, "refresh", False),
        (10, "same content, another landed text, an older extraction", D1, T1, 100, 5, "unchanged", False),
        (2, "same content, another landed text, a later extraction", D1, T3, 100, 5, "refresh", False),
    ]
    actual = spark.createDataFrame([c[:-2] for c in candidates], CANDIDATES).transform(
        plan_upserts(spec_of("apprenticeships"), current)
    )
    expected = spark.createDataFrame(
        candidates,
        T.StructType(
            CANDIDATES.fields
            + [T.StructField("_action", T.StringType()), T.StructField("_was_deleted", T.BooleanType())]
        ),
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_plan_upserts_of_projects_take_the_later_extraction_only(spark):
    current_schema = _schema(
        ("apprenticeship_id", T.LongType()),
        ("project_id", T.LongType()),
        ("extracted_at", T.TimestampType()),
        ("record_hash", T.LongType()),
        ("is_deleted", T.BooleanType()),
        ("deleted_at", T.TimestampType()),
        ("fingerprint", T.LongType()),
    )
    current = spark.createDataFrame(
        [(10, 1, T1, 100, False, None, 1), (10, 2, T2, 100, False, None, 1)], current_schema
    )
    schema = _schema(
        ("apprenticeship_id", T.LongType()),
        ("project_id", T.LongType()),
        ("extracted_at", T.TimestampType()),
        ("record_hash", T.LongType()),
        ("fingerprint", T.LongType()),
        ("_action", T.StringType()),
        ("_was_deleted", T.BooleanType()),
    )
    rows = [
        (10, 1, T2, 101, 2, "update", False),
        (10, 2, T1, 101, 2, "unchanged", False),
        (11, 1, T1, 100, 1, "insert", False),
    ]
    candidates = spark.createDataFrame([r[:-2] for r in rows], T.StructType(schema.fields[:-2]))
    actual = candidates.transform(plan_upserts(spec_of("projects"), current))
    assert_df_equality(actual, spark.createDataFrame(rows, schema), ignore_row_order=True, ignore_nullable=True)


def _silver(spark, entity, rows):
    """Silver rows from dicts (keys, extracted_at, is_deleted, deleted_at); other columns get filler values."""
    schema = SILVER_SCHEMAS[entity]
    filler = {
        T.LongType(): 0,
        T.StringType(): "x",
        T.TimestampType(): T0,
        T.DateType(): dt.date(2026, 3, 1),
        T.BooleanType(): False,
        T.IntegerType(): 0,
    }
    full = [
        tuple(
            row.get(f.name, None if f.name in ("deleted_at", "deleted_by_run_id") else filler[f.dataType])
            for f in schema.fields
        )
        for row in rows
    ]
    return spark.createDataFrame(full, schema)


def _deletions(spark, entity, rows):
    """Expected deletion change rows: keys, deleted_at, deleted_by_run_id; everything else null."""
    schema = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in SILVER_SCHEMAS[entity].fields]
        + [T.StructField("_action", T.StringType()), T.StructField("_was_deleted", T.BooleanType())]
    )
    full = [
        tuple(
            True
            if f.name == "is_deleted"
            else "delete"
            if f.name == "_action"
            else False
            if f.name == "_was_deleted"
            else row.get(f.name)
            for f in schema.fields
        )
        for row in rows
    ]
    return spark.createDataFrame(full, schema)


def test_a_complete_listing_deletes_live_rows_it_does_not_hold(spark):
    current = _silver(
        spark,
        "apprenticeships",
        [
            {"apprenticeship_id": 1, "extracted_at": T1},  # listed (valid or quarantined): kept
            {"apprenticeship_id": 2, "extracted_at": T1},  # absent: deleted
            {
                "apprenticeship_id": 3,
                "extracted_at": T1,
                "is_deleted": True,
                "deleted_at": T2,
                "deleted_by_run_id": "old",
            },
            {"apprenticeship_id": 4, "extracted_at": T3},  # seen after this run started (a replayed old run): kept
        ],
    )
    present = spark.createDataFrame([(1,)], "apprenticeship_id bigint")
    actual = plan_deletions(spec_of("apprenticeships"), current, present, RUN, T2)
    expected = _deletions(
        spark, "apprenticeships", [{"apprenticeship_id": 2, "deleted_at": T2, "deleted_by_run_id": RUN}]
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_projects_are_deleted_from_listed_parents_and_with_deleted_apprenticeships(spark):
    current = _silver(
        spark,
        "projects",
        [
            {"apprenticeship_id": 1, "project_id": 10, "extracted_at": T1},  # listed and present
            {"apprenticeship_id": 1, "project_id": 11, "extracted_at": T1},  # parent listed, project absent
            {"apprenticeship_id": 2, "project_id": 20, "extracted_at": T1},  # parent listed empty (and deleted)
            {"apprenticeship_id": 3, "project_id": 30, "extracted_at": T1},  # parent deleted at T2
            {"apprenticeship_id": 3, "project_id": 31, "extracted_at": T3},  # seen after its parent's deletion
            {"apprenticeship_id": 4, "project_id": 40, "extracted_at": T1},  # parent not listed, not deleted
        ],
    )
    present = spark.createDataFrame([(1, 10)], "apprenticeship_id bigint, project_id bigint")
    listed = spark.createDataFrame([(1,), (2,)], "apprenticeship_id bigint")
    deleted_parents = spark.createDataFrame(
        [(2, T1, "earlier"), (3, T2, "run-3")],
        "apprenticeship_id bigint, deleted_at timestamp, deleted_by_run_id string",
    )
    actual = plan_deletions(
        spec_of("projects"), current, present, RUN, T2, listed_parents=listed, deleted_parents=deleted_parents
    )
    expected = _deletions(
        spark,
        "projects",
        [
            {"apprenticeship_id": 1, "project_id": 11, "deleted_at": T2, "deleted_by_run_id": RUN},
            {"apprenticeship_id": 2, "project_id": 20, "deleted_at": T2, "deleted_by_run_id": RUN},
            {"apprenticeship_id": 3, "project_id": 30, "deleted_at": T2, "deleted_by_run_id": "run-3"},
        ],
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


DELETED = "apprenticeship_id bigint, deleted_at timestamp, deleted_by_run_id string"
PLANNED = "apprenticeship_id bigint, _action string, deleted_at timestamp, deleted_by_run_id string"


def test_deleted_after_a_plan_keeps_untouched_deletions_drops_restored_rows_and_adds_the_plans(spark):
    before = spark.createDataFrame([(1, T0, "run-a"), (2, T0, "run-a"), (3, T1, "run-b")], DELETED)
    planned = spark.createDataFrame(
        [
            (2, "update", None, None),  # deleted, back in this run: live after the MERGE
            (4, "delete", T2, RUN),  # live, proven gone by this run
            (5, "insert", None, None),
            (6, "update", None, None),  # a live row updated: still live
            (7, "unchanged", None, None),
            (8, "refresh", None, None),
        ],
        PLANNED,
    )
    expected = spark.createDataFrame([(1, T0, "run-a"), (3, T1, "run-b"), (4, T2, RUN)], DELETED)
    actual = deleted_after(spec_of("apprenticeships"), before, planned)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    # Read after the MERGE (row 2 live again, row 4 deleted by it): the same answer, so the cascade may be planned
    # while the parent's MERGE runs.
    after = spark.createDataFrame([(1, T0, "run-a"), (3, T1, "run-b"), (4, T2, RUN)], DELETED)
    assert_df_equality(
        deleted_after(spec_of("apprenticeships"), after, planned), expected, ignore_row_order=True, ignore_nullable=True
    )
    # Nothing planned (the parent landed nothing, or its run was skipped): silver's deleted rows as they are.
    assert_df_equality(deleted_after(spec_of("apprenticeships"), before, None), before, ignore_row_order=True)


def test_silver_rows_add_partition_state_and_a_content_hash(spark):
    march = dt.datetime(2024, 3, 5, 10, 21, 33, tzinfo=UTC)
    base = (1, "n", 7, march, "A", "B", "a@b.org", True, False, "1", "{}", [])
    cleaned = spark.createDataFrame(
        [
            (*lineage(0), *base, 0),
            (*lineage(1, extracted_at=T3), *base, 1),  # the same content from another extraction
            (*lineage(2), 1, "n", 7, march, "A", "B", "a@c.org", True, False, "1", "{}", [], 2),  # one field differs
        ],
        CLEAN_SCHEMAS["apprenticeships"],
    )
    silver = cleaned.transform(silver_rows(spec_of("apprenticeships")))
    run, _, extracted, landing, *_ = lineage(0)
    expected = spark.createDataFrame(
        [
            (
                1,
                "n",
                7,
                march,
                "A",
                "B",
                "a@b.org",
                True,
                dt.date(2024, 3, 1),
                False,
                None,
                None,
                run,
                extracted,
                landing,
            ),
            (1, "n", 7, march, "A", "B", "a@b.org", True, dt.date(2024, 3, 1), False, None, None, run, T3, landing),
            (
                1,
                "n",
                7,
                march,
                "A",
                "B",
                "a@c.org",
                True,
                dt.date(2024, 3, 1),
                False,
                None,
                None,
                run,
                extracted,
                landing,
            ),
        ],
        T.StructType(SILVER_SCHEMAS["apprenticeships"].fields[:-2]),
    )
    assert_df_equality(silver.drop("record_hash", "fingerprint"), expected, ignore_row_order=True, ignore_nullable=True)
    assert [r.fingerprint for r in silver.orderBy("extracted_at", "email_address").collect()] == [0, 2, 1]
    hashes = {(r.email_address, r.extracted_at): r.record_hash for r in silver.collect()}
    same_content = [h for (email, _), h in hashes.items() if email == "a@b.org"]
    assert len(same_content) == 2 and same_content[0] == same_content[1]
    assert hashes[("a@c.org", extracted.replace(tzinfo=None))] != same_content[0]

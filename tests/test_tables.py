"""Delta I/O: a run's rows are replaced, never duplicated; the MERGE's own guards refuse stale changes."""

import datetime as dt
import json
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from multiverse_etl.entities import entity as spec_of
from multiverse_etl.lake import Lake
from multiverse_etl.transform.delta_log import created_empty
from multiverse_etl.transform.schemas import BRONZE_SCHEMA, SILVER_SCHEMAS
from multiverse_etl.transform.tables import (
    append_rows,
    create_table,
    loaded_runs,
    merge_changes,
    read_run_rows,
    read_table,
    replace_run_rows,
)

UTC = dt.timezone.utc
T1, T2, T3 = (dt.datetime(2026, 3, d, 9, tzinfo=UTC) for d in (2, 3, 4))
MARCH = dt.datetime(2024, 3, 5, tzinfo=UTC)
SILVER = SILVER_SCHEMAS["programmes"]


CHANGES = T.StructType(
    [T.StructField(f.name, f.dataType, True) for f in SILVER.fields] + [T.StructField("_action", T.StringType())]
)


def programme_row(pid, name, extracted_at, record_hash, action=None, deleted_at=None, run_id="r"):
    deleting = action == "delete"
    row = (
        pid,
        None if deleting else name,
        None if deleting else 12,
        None if deleting else "d",
        None if deleting else dt.date(2026, 3, 2),
        deleting,
        deleted_at,
        run_id if deleting else None,
        None if deleting else run_id,
        None if deleting else extracted_at,
        None if deleting else "raw/x",
        None if deleting else record_hash,
        None,
    )
    return row if action is None else (*row, action)


def test_the_merge_guards_refuse_changes_older_than_the_row(spark, tmp_path):
    lake = Lake.at(str(tmp_path))
    assert create_table(spark, lake, "silver/programmes")
    merge_changes(
        spark,
        lake,
        spec_of("programmes"),
        spark.createDataFrame(
            [programme_row(1, "one", T2, 10, "insert"), programme_row(2, "two", T2, 20, "insert")], CHANGES
        ),
        ("insert",),
    )
    stale = spark.createDataFrame(
        [
            programme_row(1, "stale name", T1, 11, "update"),  # extracted before the current row
            programme_row(2, None, None, None, "delete", deleted_at=T1),  # a deletion older than the row
        ],
        CHANGES,
    )
    # a MERGE that changes nothing commits nothing: nothing inserted or updated, as the table's own log says
    assert merge_changes(spark, lake, spec_of("programmes"), stale, ("update", "delete")) == {
        "inserted": 0,
        "updated": 0,
    }
    fresh = spark.createDataFrame(
        [
            programme_row(1, "new name", T3, 12, "update"),
            programme_row(2, None, None, None, "delete", deleted_at=T3, run_id="r3"),
        ],
        CHANGES,
    )
    assert merge_changes(spark, lake, spec_of("programmes"), fresh, ("update", "delete")) == {
        "inserted": 0,
        "updated": 2,
    }
    expected = spark.createDataFrame(
        [
            (1, "new name", 12, "d", dt.date(2026, 3, 2), False, None, None, "r", T3, "raw/x", 12, None),
            (2, "two", 12, "d", dt.date(2026, 3, 2), True, T3, "r3", "r", T2, "raw/x", 20, None),
        ],
        SILVER,
    )
    assert_df_equality(read_table(spark, lake, "silver/programmes"), expected, ignore_row_order=True)


def test_replacing_a_run_twice_leaves_one_copy_and_other_runs_alone(spark, tmp_path):
    lake = Lake.at(str(tmp_path))
    day = dt.date(2026, 3, 2)

    def rows(run_id, n):
        return spark.createDataFrame(
            [(run_id, day, T1, "raw/x", 0, i, None, f'{{"id":{i}}}', i) for i in range(n)], BRONZE_SCHEMA
        )

    create_table(spark, lake, "bronze/programmes")
    replace_run_rows(rows("run-a", 3), lake, "bronze/programmes", "run-a", day)
    replace_run_rows(rows("run-b", 2), lake, "bronze/programmes", "run-b", day)
    replace_run_rows(rows("run-a", 3), lake, "bronze/programmes", "run-a", day)
    assert_df_equality(
        read_table(spark, lake, "bronze/programmes"),
        rows("run-a", 3).unionByName(rows("run-b", 2)),
        ignore_row_order=True,
    )
    assert read_run_rows(spark, lake, "bronze/programmes", "run-b", day).agg(F.max("record_index")).first()[0] == 1


def test_a_run_written_with_a_row_limit_per_file_is_split_into_files_that_each_hold_at_most_that_many(spark, tmp_path):
    """Bronze is written by one task per landing part; smaller files let the validation read it in parallel."""
    lake = Lake.at(str(tmp_path))
    day = dt.date(2026, 3, 2)
    rows = spark.createDataFrame(
        [("run-a", day, T1, "raw/x", 0, i, None, f'{{"id":{i}}}', i) for i in range(7)], BRONZE_SCHEMA
    ).coalesce(1)
    create_table(spark, lake, "bronze/programmes")
    replace_run_rows(rows, lake, "bronze/programmes", "run-a", day, max_rows_per_file=3)
    per_file = (
        read_table(spark, lake, "bronze/programmes")
        .groupBy(F.input_file_name().alias("file"))
        .count()
        .orderBy("count")
        .collect()
    )
    assert [row["count"] for row in per_file] == [1, 3, 3]
    assert_df_equality(read_table(spark, lake, "bronze/programmes"), rows, ignore_row_order=True)


def test_a_first_load_writes_one_file_per_partition_whatever_the_tasks_holding_its_rows(spark, tmp_path):
    """Rows of two days spread over 4 tasks: one file per day, not one per task and day."""
    lake = Lake.at(str(tmp_path))
    rows = [programme_row(pid, f"p{pid}", T1, pid) for pid in range(8)]
    rows = [(*row[:4], dt.date(2026, 3, 2 + pid % 2), *row[5:]) for pid, row in enumerate(rows)]
    frame = spark.createDataFrame(rows, SILVER).repartition(4)
    create_table(spark, lake, "silver/programmes")
    assert append_rows(frame, lake, "silver/programmes") == 8
    per_file = (
        read_table(spark, lake, "silver/programmes")
        .groupBy(F.input_file_name().alias("file"))
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("first_ingest_date").alias("days"))
        .collect()
    )
    assert sorted((row["rows"], row["days"]) for row in per_file) == [(4, 1), (4, 1)]
    assert_df_equality(read_table(spark, lake, "silver/programmes"), frame, ignore_row_order=True)


def test_a_table_keeps_file_statistics_only_for_the_columns_it_is_looked_up_by(spark, tmp_path):
    """silver/programmes: statistics of programme_id only (Delta's default: every one of its first 32 columns), and
    data skipping on it still prunes files."""
    lake = Lake.at(str(tmp_path))
    create_table(spark, lake, "silver/programmes")
    rows = [programme_row(pid, f"p{pid}", T1, pid) for pid in (1, 2)]
    rows = [(*row[:4], dt.date(2026, 3, 1 + pid), *row[5:]) for pid, row in zip((1, 2), rows)]  # a file per day
    append_rows(spark.createDataFrame(rows, SILVER), lake, "silver/programmes")
    log = Path(lake.path("silver/programmes")) / "_delta_log"
    adds = [
        json.loads(action["add"]["stats"])
        for line in (log / f"{1:020d}.json").read_text().splitlines()
        if "add" in (action := json.loads(line))
    ]
    assert len(adds) == 2
    for stats in adds:
        assert set(stats["minValues"]) == set(stats["maxValues"]) == set(stats["nullCount"]) == {"programme_id"}
        assert stats["numRecords"] == 1
    one = read_table(spark, lake, "silver/programmes").where(F.col("programme_id") == 2)
    assert [r.programme_id for r in one.collect()] == [2]
    assert len(one.inputFiles()) == 1  # the other day's file skipped by its statistics


def test_only_a_table_as_its_create_left_it_reads_as_created_empty(spark, tmp_path):
    """A new lake's audit table is known empty without a Spark job; one with a row, or whose first commit wrote
    rows (a table made by a write, not a CREATE), is read."""
    lake = Lake.at(str(tmp_path))
    assert not created_empty(lake.storage, "silver/programmes")  # no table at all
    create_table(spark, lake, "silver/programmes")
    assert created_empty(lake.storage, "silver/programmes")
    append_rows(spark.createDataFrame([programme_row(1, "p1", T1, 1)], SILVER), lake, "silver/programmes")
    assert not created_empty(lake.storage, "silver/programmes")

    spark.createDataFrame([programme_row(2, "p2", T1, 2)], SILVER).write.format("delta").save(
        lake.path("silver/projects")
    )
    assert not created_empty(lake.storage, "silver/projects")  # version 0 holds a row


def test_loaded_runs_of_a_new_lake_are_none_and_an_audit_row_is_read(spark, tmp_path):
    from multiverse_etl.transform.audit import LOADED, write_audit
    from multiverse_etl.transform.results import GoldSummary, RunReport
    from multiverse_etl.transform.tables import AUDIT_TABLE

    lake = Lake.at(str(tmp_path))
    create_table(spark, lake, AUDIT_TABLE)
    assert loaded_runs(spark, lake) == (set(), None)
    write_audit(spark, lake, "job-1", [RunReport("run-1", dt.date(2026, 3, 2), "full", T1)], LOADED, GoldSummary())
    loaded, latest = loaded_runs(spark, lake)
    assert loaded == {"run-1"} and latest is not None and latest["run_id"] == "run-1"

"""Maintenance: OPTIMIZE compacts recent partitions, VACUUM removes old files, short retention refused."""

import datetime as dt

import pytest
from pyspark.sql import types as T

from multiverse_etl.lake import Lake
from multiverse_etl.lock import LockLostError, acquire, break_lock, lake_lock
from multiverse_etl.maintain import (
    MaintenanceRefused,
    check_retention,
    discover_tables,
    maintain_tables,
    recent_partition_predicate,
)
from multiverse_etl.storage import LocalStorage

SCHEMA = T.StructType(
    [
        T.StructField("apprenticeship_id", T.LongType()),
        T.StructField("project_id", T.LongType()),
        T.StructField("ingest_date", T.DateType()),
    ]
)


def test_short_retention_is_refused_unless_forced():
    with pytest.raises(MaintenanceRefused, match="below the safe minimum of 168h"):
        check_retention(24, force=False)
    check_retention(24, force=True)
    check_retention(168, force=False)


def test_recent_partition_predicate_counts_back_from_today():
    assert recent_partition_predicate("ingest_date", 7, dt.date(2026, 11, 27)) == "`ingest_date` >= '2026-11-20'"


def test_optimize_compacts_and_vacuum_removes_the_replaced_files(spark, tmp_path):
    lake = tmp_path / "lake"
    table = str(lake / "silver" / "projects")
    today = dt.date.today()
    for i in range(4):  # four small appends = four files in today's partition
        spark.createDataFrame([(i, i * 10, today)], SCHEMA).write.format("delta").mode("append").partitionBy(
            "ingest_date"
        ).save(table)
    spark.createDataFrame([(9, 90, dt.date(2020, 1, 1))], SCHEMA).write.format("delta").mode("append").save(table)
    storage = LocalStorage(str(lake))
    assert discover_tables(storage) == ["silver/projects"]

    tracker = spark.sparkContext.statusTracker()
    jobs_before = set(tracker.getJobIdsForGroup())
    reports = maintain_tables(spark, Lake(str(lake), storage), optimize_days=7, retention_hours=0, force=True)
    stages = [sid for job in set(tracker.getJobIdsForGroup()) - jobs_before for sid in tracker.getJobInfo(job).stageIds]
    widest = max(tracker.getStageInfo(sid).numTasks for sid in stages if tracker.getStageInfo(sid))
    # VACUUM lists files with spark.sql.sources.parallelPartitionDiscovery.parallelism tasks: Spark's default
    # of 10,000 made it a 10,000-task stage (110 s on a 2-core cluster); the session sets the shuffle partitions.
    assert widest <= 8, widest

    (report,) = reports
    assert report.partition_column == "ingest_date"
    assert report.optimized_files_removed == 4 and report.optimized_files_added == 1  # the 2020 file is left alone
    assert report.zorder == ("apprenticeship_id",)
    assert report.vacuumed_files == 4
    assert sorted(r.project_id for r in spark.read.format("delta").load(table).collect()) == [0, 10, 20, 30, 90]
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")


def test_maintenance_under_a_lock_taken_over_commits_nothing(spark, tmp_path):
    """Fencing: OPTIMIZE and VACUUM commit; a holder that lost the lake's lock stops before either."""
    lake = tmp_path / "lake"
    table = str(lake / "silver" / "projects")
    today = dt.date.today()
    for i in range(3):
        spark.createDataFrame([(i, i, today)], SCHEMA).write.format("delta").mode("append").partitionBy(
            "ingest_date"
        ).save(table)
    storage = LocalStorage(str(lake))
    log_before = sorted(o.key for o in storage.list("silver/projects/_delta_log/"))
    with pytest.raises(LockLostError, match="taken over by other-writer"):
        with lake_lock(storage, "maintain-A"):
            break_lock(storage)  # an operator's --break-lock, then another job takes the lake
            acquire(storage, "other-writer")
            maintain_tables(spark, Lake(str(lake), storage), optimize_days=7, retention_hours=0, force=True)
    assert (
        sorted(o.key for o in storage.list("silver/projects/_delta_log/")) == log_before
    )  # no OPTIMIZE, no VACUUM commit
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")

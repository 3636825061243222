"""The lake's Delta tables: the only module that reads, writes or merges them.

Every write is idempotent for a run: bronze and quarantine replace the run's own rows
(`replaceWhere` on its ingest date and run id), silver changes go through a guarded MERGE,
gold is overwritten whole, and the audit row (the run's "loaded" marker) is appended last.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..entities import ENTITIES, EntitySpec
from ..lake import Lake
from ..lock import check_still_held
from ..storage import Storage
from .changes import ACTION, DELETE, INSERT, REFRESH, UPDATE, delete_condition, refresh_condition, update_condition
from .delta_log import commit_metrics, created_empty, table_version
from .schemas import (
    AUDIT_PARTITION,
    AUDIT_SCHEMA,
    BRONZE_SCHEMA,
    GOLD_APPRENTICESHIP_PROJECTS_SCHEMA,
    GOLD_APPRENTICESHIPS_SCHEMA,
    GOLD_PARTITION,
    QUARANTINE_SCHEMA,
    silver_schema,
)

log = logging.getLogger(__name__)

AUDIT_TABLE = "_audit/runs"
QUARANTINE_TABLE = "silver/quarantine"
GOLD_TABLES = ("gold/apprenticeships", "gold/apprenticeship_projects")


def bronze_table(entity: EntitySpec | str) -> str:
    return f"bronze/{_name(entity)}"


def silver_table(entity: EntitySpec | str) -> str:
    return f"silver/{_name(entity)}"


def _name(entity: EntitySpec | str) -> str:
    return entity if isinstance(entity, str) else entity.name


# Every table of the lake: schema and date partition column (docs/transform.md explains each choice).
TABLES: dict[str, tuple[T.StructType, str]] = {
    **{bronze_table(e): (BRONZE_SCHEMA, "ingest_date") for e in ENTITIES},
    **{silver_table(e): (silver_schema(e), e.silver_partition.name) for e in ENTITIES},
    QUARANTINE_TABLE: (QUARANTINE_SCHEMA, "ingest_date"),
    "gold/apprenticeships": (GOLD_APPRENTICESHIPS_SCHEMA, GOLD_PARTITION),
    "gold/apprenticeship_projects": (GOLD_APPRENTICESHIP_PROJECTS_SCHEMA, GOLD_PARTITION),
    AUDIT_TABLE: (AUDIT_SCHEMA, AUDIT_PARTITION),
}


def _delta(spark: SparkSession, lake: Lake, table: str):
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, lake.path(table))


# Set on every table when it is created. Deletion vectors stay off: with them an incremental run at 2,000
# apprenticeships started 279 Spark jobs and took 89.5 s, without 123 and 66.6 s (2026-12-06, docs/transform.md).
# A longer checkpoint interval spares a small table a checkpoint write every 10 commits.
TABLE_PROPERTIES = {
    "delta.enableDeletionVectors": "false",
    "delta.checkpointInterval": "50",
}

# The columns each table keeps file statistics for (data skipping): the ones it is looked up or deleted by.
# Delta's default is the first 32 columns: every write then aggregates min/max/nulls of each text column (names,
# descriptions, raw records) and every filtered read parses them back, for files whose ids are spread across
# every file anyway (files follow the date partitions, not the ids). With these only, an incremental run was ~10%
# faster at 2,000 and at 200,000 apprenticeships (docs/transform.md, 2026-12-07).
STATS_COLUMNS = {
    **{bronze_table(e): ("run_id",) for e in ENTITIES},
    **{silver_table(e): e.key for e in ENTITIES},
    QUARANTINE_TABLE: ("entity", "run_id"),
    "gold/apprenticeships": ("apprenticeship_id", "programme_id"),
    "gold/apprenticeship_projects": ("apprenticeship_id", "project_id", "programme_id"),
    AUDIT_TABLE: ("run_id", "status"),
}


def table_properties(table: str) -> dict[str, str]:
    """The properties a table is created with (`TABLE_PROPERTIES`, and its statistics' columns)."""
    return {**TABLE_PROPERTIES, "delta.dataSkippingStatsColumns": ",".join(STATS_COLUMNS[table])}


def create_table(spark: SparkSession, lake: Lake, table: str) -> bool:
    """Create one table, empty, with its schema, date partitioning and properties, unless it exists; whether it was.

    By Delta's own CREATE (a job without tasks), not by writing its first commit directly: Delta then knows the new
    table's state, where a table it first meets costs a Spark job to read that state (14 more jobs in a first load,
    measured 2026-12-06)."""
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    from delta.tables import DeltaTable

    schema, partition = TABLES[table]
    path = lake.path(table)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema).partitionedBy(partition)
    for name, value in table_properties(table).items():
        builder = builder.property(name, value)
    builder.execute()
    return True


def add_missing_columns(spark: SparkSession, lake: Lake, table: str, existing: T.StructType) -> list[str]:
    """Columns of a table's declared schema that a lake made by an older version lacks, added (nullable)."""
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    schema, _ = TABLES[table]
    have = {f.name for f in existing.fields}
    missing = [f for f in schema.fields if f.name not in have]
    if missing:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{lake.path(table)}` ADD COLUMNS ({columns})")
        properties = ", ".join(f"'{name}' = '{value}'" for name, value in table_properties(table).items())
        spark.sql(f"ALTER TABLE delta.`{lake.path(table)}` SET TBLPROPERTIES ({properties})")
    return [f.name for f in missing]


def ensure_tables(spark: SparkSession, lake: Lake) -> list[str]:
    """Create every missing table (so readers always find all of them), add columns a newer schema declares; the
    tables created. Which tables exist is read from their logs (no Spark job for a lake that has them).
    """

    def ensure(table: str) -> bool:
        if table_version(lake.storage, table) >= 0:
            schema = read_table(spark, lake, table).schema
            added = add_missing_columns(spark, lake, table, schema)
            if added:
                log.info("%s: added column(s) %s (a lake made by an older version)", table, ", ".join(added))
            return False
        return create_table(spark, lake, table)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="create-table") as pool:
        made = list(pool.map(ensure, TABLES))
    created = [table for table, new in zip(TABLES, made) if new]
    if created:
        log.info("created %d table(s) in %s: %s", len(created), lake.root, ", ".join(created))
    return created


def read_table(spark: SparkSession, lake: Lake, table: str) -> DataFrame:
    return spark.read.format("delta").load(lake.path(table))


def _run_predicate(run_id: str, ingest_date: dt.date) -> str:
    return f"ingest_date = DATE'{ingest_date.isoformat()}' AND run_id = '{run_id}'"


def read_run_rows(spark: SparkSession, lake: Lake, table: str, run_id: str, ingest_date: dt.date) -> DataFrame:
    """The rows one run wrote to a bronze/quarantine table (partition-pruned on its ingest date)."""
    return read_table(spark, lake, table).where(_run_predicate(run_id, ingest_date))


def replace_run_rows(
    rows: DataFrame, lake: Lake, table: str, run_id: str, ingest_date: dt.date, max_rows_per_file: int = 0
) -> None:
    """Write a run's rows, replacing whatever an earlier attempt wrote for it (idempotent).

    `max_rows_per_file` (0: no limit) splits what one task writes into several files, so that
    later reads of the rows get one task per file.
    """
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    schema, _ = TABLES[table]
    (
        rows.select(*[F.col(f.name) for f in schema.fields])
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", _run_predicate(run_id, ingest_date))
        .option("partitionOverwriteMode", "static")
        .option("maxRecordsPerFile", str(max_rows_per_file))
        .save(lake.path(table))
    )


def append_rows(rows: DataFrame, lake: Lake, table: str) -> int:
    """Append rows (a table's first load), one file per partition (not one per task and partition: 193 files for
    2,000 apprenticeships over 24 months); the number of rows Delta wrote."""
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    schema, partition = TABLES[table]
    before = table_version(lake.storage, table)
    (
        rows.select(*[F.col(f.name) for f in schema.fields])
        .repartition(partition)
        .write.format("delta")
        .mode("append")
        .save(lake.path(table))
    )
    return commit_metrics(lake.storage, table, before).get("numOutputRows", 0)


def delete_run_rows(spark: SparkSession, lake: Lake, table: str, run_id: str, ingest_date: dt.date) -> None:
    """Take a run's rows back out (a landing check failed after bronze was written)."""
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    _delta(spark, lake, table).delete(_run_predicate(run_id, ingest_date))


def merge_changes(
    spark: SparkSession,
    lake: Lake,
    spec: EntitySpec,
    changes: DataFrame,
    actions: tuple[str, ...] = (INSERT, UPDATE, DELETE),
) -> dict[str, int]:
    """Apply planned changes to silver with a guarded MERGE; Delta's own counts of what it did.

    The guards repeat the plan's rules, so the MERGE alone could never let an older record or a
    replayed run overwrite newer data, even if the table moved since the plan was made. Only the
    clauses of `actions` present in the plan are given: an insert-only MERGE is much cheaper.
    A REFRESH only records the landed version's fingerprint on a row whose content it matches.
    """
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    table = silver_table(spec)
    columns = [f.name for f in silver_schema(spec).fields]
    on = " AND ".join(f"t.{key} = s.{key}" for key in spec.key)
    update_set = {c: F.col(f"s.{c}") for c in columns if c not in spec.key and c != "first_ingest_date"}
    delete_set = {
        "is_deleted": F.lit(True),
        "deleted_at": F.col("s.deleted_at"),
        "deleted_by_run_id": F.col("s.deleted_by_run_id"),
    }
    before = table_version(lake.storage, table)
    merge = _delta(spark, lake, table).alias("t").merge(changes.alias("s"), on)
    if UPDATE in actions:
        merge = merge.whenMatchedUpdate(
            condition=f"s.{ACTION} = '{UPDATE}' AND {update_condition(spec)}", set=update_set
        )
    if DELETE in actions:
        merge = merge.whenMatchedUpdate(condition=f"s.{ACTION} = '{DELETE}' AND {delete_condition()}", set=delete_set)
    if REFRESH in actions:
        merge = merge.whenMatchedUpdate(
            condition=f"s.{ACTION} = '{REFRESH}' AND {refresh_condition()}", set={"fingerprint": F.col("s.fingerprint")}
        )
    if INSERT in actions:
        merge = merge.whenNotMatchedInsert(
            condition=f"s.{ACTION} = '{INSERT}'", values={c: F.col(f"s.{c}") for c in columns}
        )
    merge.execute()
    metrics = commit_metrics(lake.storage, table, before)  # a MERGE that changes nothing commits nothing
    return {"inserted": metrics.get("numTargetRowsInserted", 0), "updated": metrics.get("numTargetRowsUpdated", 0)}


def overwrite_table(rows: DataFrame, lake: Lake, table: str, user_metadata: Optional[dict] = None) -> None:
    """Replace a whole table (gold), one file per partition, recording what it was built from.

    A table still at its creation (version 0, empty) is appended to: the same result, without the overwrite's
    reading of the table's state first (a Spark job of a second on a small table)."""
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    schema, partition = TABLES[table]
    empty = table_version(lake.storage, table) == 0  # our tables are created empty (create_table)
    writer = (
        rows.select(*[F.col(f.name) for f in schema.fields])
        .repartition(partition)
        .write.format("delta")
        .mode("append" if empty else "overwrite")
    )
    if not empty:
        writer = writer.option("partitionOverwriteMode", "static")
    if user_metadata is not None:
        writer = writer.option("userMetadata", json.dumps(user_metadata, sort_keys=True))
    writer.save(lake.path(table))


def merge_gold(spark: SparkSession, lake: Lake, table: str, source: DataFrame, keys: tuple[str, ...], op: str) -> None:
    """Apply incremental gold's rows (`op` = 'upsert' or 'delete') to a gold table; the commit carries the
    session's `commitInfo.userMetadata` (what gold was built from, set by the caller around both tables).

    A MERGE that changes nothing commits nothing: then a table property records the same metadata, so the
    table still says which silver versions it matches (a metadata-only commit).
    """
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    columns = [f.name for f in TABLES[table][0].fields]
    before = table_version(lake.storage, table)
    on = " AND ".join(f"t.{key} = s.{key}" for key in keys)
    # A row built again exactly as it is stays untouched: with deletion vectors only the rows that changed are
    # written again, not every row of a touched apprenticeship.
    same = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in columns if c not in keys)
    (
        _delta(spark, lake, table)
        .alias("t")
        .merge(source.alias("s"), on)
        .whenMatchedDelete(condition=f"s.{op} = 'delete'")
        .whenMatchedUpdate(condition=f"s.{op} = 'upsert' AND NOT ({same})", set={c: F.col(f"s.{c}") for c in columns})
        .whenNotMatchedInsert(condition=f"s.{op} = 'upsert'", values={c: F.col(f"s.{c}") for c in columns})
        .execute()
    )
    if table_version(lake.storage, table) == before:
        spark.sql(
            f"ALTER TABLE delta.`{lake.path(table)}` SET TBLPROPERTIES ('multiverse.gold_refreshed' = '{uuid.uuid4().hex}')"
        )


def table_versions(storage: Storage, tables: tuple[str, ...]) -> dict[str, int]:
    return {table: table_version(storage, table) for table in tables}


def append_audit(rows: DataFrame, lake: Lake) -> None:
    """Append audit rows (a run's 'loaded' marker): the last write of a load."""
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    (
        rows.select(*[F.col(f.name) for f in AUDIT_SCHEMA.fields])
        .coalesce(1)
        .write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")  # a lake from before schema_drift or spark_jobs
        .save(lake.path(AUDIT_TABLE))
    )


def loaded_run_ids(spark: SparkSession, lake: Lake) -> set[str]:
    """Runs already loaded: those with a 'loaded' audit row."""
    return loaded_runs(spark, lake)[0]


def loaded_runs(spark: SparkSession, lake: Lake) -> tuple[set[str], Optional[dict]]:
    """Runs already loaded (those with a 'loaded' audit row), and the latest one's row (None: no run loaded)."""
    if created_empty(lake.storage, AUDIT_TABLE):  # a new lake: no Spark job to find no row
        return set(), None
    rows = (
        read_table(spark, lake, AUDIT_TABLE)
        .filter(F.col("status") == "loaded")
        .select(
            "run_id",
            "landing_digests",
            "lake_versions",
            "entities",
            "gold_apprenticeships",
            "gold_apprenticeship_projects",
            "orphan_apprenticeships",
            "orphan_projects",
        )
        .collect()
    )
    latest = max(rows, key=lambda row: row.run_id, default=None)
    return {row.run_id for row in rows}, None if latest is None else latest.asDict(recursive=True)


def append_versions(rows: DataFrame, lake: Lake, table: str, max_rows_per_file: int = 0) -> int:
    """Append new record versions to bronze or quarantine; the rows Delta wrote (from the commit's own metrics).

    An append, not a replacement of the run's rows: the caller leaves out every version the table holds already,
    so a retried run adds only what its failed attempt did not commit, and never takes back what it did.
    """
    check_still_held()  # fencing: never commit under a lock this job no longer holds
    schema, _ = TABLES[table]
    before = table_version(lake.storage, table)
    (
        rows.select(*[F.col(f.name) for f in schema.fields])
        .write.format("delta")
        .mode("append")
        .option("maxRecordsPerFile", str(max_rows_per_file))
        .save(lake.path(table))
    )
    return commit_metrics(lake.storage, table, before).get("numOutputRows", 0)

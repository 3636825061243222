"""Table maintenance: compact recent partitions (OPTIMIZE, Z-ORDER where it pays) and VACUUM.

Runs under the lake's writer lock, so it never compacts or vacuums under a running pipeline.
VACUUM below 7 days of retention is refused unless forced: a shorter window can delete files that a
reader, or a time-travel query, still needs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Iterable, Optional

from pyspark.sql import SparkSession

from .errors import EtlError
from .lake import Lake
from .lock import check_still_held
from .storage import Storage

log = logging.getLogger(__name__)

MIN_SAFE_RETENTION_HOURS = 168
TABLE_LAYERS = ("bronze", "silver", "gold", "_audit")
# Z-ORDER pays where queries filter on a high-cardinality key inside a partition.
ZORDER_COLUMNS = {
    "silver/projects": ["apprenticeship_id"],
    "gold/apprenticeship_projects": ["apprenticeship_id"],
}


class MaintenanceRefused(EtlError):
    """A maintenance request that could lose data (retention too short)."""


@dataclasses.dataclass
class TableReport:
    table: str
    partition_column: Optional[str]
    optimized_files_removed: int = 0
    optimized_files_added: int = 0
    zorder: tuple[str, ...] = ()
    vacuumed_files: int = 0
    seconds: float = 0.0


def discover_tables(storage: Storage) -> list[str]:
    """Delta tables under the lake's layers: every folder holding a _delta_log."""
    tables = set()
    for layer in TABLE_LAYERS:
        for info in storage.list(f"{layer}/"):
            if "/_delta_log/" in info.key:
                tables.add(info.key.split("/_delta_log/")[0])
    return sorted(tables)


def check_retention(hours: int, force: bool) -> None:
    if hours < MIN_SAFE_RETENTION_HOURS and not force:
        raise MaintenanceRefused(
            f"VACUUM retention {hours}h is below the safe minimum of {MIN_SAFE_RETENTION_HOURS}h (7 days); "
            "readers and time travel may still need those files. Pass --force to do it anyway."
        )


def recent_partition_predicate(column: str, days: int, today: Optional[dt.date] = None) -> str:
    since = (today or dt.date.today()) - dt.timedelta(days=days)
    return f"`{column}` >= '{since.isoformat()}'"


def maintain_tables(
    spark: SparkSession,
    lake: Lake,
    optimize_days: int,
    retention_hours: int,
    force: bool = False,
    tables: Optional[Iterable[str]] = None,
    vacuum: bool = True,
) -> list[TableReport]:
    """OPTIMIZE the last `optimize_days` of each table's date partitions, then VACUUM."""
    from delta.tables import DeltaTable

    check_retention(retention_hours, force)
    if force and retention_hours < MIN_SAFE_RETENTION_HOURS:
        log.warning("VACUUM retention %dh below the safe minimum, forced", retention_hours)
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    reports = []
    for table in tables or discover_tables(lake.storage):
        start = time.monotonic()
        delta = DeltaTable.forPath(spark, lake.path(table))
        detail = delta.detail().collect()[0]
        partition = (detail["partitionColumns"] or [None])[0]
        report = TableReport(table=table, partition_column=partition)
        check_still_held()  # fencing: OPTIMIZE commits; never under a lock this job no longer holds
        optimize = delta.optimize()
        if partition:
            optimize = optimize.where(recent_partition_predicate(partition, optimize_days))
        columns = [c for c in ZORDER_COLUMNS.get(table, []) if c in delta.toDF().columns]
        metrics_frame = optimize.executeZOrderBy(*columns) if columns else optimize.executeCompaction()
        metrics = metrics_frame.collect()[0]["metrics"]
        report.optimized_files_removed = int(metrics["numFilesRemoved"])
        report.optimized_files_added = int(metrics["numFilesAdded"])
        report.zorder = tuple(columns)
        if vacuum:
            before = _live_and_dead_files(lake.storage, table)
            check_still_held()  # VACUUM deletes files and commits: likewise
            delta.vacuum(retention_hours)
            report.vacuumed_files = max(0, before - _live_and_dead_files(lake.storage, table))
        report.seconds = time.monotonic() - start
        log.info(
            "maintained %s: optimize removed %d files, added %d (zorder %s); vacuum deleted %d files in %.1fs",
            table,
            report.optimized_files_removed,
            report.optimized_files_added,
            list(report.zorder) or "-",
            report.vacuumed_files,
            report.seconds,
        )
        reports.append(report)
    return reports


def _live_and_dead_files(storage: Storage, table: str) -> int:
    return sum(1 for o in storage.list(f"{table}/") if o.key.endswith(".parquet"))


def format_report(reports: list[TableReport]) -> str:
    header = (
        f"{'table':<32} {'partition':<16} {'files -':>8} {'files +':>8} {'zorder':<18} {'vacuumed':>9} {'seconds':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(
            f"{r.table:<32} {r.partition_column or '-':<16} {r.optimized_files_removed:>8} {r.optimized_files_added:>8} "
            f"{','.join(r.zorder) or '-':<18} {r.vacuumed_files:>9} {r.seconds:>8.1f}"
        )
    return "\n".join(lines)

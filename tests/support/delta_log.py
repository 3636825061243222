"""Delta-log forensics: a table's versions, its data files and the files its log commits, lake snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def delta_versions(table_dir: Path) -> list[int]:
    """Committed versions of a local Delta table."""
    log = table_dir / "_delta_log"
    if not log.is_dir():
        return []
    return sorted(int(p.name[:20]) for p in log.iterdir() if p.name.endswith(".json") and p.name[:20].isdigit())


def data_files(table_dir: Path) -> set[str]:
    """Every parquet file under a local Delta table (committed or not)."""
    found = set()
    for dirpath, _dirs, files in os.walk(table_dir):
        if "_delta_log" in dirpath:
            continue
        found.update(os.path.join(dirpath, f) for f in files if f.endswith(".parquet"))
    return found


def committed_files(table_dir: Path) -> set[str]:
    """Data files the table's log adds and does not remove (local tables without checkpoints)."""
    live: set[str] = set()
    for version in delta_versions(table_dir):
        for line in (table_dir / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live.add(os.path.join(str(table_dir), action["add"]["path"]))
            elif "remove" in action:
                live.discard(os.path.join(str(table_dir), action["remove"]["path"]))
    return {os.path.normpath(p.replace("%3D", "=").replace("%3A", ":")) for p in live}


TABLES = (
    "bronze/programmes",
    "bronze/apprenticeships",
    "bronze/projects",
    "silver/programmes",
    "silver/apprenticeships",
    "silver/projects",
    "silver/quarantine",
    "gold/apprenticeships",
    "gold/apprenticeship_projects",
    "_audit/runs",
)


def lake_snapshot(lake_dir: Path) -> dict[str, Any]:
    """Versions and uncommitted data files of every table, the lock, manifests and extract run plans."""
    snapshot: dict[str, Any] = {"versions": {}, "uncommitted": {}}
    for table in TABLES:
        directory = lake_dir / table
        snapshot["versions"][table] = delta_versions(directory)
        snapshot["uncommitted"][table] = sorted(data_files(directory) - committed_files(directory))
    snapshot["lock"] = (
        (lake_dir / "_locks" / "writer.lock").read_text() if (lake_dir / "_locks" / "writer.lock").exists() else None
    )
    snapshot["manifests"] = sorted(p.name for p in (lake_dir / "raw" / "_manifests").glob("*.json"))
    snapshot["run_plans"] = sorted(p.name for p in (lake_dir / "_state" / "extract_runs").glob("*.json"))
    return snapshot


def latest_version(table_dir: Path) -> int:
    versions = delta_versions(table_dir)
    return versions[-1] if versions else -1


def write_in_flight(table_dir: Path) -> bool:
    """Data files that no commit of the table names yet: a write (here the MERGE) is under way."""
    files = data_files(table_dir)
    return bool(files) and bool(files - committed_files(table_dir))


def history_version(spark, lake, table: str) -> int:
    """A table's latest version: its highest commit file (`_delta_log/NNNNNNNNNNNNNNNNNNNN.json`), listed through the
    lake's storage (folder or S3), independent of the transform's log reader. What Delta's `history(1)` answers, without
    a Spark job (checked equal on folder and S3 lakes, every table, two runs); `spark` is kept for the callers."""
    prefix = f"{table}/_delta_log/"
    names = (info.key[len(prefix) :] for info in lake.storage.list(prefix))
    versions = [int(name[:20]) for name in names if len(name) == 25 and name.endswith(".json") and name[:20].isdigit()]
    assert versions, f"{table}: no Delta commit under {lake.root}"
    return max(versions)

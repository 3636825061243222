"""The Delta log, read directly: a table's latest version and the commitInfo of a commit.

Under the writer lock the latest commit of a table is the job's own: its version and its commitInfo
(operation metrics, user metadata) are read from the `_delta_log` entry itself. Delta's `history()`
would cost a Spark job and a snapshot rebuild per read.
"""

from __future__ import annotations

import json
from typing import Optional

from ..storage import Storage


def table_version(storage: Storage, table: str) -> int:
    """The latest version of a table (-1: no table), from a listing of its `_delta_log`."""
    versions = [
        int(name[:-5])
        for info in storage.list(f"{table}/_delta_log/")
        if (name := info.key.rsplit("/", 1)[-1]).endswith(".json") and name[:-5].isdigit()
    ]
    return max(versions, default=-1)


def created_empty(storage: Storage, table: str) -> bool:
    """Whether a table is as Delta's CREATE left it: its only commit (version 0) added no file. Reading such a
    table would cost Spark jobs to find that it holds no row."""
    if table_version(storage, table) != 0:
        return False
    raw = storage.get(f"{table}/_delta_log/{0:020d}.json")
    return not any("add" in json.loads(line) for line in raw.splitlines() if line.strip())


def commit_info(storage: Storage, table: str, version: int) -> dict:
    """The `commitInfo` action of one commit (operation, operationMetrics, userMetadata); {} when absent."""
    raw = storage.get(f"{table}/_delta_log/{version:020d}.json")
    for line in raw.splitlines():
        if line.startswith(b'{"commitInfo"'):
            return dict(json.loads(line)["commitInfo"])
    for line in raw.splitlines():  # the action is usually first, but nothing guarantees it
        action = json.loads(line)
        if "commitInfo" in action:
            return dict(action["commitInfo"])
    return {}


def commit_metrics(storage: Storage, table: str, before: int) -> dict[str, int]:
    """The operation metrics of the commit a write just made (empty when it committed nothing)."""
    version = table_version(storage, table)
    if version <= before:
        return {}
    metrics = commit_info(storage, table, version).get("operationMetrics") or {}
    return {name: int(value) for name, value in metrics.items() if str(value).lstrip("-").isdigit()}


def latest_user_metadata(storage: Storage, table: str) -> Optional[str]:
    """The userMetadata of a table's latest commit (gold records what it was built from there)."""
    version = table_version(storage, table)
    return commit_info(storage, table, version).get("userMetadata") if version >= 0 else None

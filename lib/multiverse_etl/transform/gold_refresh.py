"""Step 4, gold: brought up to date with silver, by MERGE of what changed or by a full rebuild.

Gold records what it was built from (silver's versions and the pseudonymisation key's fingerprint) in
each table's commit metadata; both tables must match, since a crash may have come between their writes.
Gold is merged incrementally (`gold.rebuilt_rows`, `gold.gold_merge_source`) only when both tables were built from exactly the
silver versions this job started from, with the same key, and every silver change since is known by
key; otherwise (a first load, a crash between silver and gold, a new key, `rebuild`) it is rebuilt whole.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from ..entities import APPRENTICESHIPS, ENTITIES, PROGRAMMES, PROJECTS
from .context import Job, results_or_raise
from .delta_log import latest_user_metadata
from .gold import (
    GOLD_OP,
    SilverChanges,
    build_gold_apprenticeship_projects,
    build_gold_apprenticeships,
    gold_merge_source,
    rebuilt_rows,
    touched_apprenticeships,
)
from .pseudonymise import key_fingerprint, pseudonymise_personal_data
from .results import MERGED, REBUILT, UNCHANGED, GoldOutcome, GoldSummary
from .tables import (
    GOLD_TABLES,
    merge_gold,
    overwrite_table,
    read_table,
    silver_table,
    table_versions,
)

log = logging.getLogger("multiverse_etl.transform")

SILVER_TABLES = tuple(silver_table(spec) for spec in ENTITIES)
GOLD_SPECS = (APPRENTICESHIPS, PROJECTS)  # the entities each gold table is about (`spec.gold.table`)
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class CountedGold:
    """Gold's counts as the latest loaded audit row recorded them, and gold's table versions they were counted at."""

    versions: Mapping[str, int]
    summary: GoldSummary

    @classmethod
    def of(cls, row: Optional[Mapping[str, Any]]) -> Optional[CountedGold]:
        """From an audit row (None: no row, or a row that did not record gold's versions with its counts)."""
        recorded = (row or {}).get("lake_versions") or {}
        if row is None or row.get("gold_apprenticeships") is None or any(recorded.get(t) is None for t in GOLD_TABLES):
            return None
        summary = GoldSummary(
            row["gold_apprenticeships"],
            row["gold_apprenticeship_projects"],
            row["orphan_apprenticeships"],
            row["orphan_projects"],
        )
        return cls({table: int(recorded[table]) for table in GOLD_TABLES}, summary)


def refresh_gold(
    job: Job, force: bool, changes: SilverChanges, rebuild: bool = False, counted: Optional[CountedGold] = None
) -> GoldOutcome:
    """Gold after this job's loads (`force`: runs were loaded, so its counts are wanted for the audit).

    `counted`: the last audit row's gold counts; reused when gold has not moved since (no scan of gold)."""
    start = time.monotonic()
    # Gold depends on silver's versions and on the pseudonymisation key (a new key must re-hash gold).
    fingerprint = key_fingerprint(job.pseudonymisation_key) if job.pseudonymisation_key else "off"
    versions: dict = {**table_versions(job.lake.storage, SILVER_TABLES), "pseudonyms": fingerprint}
    built_from = [_gold_source_versions(latest_user_metadata(job.lake.storage, table)) for table in GOLD_TABLES]
    if not force and not rebuild and all(b == versions for b in built_from):
        log.info("gold is up to date with silver %s", versions)
        return GoldOutcome()
    started_from = {**versions, **changes.versions_before}
    mergeable = not rebuild and changes.complete and all(b == started_from for b in built_from)
    if mergeable and changes.empty and started_from == versions:
        summary, mode = _unchanged_counts(job, counted), UNCHANGED  # nothing gold reads changed
    else:
        ids = _ids_worth_merging(job, changes, counted) if mergeable else None
        if ids is not None:
            summary, mode = _merge(job, ids, versions, changes), MERGED
        else:
            summary, mode = _rebuild(job, versions, changes), REBUILT
    seconds = time.monotonic() - start
    log.info(
        "gold %s from silver %s (%s touched): %d apprenticeships (%d with an unknown programme), %d projects (%d "
        "with an unknown apprenticeship) in %.1fs",
        mode,
        versions,
        changes.describe(),
        summary.gold_apprenticeships,
        summary.orphan_apprenticeships,
        summary.gold_apprenticeship_projects,
        summary.orphan_projects,
        seconds,
        extra={
            "step": "gold",
            "gold_mode": mode,
            "gold_apprenticeships": summary.gold_apprenticeships,
            "gold_apprenticeship_projects": summary.gold_apprenticeship_projects,
            "duration_s": round(seconds, 3),
        },
    )
    return GoldOutcome(mode, summary, seconds)


def _silver(job: Job, versions: Mapping[str, Any], changes: SilverChanges) -> dict[str, DataFrame]:
    """Silver at `versions`: a table this job's first load appended, from the rows it appended (no read of a table
    just written: Delta would first rebuild its file list, a Spark job or two per table and reader); others read."""
    frames = {}
    for spec in ENTITIES:
        table = silver_table(spec)
        appended = changes.silver(table, int(versions[table]))
        frames[spec.name] = appended if appended is not None else read_table(job.spark, job.lake, table)
    return frames


def _rebuild(job: Job, versions: dict, changes: SilverChanges) -> GoldSummary:
    silver = _silver(job, versions, changes)
    apprenticeships, projects, programmes = (silver[s.name] for s in (APPRENTICESHIPS, PROJECTS, PROGRAMMES))
    frames = {
        str(APPRENTICESHIPS.gold.table): build_gold_apprenticeships(apprenticeships, programmes, projects),
        str(PROJECTS.gold.table): build_gold_apprenticeship_projects(projects, apprenticeships, programmes),
    }
    seen = {}
    for spec in GOLD_SPECS:  # each gold table's rows, and its orphans (an unknown parent)
        table, flag = str(spec.gold.table), str(spec.gold.known_flag)
        seen[table] = Observation(f"gold_{spec.name}_{uuid.uuid4().hex[:8]}")
        frames[table] = frames[table].observe(
            seen[table], F.count(F.lit(1)).alias("rows"), F.sum(F.when(~F.col(flag), 1).otherwise(0)).alias("orphans")
        )
        if job.pseudonymisation_key:  # transform.pseudonymise_gold: personal columns become keyed pseudonyms
            frames[table] = pseudonymise_personal_data(frames[table], job.pseudonymisation_key)
    metadata = {"silver_versions": versions, "job_id": job.job_id}
    results_or_raise(
        {table: job.pool.submit(overwrite_table, frame, job.lake, table, metadata) for table, frame in frames.items()}
    )
    a, p = seen[str(APPRENTICESHIPS.gold.table)].get, seen[str(PROJECTS.gold.table)].get
    return GoldSummary(int(a["rows"]), int(p["rows"]), int(a["orphans"] or 0), int(p["orphans"] or 0))


def _ids_worth_merging(job: Job, changes: SilverChanges, counted: Optional[CountedGold]) -> Optional[DataFrame]:
    """The touched apprenticeships (cached), or None when a rebuild costs less than a MERGE: a MERGE rewrites every
    file holding a touched row, and touched apprenticeships are spread over every partition, so past a small share
    of gold's rows (`transform.gold_merge_max_share`) a rebuild costs less (docs/transform.md).

    Gold's rows as the last audit row counted them when gold has not moved since (else counted: a Spark job). When
    the apprenticeships the silver MERGEs named are past the share already, silver is not read for the rest (a
    programme's change can only add to them)."""
    recorded = _still_counted(job, counted)
    if recorded is not None and recorded.gold_apprenticeships is not None:
        rows = recorded.gold_apprenticeships
    else:
        rows = read_table(job.spark, job.lake, str(APPRENTICESHIPS.gold.table)).count()
    limit = job.gold_merge_max_share * max(rows, 1)
    touched = len(changes.touched.get(APPRENTICESHIPS.id_column, ()))
    ids = None
    if touched <= limit:
        apprenticeships = read_table(job.spark, job.lake, silver_table(APPRENTICESHIPS))
        ids = touched_apprenticeships(job.spark, changes, apprenticeships).cache()
        touched = ids.count()
    if touched <= limit:
        return ids
    if ids is not None:
        ids.unpersist()
    log.info("gold: %d of %d apprenticeships touched, over transform.gold_merge_max_share: rebuilt", touched, rows)
    return None


def _merge(job: Job, ids: DataFrame, versions: dict, changes: SilverChanges) -> GoldSummary:
    """Both gold tables MERGEd side by side with the touched apprenticeships' rows (`ids`, cached); their counts."""
    spark, lake = job.spark, job.lake
    silver = _silver(job, versions, changes)
    kept: list[DataFrame] = [ids]
    try:
        built = dict(
            zip(
                (str(s.gold.table) for s in GOLD_SPECS),
                rebuilt_rows(ids, silver[APPRENTICESHIPS.name], silver[PROJECTS.name], silver[PROGRAMMES.name]),
            )
        )
        if job.pseudonymisation_key:
            built = {t: pseudonymise_personal_data(frame, job.pseudonymisation_key) for t, frame in built.items()}
        # Kept once built (only the touched apprenticeships' rows): each MERGE source reads them twice (the rows,
        # and their keys for what is no longer built), and Delta then materialises a plan over a cache instead of
        # the gold joins' every stage again (about 40 fewer Spark jobs an incremental run).
        built = {t: frame.persist(StorageLevel.MEMORY_AND_DISK) for t, frame in built.items()}
        kept.extend(built.values())
        sources = {
            str(s.gold.table): gold_merge_source(
                built[str(s.gold.table)], read_table(spark, lake, str(s.gold.table)), s.key, ids
            )
            for s in GOLD_SPECS
        }
        # A MERGE's commit metadata is a session setting: both commits carry the same, set once around both.
        spark.conf.set(_USER_METADATA, json.dumps({"silver_versions": versions, "job_id": job.job_id}, sort_keys=True))
        try:
            results_or_raise(
                {
                    str(s.gold.table): job.pool.submit(
                        merge_gold,
                        spark,
                        lake,
                        str(s.gold.table),
                        sources[str(s.gold.table)],
                        s.key,
                        GOLD_OP,
                    )
                    for s in GOLD_SPECS
                }
            )
        finally:
            spark.conf.unset(_USER_METADATA)
    finally:
        for frame in kept:
            frame.unpersist()
    return _gold_counts(job)


def _unchanged_counts(job: Job, counted: Optional[CountedGold]) -> GoldSummary:
    """Gold's counts when nothing gold reads changed: as the audit row recorded them if gold has not moved since
    (the writer lock: nothing else writes gold; a crash before that row, or `maintain`, moves gold's versions)."""
    recorded = _still_counted(job, counted)
    if recorded is not None:
        log.info("gold unchanged since its counts were recorded: not read")
        return recorded
    return _gold_counts(job)


def _still_counted(job: Job, counted: Optional[CountedGold]) -> Optional[GoldSummary]:
    """The recorded counts, if gold's tables are still at the versions they were counted at."""
    if counted is not None and dict(counted.versions) == table_versions(job.lake.storage, GOLD_TABLES):
        return counted.summary
    return None


def _gold_counts(job: Job) -> GoldSummary:
    """Rows and orphans of both gold tables, in one Spark job."""
    parts = [
        read_table(job.spark, job.lake, str(spec.gold.table))
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(~F.col(str(spec.gold.known_flag)), 1).otherwise(0)).alias("orphans"),
        )
        .select(F.lit(spec.name).alias("entity"), "rows", "orphans")
        for spec in GOLD_SPECS
    ]
    rows = {r.entity: r for r in parts[0].unionByName(parts[1]).collect()}
    a, p = rows[APPRENTICESHIPS.name], rows[PROJECTS.name]
    return GoldSummary(int(a.rows), int(p.rows), int(a.orphans or 0), int(p.orphans or 0))


def _gold_source_versions(user_metadata: Optional[str]) -> Optional[dict[str, int]]:
    try:
        return json.loads(user_metadata or "{}").get("silver_versions")
    except (ValueError, AttributeError):
        return None

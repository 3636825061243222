"""Step 4, gold: rebuilt from silver when runs were loaded or silver moved since gold was built (a crash in between).

Gold records what it was built from (silver's versions and the pseudonymisation key's fingerprint) in
each table's commit metadata; both tables must match, since a crash may have come between their writes.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Optional

from pyspark.sql import Observation
from pyspark.sql import functions as F

from ..entities import APPRENTICESHIPS, ENTITIES, PROGRAMMES, PROJECTS
from .audit import GoldSummary
from .context import Job, results_or_raise
from .gold import build_gold_apprenticeship_projects, build_gold_apprenticeships
from .pseudonymise import key_fingerprint, pseudonymise_personal_data
from .tables import GOLD_TABLES, last_commit, overwrite_table, read_table, silver_table, table_versions

log = logging.getLogger("multiverse_etl.transform")

SILVER_TABLES = tuple(silver_table(spec) for spec in ENTITIES)


def refresh_gold(job: Job, force: bool) -> Optional[GoldSummary]:
    """Rebuild both gold tables side by side when needed; their counts, or None when gold was up to date."""
    spark, lake = job.spark, job.lake
    # Gold depends on silver's versions and on the pseudonymisation key (a new key must re-hash gold).
    fingerprint = key_fingerprint(job.pseudonymisation_key) if job.pseudonymisation_key else "off"
    versions = {**table_versions(spark, lake, SILVER_TABLES), "pseudonyms": fingerprint}
    built_from = [_gold_source_versions(last_commit(spark, lake, table).get("userMetadata")) for table in GOLD_TABLES]
    if not force and all(b == versions for b in built_from):
        log.info("gold is up to date with silver %s", versions)
        return None
    start = time.monotonic()
    silver = {spec.name: read_table(spark, lake, silver_table(spec)) for spec in ENTITIES}
    apprenticeships, projects, programmes = (silver[s.name] for s in (APPRENTICESHIPS, PROJECTS, PROGRAMMES))
    frames = {
        str(APPRENTICESHIPS.gold.table): build_gold_apprenticeships(apprenticeships, programmes, projects),
        str(PROJECTS.gold.table): build_gold_apprenticeship_projects(projects, apprenticeships, programmes),
    }
    seen = {}
    for spec in (APPRENTICESHIPS, PROJECTS):  # each gold table's rows, and its orphans (an unknown parent)
        table, flag = str(spec.gold.table), str(spec.gold.known_flag)
        seen[table] = Observation(f"gold_{spec.name}_{uuid.uuid4().hex[:8]}")
        frames[table] = frames[table].observe(
            seen[table], F.count(F.lit(1)).alias("rows"), F.sum(F.when(~F.col(flag), 1).otherwise(0)).alias("orphans")
        )
        if job.pseudonymisation_key:  # transform.pseudonymise_gold: personal columns become keyed pseudonyms
            frames[table] = pseudonymise_personal_data(frames[table], job.pseudonymisation_key)
    metadata = {"silver_versions": versions, "job_id": job.job_id}
    results_or_raise(
        {table: job.pool.submit(overwrite_table, frame, lake, table, metadata) for table, frame in frames.items()}
    )
    a, p = seen[str(APPRENTICESHIPS.gold.table)].get, seen[str(PROJECTS.gold.table)].get
    summary = GoldSummary(int(a["rows"]), int(p["rows"]), int(a["orphans"] or 0), int(p["orphans"] or 0))
    log.info(
        "gold rebuilt from silver %s: %d apprenticeships (%d with an unknown programme), %d projects (%d with an "
        "unknown apprenticeship) in %.1fs",
        versions,
        summary.gold_apprenticeships,
        summary.orphan_apprenticeships,
        summary.gold_apprenticeship_projects,
        summary.orphan_projects,
        time.monotonic() - start,
        extra={
            "step": "gold",
            "gold_apprenticeships": summary.gold_apprenticeships,
            "gold_apprenticeship_projects": summary.gold_apprenticeship_projects,
            "duration_s": round(time.monotonic() - start, 3),
        },
    )
    return summary


def _gold_source_versions(user_metadata: Optional[str]) -> Optional[dict[str, int]]:
    try:
        return json.loads(user_metadata or "{}").get("silver_versions")
    except (ValueError, AttributeError):
        return None

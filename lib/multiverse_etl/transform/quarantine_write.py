"""Step 2, quarantine: every entity's rejected records of a run in one write, replacing an earlier attempt's."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from .bronze import Prepared
from .context import Job
from .quarantine import quarantine_records
from .read import LoadPlan
from .tables import QUARANTINE_TABLE, last_commit, replace_run_rows

log = logging.getLogger("multiverse_etl.transform")


@dataclass(frozen=True)
class QuarantineOutcome:
    """Rows written per entity (as observed while writing), and why they do not match Delta's own count."""

    written: Mapping[str, int] = field(default_factory=dict)
    mismatches: tuple[str, ...] = ()


def write_quarantine(job: Job, plan: LoadPlan, prepared: Mapping[str, Prepared]) -> QuarantineOutcome:
    rejecting = [p for p in prepared.values() if p.quarantined_rows]
    if not rejecting:
        return QuarantineOutcome({name: 0 for name in prepared})
    rows = functools.reduce(DataFrame.unionByName, [p.ranked.transform(quarantine_records(p.spec)) for p in rejecting])
    seen = Observation(f"quarantine_{uuid.uuid4().hex[:8]}")
    rows = rows.observe(
        seen, *[F.sum(F.when(F.col("entity") == name, 1).otherwise(0)).alias(name) for name in prepared]
    )
    start = time.monotonic()
    replace_run_rows(rows.repartition(1), job.lake, QUARANTINE_TABLE, plan.run_id, plan.ingest_date)
    metrics = last_commit(job.spark, job.lake, QUARANTINE_TABLE)["operationMetrics"] or {}
    written = int(metrics.get("numOutputRows", 0))
    by_entity = {name: int(seen.get.get(name) or 0) for name in prepared}
    observed = sum(by_entity.values())
    seconds = time.monotonic() - start
    log.info(
        "run %s: %d quarantined rows written in %.1fs",
        plan.run_id,
        observed,
        seconds,
        extra={
            "step": "quarantine",
            "landing_run_id": plan.run_id,
            "quarantined": by_entity,
            "duration_s": round(seconds, 3),
        },
    )
    mismatches = () if written == observed else (f"quarantine: {observed} rows sent, Delta wrote {written}",)
    return QuarantineOutcome(by_entity, mismatches)

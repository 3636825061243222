"""Step 2, quarantine: each new bad version of a run, every entity in one append.

A version quarantine already holds (an earlier run's, or a failed attempt's of this run) is classified `known_bad`
and never reaches here; a bad version landed twice in one run (a shifted list) is written once, like bronze.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Mapping

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from .classify import REVISIT, without_copies
from .context import Job
from .prepare import Prepared
from .quarantine import quarantine_records
from .read import LoadPlan
from .results import QuarantineOutcome
from .tables import QUARANTINE_TABLE, append_versions

log = logging.getLogger("multiverse_etl.transform")


def write_quarantine(job: Job, plan: LoadPlan, prepared: Mapping[str, Prepared]) -> QuarantineOutcome:
    rejecting = [p for p in prepared.values() if p.quarantined_rows and p.ranked is not None]
    if not rejecting:
        return QuarantineOutcome({name: 0 for name in prepared})
    rows = functools.reduce(DataFrame.unionByName, [_new_bad_versions(p) for p in rejecting])
    seen = Observation(f"quarantine_{uuid.uuid4().hex[:8]}")
    rows = rows.observe(
        seen, *[F.sum(F.when(F.col("entity") == name, 1).otherwise(0)).alias(name) for name in prepared]
    )
    start = time.monotonic()
    written = append_versions(rows.repartition(1), job.lake, QUARANTINE_TABLE)
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


def _new_bad_versions(p: Prepared) -> DataFrame:
    """The entity's rejected records, each version once (its latest occurrence in the run)."""
    assert p.ranked is not None and p.classified is not None
    rejected = without_copies(p.ranked.where(~F.col(REVISIT)), p.classified, int(p.classes.get("copies", 0)))
    return rejected.transform(quarantine_records(p.spec))

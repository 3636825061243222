"""The transform job: committed landing runs → bronze → silver (+ quarantine) → gold → audit.

Runs are loaded oldest first, one at a time, under the lake's writer lock. Each run goes through
the steps, each in its own module and each returning what it did: `bronze.load_bronze` (landing →
bronze, validated and ranked), `quarantine_write.write_quarantine`, `merge.merge_silver` per entity
(programmes beside apprenticeships, projects after apprenticeships, so that projects of deleted
apprenticeships are deleted with them). This loop assembles the run's reconciliation from the
returned outcomes; gold (`gold_refresh`) follows once at the end, merging what the silver MERGEs
changed (or rebuilt whole), and the audit rows, the runs' "loaded" markers, are written last. Every step is idempotent, so a crash at any point is repaired by
running the transform again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Optional

from pyspark.sql import SparkSession

from ..config import Config, TransformConfig
from ..entities import APPRENTICESHIPS, ENTITIES, LOAD_ORDER, PROGRAMMES, PROJECTS
from ..landing import committed_runs
from ..lock import lake_lock
from ..spark_jobs import JobCounter
from ..storage import Storage, open_storage
from .audit import FAILED, LOADED, GoldSummary, RunReport, TransformResult, write_audit
from .bronze import load_bronze
from .context import Job
from .deletions import listed_parents
from .gold_incremental import SilverChanges
from .gold_refresh import refresh_gold
from .merge import MergeOutcome, merge_silver
from .pseudonymise import pseudonymisation_key
from .quarantine_write import write_quarantine
from .read import LoadPlan, plan_run
from .reconcile import ReconciliationError, entity_counts, reconcile_run
from .tables import Lake, ensure_tables, live_rows, loaded_run_ids

log = logging.getLogger("multiverse_etl.transform")


def run_transform(
    spark: SparkSession,
    config: Config,
    storage: Optional[Storage] = None,
    take_lock: bool = True,
    rebuild_gold: bool = False,
) -> TransformResult:
    """Load every committed landing run not loaded yet; bring gold up to date; audit. Raises on any mismatch.

    `take_lock=False` when the caller (the pipeline) already holds the lake's writer lock; `rebuild_gold`
    rebuilds gold whole even where merging what silver changed would do.
    """
    storage = storage or open_storage(config.lake.root, config.s3)
    job_id = f"transform-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    # Checked before anything is loaded: a missing key must not fail the job after silver moved.
    key = pseudonymisation_key(config.transform.pseudonymise_key_env) if config.transform.pseudonymise_gold else None
    lake = Lake(config.lake.root, config.s3.spark_scheme)
    if not take_lock:
        return _run(spark, lake, storage, job_id, key, config.transform, rebuild_gold)
    with lake_lock(storage, owner=job_id):
        return _run(spark, lake, storage, job_id, key, config.transform, rebuild_gold)


def _run(
    spark: SparkSession, lake: Lake, storage: Storage, job_id: str, key: str | None, tc: TransformConfig, rebuild: bool
) -> TransformResult:
    started, result, jobs, changes = time.monotonic(), TransformResult(job_id), JobCounter(spark), SilverChanges()
    with ThreadPoolExecutor(max_workers=len(LOAD_ORDER), thread_name_prefix="transform") as pool:
        job = Job(spark, lake, job_id, pool, key, tc.on_unknown_fields, tc.gold_merge_max_share)
        ensure_tables(spark, lake)
        loaded = loaded_run_ids(spark, lake)
        pending = [plan_run(m, ENTITIES) for m in committed_runs(storage) if m.run_id not in loaded]
        log.info(
            "transform %s: %d committed run(s) to load (%d loaded before) in %s",
            job_id,
            len(pending),
            len(loaded),
            lake.root,
        )
        try:
            for plan in pending:
                report, run_changes = load_run(job, plan)
                if report.mismatches:
                    write_audit(spark, lake, job_id, [report], FAILED, GoldSummary())
                    raise ReconciliationError(
                        f"run {plan.run_id} does not reconcile (its audit row says 'failed'; the run stays pending): "
                        + "; ".join(report.mismatches)
                    )
                result.runs.append(report)
                changes = changes.then(run_changes)
        finally:
            # Runs loaded before a failure keep their load: gold follows silver and they are marked loaded.
            if result.runs or not pending:
                gold = refresh_gold(job, force=bool(result.runs), changes=changes, rebuild=rebuild)
                result.gold_mode, result.gold, result.spark_jobs = gold.mode, gold.summary, jobs.jobs
                write_audit(spark, lake, job_id, result.runs, LOADED, result.gold, result.spark_jobs)
    result.duration_s = time.monotonic() - started
    for line in result.summary_lines():
        log.info("transform summary | %s", line)
    log.info("transform %s finished: %d run(s) loaded", job_id, len(result.runs), extra=result.summary_extra())
    return result


def load_run(job: Job, plan: LoadPlan) -> tuple[RunReport, SilverChanges]:
    """One run through bronze, quarantine and silver; its report, reconciled from the steps' outcomes, and what
    its MERGEs changed (what gold follows)."""
    report = RunReport(plan.run_id, plan.ingest_date, plan.mode, dt.datetime.now(dt.timezone.utc))
    log.info(
        "run %s (%s, started %s): loading %s",
        plan.run_id,
        plan.mode,
        plan.started_at.isoformat(),
        ", ".join(f"{s.name} {plan.records[s.name]} records/{plan.pages[s.name]} pages" for s in LOAD_ORDER),
    )
    prepared = load_bronze(job, plan)
    try:
        parents = listed_parents(
            job.spark, job.lake, plan, PROJECTS, prepared[PROJECTS.name].landing.get("empty_parents")
        )
        quarantine = write_quarantine(job, plan, prepared)
        # Programmes depend on nothing; projects follow apprenticeships (their deletions cascade).
        programmes = job.pool.submit(merge_silver, job, plan, prepared[PROGRAMMES.name], parents)
        merged: dict[str, MergeOutcome] = {}
        try:
            for spec in (APPRENTICESHIPS, PROJECTS):
                merged[spec.name] = merge_silver(job, plan, prepared[spec.name], parents)
        finally:
            wait([programmes])  # never leave its MERGE running behind a failure, or its rows unpersisted under it
        merged[PROGRAMMES.name] = programmes.result()
    finally:
        for value in prepared.values():
            value.unpersist()
    live = live_rows(job.spark, job.lake)
    for spec in LOAD_ORDER:
        p = prepared[spec.name]
        report.entities.append(
            entity_counts(plan, p, quarantine.written.get(spec.name, 0), merged[spec.name], live[spec.name])
        )
        report.quarantine_reasons.update({f"{spec.name}/{reason}": n for reason, n in p.reasons.items()})
    if job.drift_policy != "ignore":  # schema drift per entity and field, into the audit row (drift.py)
        report.schema_drift = [item for spec in LOAD_ORDER for item in prepared[spec.name].drift or ()]
    report.mismatches = reconcile_run(report.entities) + list(quarantine.mismatches)
    report.finished_at = dt.datetime.now(dt.timezone.utc)
    return report, SilverChanges.of({spec: merged[spec.name] for spec in LOAD_ORDER})

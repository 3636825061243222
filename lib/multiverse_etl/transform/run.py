"""The transform job: committed landing runs → bronze → silver (+ quarantine) → gold → audit.

Runs are loaded oldest first, one at a time, under the lake's writer lock. Each run goes through
the steps, each in its own module and each returning what it did: `prepare.prepare_entity` per entity
(the landing classified against the lake; only changed records to bronze, validated and ranked),
`quarantine_write.write_quarantine`, `merge.merge_silver` per entity, side by side (projects planned after
apprenticeships, from what apprenticeships' plan deletes, so that projects of deleted apprenticeships are
deleted with them; their MERGEs then run together). A run that changes nothing stops after its classification. This loop assembles the run's reconciliation from the
returned outcomes; gold (`gold_refresh`) follows once at the end, merging what the silver MERGEs
changed (or rebuilt whole), and the audit rows, the runs' "loaded" markers, are written last. Every step is idempotent, so a crash at any point is repaired by
running the transform again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Iterator, Mapping, Optional

from pyspark.sql import SparkSession

from ..config import Config, TransformConfig
from ..entities import APPRENTICESHIPS, BY_NAME, ENTITIES, LOAD_ORDER, PROGRAMMES, PROJECTS
from ..ids import job_run_id
from ..lake import Lake
from ..landing import committed_runs
from ..lock import lake_lock
from ..spark_jobs import JobCounter
from ..storage import Storage
from .audit import FAILED, LOADED, write_audit
from .context import Job, results_or_raise
from .deletions import listed_parents
from .delta_log import table_version
from .drift import apply_policy
from .frames import release
from .gold import SilverChanges
from .gold_refresh import CountedGold, refresh_gold
from .merge import apply_silver, merge_silver, parents_deleted_after, plan_silver
from .prepare import Prepared, prepare_entity
from .pseudonymise import pseudonymisation_key
from .quarantine_write import write_quarantine
from .read import LoadPlan, PageChecks, landing_problems, plan_run, read_error_of
from .reconcile import ReconciliationError, entity_counts, reconcile_run
from .results import GoldSummary, MergeOutcome, RunReport, TransformResult
from .skip import LoadedRun, carried_classes, lake_versions, landing_key, skippable
from .tables import (
    GOLD_TABLES,
    QUARANTINE_TABLE,
    bronze_table,
    delete_run_rows,
    ensure_tables,
    loaded_runs,
    silver_table,
    table_versions,
)

# Landings up to this many records are loaded without adaptive query execution, and with one shuffle partition
# per this many records (docs/transform.md).
SMALL_LANDING_RECORDS = 200_000
RECORDS_PER_SHUFFLE_PARTITION = 100_000
ADAPTIVE = "spark.sql.adaptive.enabled"
BROADCAST_THRESHOLD = "spark.sql.autoBroadcastJoinThreshold"
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
CODEGEN_FACTORY = "spark.sql.codegen.factoryMode"
# Runs after a lake's first load handling up to this many records interpret what whole-stage code generation leaves
# out (measured: a gain at 15,600 records, even at 156,000; docs/transform.md).
INTERPRETED_RECORDS = 50_000
# Silver's MERGE sources are held already (`frames.hold`: a local checkpoint, computed once); Delta would copy each
# into a local checkpoint of its own again (a Spark job per MERGE) because it is not a Delta scan. Gold's are not
# held: its MERGEs keep Delta's default.
SILVER_MERGE_SETTINGS = {"spark.databricks.delta.merge.materializeSource": "none"}
# The tables whose versions say whether the lake moved since a run was loaded (skip.py).
LAKE_STATE_TABLES = (*(silver_table(spec) for spec in LOAD_ORDER), QUARANTINE_TABLE)

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
    lake = Lake.of(config, storage)
    job_id = job_run_id("transform")
    # Checked before anything is loaded: a missing key must not fail the job after silver moved.
    key = pseudonymisation_key(config.transform.pseudonymise_key_env) if config.transform.pseudonymise_gold else None
    if not take_lock:
        return _run(spark, lake, job_id, key, config.transform, rebuild_gold)
    with lake_lock(lake.storage, owner=job_id):
        return _run(spark, lake, job_id, key, config.transform, rebuild_gold)


def _run(
    spark: SparkSession, lake: Lake, job_id: str, key: str | None, tc: TransformConfig, rebuild: bool
) -> TransformResult:
    started, result, jobs, changes = time.monotonic(), TransformResult(job_id), JobCounter(spark), SilverChanges()
    with ThreadPoolExecutor(max_workers=len(LOAD_ORDER), thread_name_prefix="transform") as pool:
        job = Job(spark, lake, job_id, pool, key, tc.on_unknown_fields, tc.gold_merge_max_share)
        ensure_tables(spark, lake)
        loaded, latest = loaded_runs(spark, lake)
        previous = _loaded_run(latest)
        pending = [plan_run(m, ENTITIES) for m in committed_runs(lake.storage) if m.run_id not in loaded]
        log.info(
            "transform %s: %d committed run(s) to load (%d loaded before) in %s",
            job_id,
            len(pending),
            len(loaded),
            lake.root,
        )
        # What the run's joins handle: the landings, and silver's live rows they are classified against.
        records = sum(sum(p.records.values()) for p in pending) + _live_rows(previous)
        partitions = int(spark.conf.get(SHUFFLE_PARTITIONS, "200") or "200")
        small = small_landing_settings(records, partitions, first_load=not loaded)
        with session_settings(spark, small):
            try:
                for plan in pending:
                    try:
                        with session_settings(spark, SILVER_MERGE_SETTINGS):
                            report, run_changes = load_run(job, plan, previous)
                    except BaseException:  # what the failed run's MERGEs changed before it failed is not known
                        changes = changes.then(SilverChanges(complete=False))  # gold is rebuilt, never merged without
                        raise
                    changes = changes.then(run_changes)  # silver moved, even under a run that does not reconcile
                    if report.mismatches:
                        write_audit(spark, lake, job_id, [report], FAILED, GoldSummary())
                        raise ReconciliationError(
                            f"run {plan.run_id} does not reconcile (its audit row says 'failed'; the run stays "
                            "pending): " + "; ".join(report.mismatches)
                        )
                    result.runs.append(report)
                    previous = LoadedRun(
                        report.run_id,
                        report.landing_digests,
                        report.lake_versions,
                        {c.entity: c.as_dict() for c in report.entities},
                    )
            finally:
                try:  # runs loaded before a failure keep their load: gold follows silver and they are marked loaded
                    if result.runs or not pending:
                        gold = refresh_gold(
                            job, bool(result.runs), changes, rebuild=rebuild, counted=CountedGold.of(latest)
                        )
                        result.gold_mode, result.gold, result.spark_jobs = gold.mode, gold.summary, jobs.jobs
                        if gold.summary.gold_apprenticeships is not None and result.runs:  # what gold's counts hold for
                            gold_versions = table_versions(lake.storage, GOLD_TABLES)
                            for report in result.runs:
                                report.lake_versions.update(gold_versions)
                        write_audit(spark, lake, job_id, result.runs, LOADED, result.gold, result.spark_jobs)
                finally:
                    changes.release()
    result.duration_s = time.monotonic() - started
    for line in result.summary_lines():
        log.info("transform summary | %s", line)
    log.info("transform %s finished: %d run(s) loaded", job_id, len(result.runs), extra=result.summary_extra())
    return result


@contextlib.contextmanager
def session_settings(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """`settings` on the session for the block; each put back as it was (or unset) after it."""
    before = {name: spark.conf.get(name, None) for name in settings}
    try:
        for name, value in settings.items():
            spark.conf.set(name, value)
        yield
    finally:
        for name, previous_value in before.items():
            if previous_value is None:
                spark.conf.unset(name)
            else:
                spark.conf.set(name, previous_value)


def small_landing_settings(records: int, shuffle_partitions: int, first_load: bool = True) -> dict[str, str]:
    """Session settings for a load handling `records` rows: none for a large load; for a small one adaptive
    execution off and no broadcast joins Spark would choose by size (each adaptive query stage and each broadcast is
    a Spark job of its own; a shuffle join of two small sides runs inside the job that needs it; the lookups the
    code hints, a few keys against every landed record, are still broadcast), and one shuffle partition per
    `RECORDS_PER_SHUFFLE_PARTITION` records (never more than configured): on a small landing a shuffle's cost is
    its tasks, not its rows (an incremental run at 2,000 apprenticeships ran 102 tasks in one planning job at 8).

    A run of up to `INTERPRETED_RECORDS` that is not the lake's first load also evaluates the expressions outside
    whole-stage code generation interpreted (`spark.sql.codegen.factoryMode` NO_CODEGEN): its cost is then Delta's
    bookkeeping and MERGEs, whose encoders and projections generate their Java source again in every task (the
    compiled class comes from the cache; the source is made and formatted anew) for a few hundred rows. A first
    load, which validates and ranks every record, and larger runs keep code generation: interpreted, their rows
    cost more than the source saved (docs/transform.md, session 26)."""
    if records > SMALL_LANDING_RECORDS:
        return {}
    partitions = max(1, min(shuffle_partitions, -(-records // RECORDS_PER_SHUFFLE_PARTITION)))
    settings = {ADAPTIVE: "false", BROADCAST_THRESHOLD: "-1", SHUFFLE_PARTITIONS: str(partitions)}
    if not first_load and records <= INTERPRETED_RECORDS:
        settings[CODEGEN_FACTORY] = "NO_CODEGEN"
    return settings


def _live_rows(previous: Optional[LoadedRun]) -> int:
    """Silver's live rows after the last loaded run, as its audit row counted them (0: no such row)."""
    if previous is None:
        return 0
    return sum(int(counts.get("silver_live_rows") or 0) for counts in previous.entities.values())


def _loaded_run(row: Optional[dict]) -> Optional[LoadedRun]:
    """The last loaded run as `skip` needs it, from its audit row (None: none, or a row older than digests)."""
    if row is None or not row.get("landing_digests") or not row.get("lake_versions"):
        return None
    entities = {e["entity"]: e for e in row.get("entities") or ()}
    return LoadedRun(row["run_id"], dict(row["landing_digests"]), dict(row["lake_versions"]), entities)


def load_run(job: Job, plan: LoadPlan, previous: Optional[LoadedRun] = None) -> tuple[RunReport, SilverChanges]:
    """One run through classification, bronze, quarantine and silver; its report, reconciled from the steps'
    outcomes, and what its MERGEs changed (what gold follows)."""
    report = RunReport(plan.run_id, plan.ingest_date, plan.mode, dt.datetime.now(dt.timezone.utc))
    log.info(
        "run %s (%s, started %s): loading %s",
        plan.run_id,
        plan.mode,
        plan.started_at.isoformat(),
        ", ".join(f"{s.name} {plan.records[s.name]} records/{plan.pages[s.name]} pages" for s in LOAD_ORDER),
    )
    keys = {
        s.name: landing_key(
            plan.manifest.entity(s.name).digest if plan.manifest else None, plan.complete_listing[s.name]
        )
        for s in LOAD_ORDER
    }
    skipped = skippable(LOAD_ORDER, keys, previous, table_versions(job.lake.storage, LAKE_STATE_TABLES))
    report.landing_digests = {name: key for name, key in keys.items() if key is not None}
    report.skipped = sorted(skipped)
    if skipped:
        log.info(
            "run %s: %s landed exactly as run %s: not read",
            plan.run_id,
            ", ".join(sorted(skipped)),
            previous.run_id if previous else "?",
        )
    prepared = prepare_all(job, plan, {name: previous.entities[name] for name in skipped} if previous else {})
    merged: dict[str, MergeOutcome] = {}
    try:
        projects = prepared[PROJECTS.name]
        parents = listed_parents(job.spark, projects.classified, PROJECTS, projects.landing.empty_parents)
        quarantine = write_quarantine(job, plan, prepared)
        # Programmes depend on nothing. Projects' deletions cascade from apprenticeships': projects are planned from
        # apprenticeships' plan (what will be deleted once it is merged) and MERGEd while apprenticeships' MERGE runs.
        side = {PROGRAMMES.name: job.pool.submit(merge_silver, job, plan, prepared[PROGRAMMES.name], parents)}
        parent, parent_plan = prepared[APPRENTICESHIPS.name], None
        try:
            parent_plan = plan_silver(job, plan, parent, parents)
            side[APPRENTICESHIPS.name] = job.pool.submit(apply_silver, job, plan, parent, parent_plan)
            gone = parents_deleted_after(job, parent_plan)
            merged[PROJECTS.name] = merge_silver(job, plan, projects, parents, gone)
        finally:
            wait(side.values())  # never leave a MERGE running behind a failure, or its rows unpersisted under it
            if parent_plan is not None:  # apprenticeships' MERGE source: released once that MERGE is done
                parent_plan.release()
            merged.update({name: f.result() for name, f in side.items() if f.exception() is None})
        for future in side.values():
            future.result()  # its failure, if it failed
    except BaseException:  # the rows a first load held for gold, of the entities appended before the failure
        for outcome in merged.values():
            release(outcome.rows)
        raise
    finally:
        for value in prepared.values():
            value.unpersist()
    for spec in LOAD_ORDER:
        p = prepared[spec.name]
        report.entities.append(entity_counts(plan, p, quarantine.written.get(spec.name, 0), merged[spec.name]))
        report.quarantine_reasons.update({f"{spec.name}/{reason}": n for reason, n in p.reasons.items()})
    if job.drift_policy != "ignore":  # schema drift per entity and field, into the audit row (drift.py)
        report.schema_drift = [item for spec in LOAD_ORDER for item in prepared[spec.name].drift or ()]
    report.mismatches = reconcile_run(report.entities) + list(quarantine.mismatches)
    report.lake_versions = lake_versions(table_versions(job.lake.storage, LAKE_STATE_TABLES))
    report.finished_at = dt.datetime.now(dt.timezone.utc)
    return report, SilverChanges.of({spec: merged[spec.name] for spec in LOAD_ORDER})


def prepare_all(job: Job, plan: LoadPlan, carried: Mapping[str, Mapping[str, Any]]) -> dict[str, Prepared]:
    """Every entity classified and prepared side by side (those in `carried` are not read: their counts come from
    the identical run's audit row); a landing that does not match its manifest, or schema drift the policy refuses,
    stops the run here and its bronze rows are taken back out."""
    # The lake's first load (nothing in silver or quarantine yet): nothing to classify against.
    first_load = all(
        table_version(job.lake.storage, t) == 0 for t in (*map(silver_table, LOAD_ORDER), QUARANTINE_TABLE)
    )
    try:
        reading = [spec for spec in LOAD_ORDER if spec.name not in carried]
        futures = {spec.name: job.pool.submit(prepare_entity, job, plan, spec, first_load) for spec in reading}
        prepared = results_or_raise(futures, cleanup=Prepared.unpersist)
        for name, counts in carried.items():
            landing = PageChecks(pages=plan.pages[name], records=plan.records[name])  # as the manifest says
            prepared[name] = Prepared(BY_NAME[name], landing, carried_classes(counts))
        problems = [
            p
            for spec in LOAD_ORDER
            for p in landing_problems(plan.run_id, spec.name, prepared[spec.name].landing, plan.pages[spec.name])
        ]
        try:
            if problems:
                raise read_error_of(plan.run_id, problems)
            # warn, or (on_unknown_fields: fail) take the run's bronze back out and stop
            apply_policy(plan.run_id, [item for p in prepared.values() for item in p.drift or ()], job.drift_policy)
        except Exception:
            for value in prepared.values():
                value.unpersist()
            raise
    except Exception:
        for spec in LOAD_ORDER:  # whatever an entity's job committed before the failure
            delete_run_rows(job.spark, job.lake, bronze_table(spec), plan.run_id, plan.ingest_date)
        raise
    return prepared

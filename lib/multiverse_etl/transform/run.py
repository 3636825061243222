"""The transform job: committed landing runs → bronze → silver (+ quarantine) → gold → audit.

Runs are loaded oldest first, one at a time, under the lake's writer lock. For each run, every
entity goes through its own chain, side by side with the others: its landing is written to
bronze, then its bronze rows are validated and ranked (kept in memory). A landing that cannot be
read, or does not match its manifest, stops the run there and its bronze rows are taken back out.
Then the run's rejected records of all entities go to quarantine in one write, and the
deduplicated rest is merged into silver (programmes beside apprenticeships, projects after
apprenticeships, so that projects of deleted apprenticeships are deleted with them). Gold is
rebuilt once at the end (both tables side by side), and the audit rows, the runs' "loaded"
markers, are written last. Every step is idempotent, so a crash at any point is repaired by
running the transform again.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..config import Config
from ..landing import committed_runs
from ..lock import lake_lock
from ..storage import Storage, open_storage
from .audit import FAILED, LOADED, GoldSummary, RunReport, audit_row, audit_rows
from .changes import ACTION, DELETE, INSERT, UNCHANGED, UPDATE, merge_source, plan_deletions, plan_upserts, silver_rows
from .clean import normalize_unicode, to_integer, validate_records
from .dedupe import RANK_COLUMN, rank_versions
from .drift import apply_policy, field_presence, schema_drift, summary_line  # schema drift (issue 15)
from .gold import build_gold_apprenticeship_projects, build_gold_apprenticeships
from .pseudonymise import pseudonymisation_key, pseudonymise_personal_data
from .quarantine import is_valid, possible_reasons, quarantine_records
from .read import (LandingReadError, RunPlan, explode_pages, find_unreadable_part, is_read_failure, landing_problems, landing_read_error,
                   page_checks, parse_id_list, plan_run,
                   read_landing_pages)
from .reconcile import EntityCounts, ReconciliationError, reconcile_run, summary_table
from .schemas import ENTITIES, KEYS, SOURCE_CONTRACT
from .tables import (GOLD_TABLES, QUARANTINE_TABLE, Lake, append_audit, append_rows, bronze_table, delete_run_rows,
                     ensure_tables, is_empty_table, last_commit, loaded_run_ids, merge_changes, overwrite_table,
                     read_run_rows, read_table, replace_run_rows, silver_table, table_versions)

log = logging.getLogger("multiverse_etl.transform")

# Apprenticeships before projects: the projects of a deleted apprenticeship are deleted with it.
LOAD_ORDER = ("programmes", "apprenticeships", "projects")
SILVER_TABLES = tuple(silver_table(e) for e in ENTITIES)
# A landing part is written to bronze by one task; files of at most this many rows let the reads that
# follow split it across tasks (docs/transform.md#performance).
BRONZE_ROWS_PER_FILE = 250_000


@dataclass
class TransformResult:
    """What one transform job did."""

    job_id: str
    runs: list[RunReport] = field(default_factory=list)
    gold_rebuilt: bool = False
    gold: GoldSummary = GoldSummary()
    duration_s: float = 0.0

    @property
    def loaded_run_ids(self) -> list[str]:
        return [report.run_id for report in self.runs]

    def summary_lines(self) -> list[str]:
        extra = [
            f"runs loaded: {len(self.runs)}; gold {'rebuilt' if self.gold_rebuilt else 'unchanged'}"
            + (f": {self.gold.gold_apprenticeships} apprenticeships ({self.gold.orphan_apprenticeships} with an unknown "
               f"programme), {self.gold.gold_apprenticeship_projects} projects ({self.gold.orphan_projects} with an "
               f"unknown apprenticeship)" if self.gold_rebuilt else "")
            + f"; {self.duration_s:.1f}s"
        ]
        drift = [line for r in self.runs if (line := summary_line(r.run_id, r.schema_drift))]  # schema drift hook
        return summary_table([(r.run_id, r.entities, r.mismatches) for r in self.runs], drift + extra)


def run_transform(spark: SparkSession, config: Config, storage: Optional[Storage] = None,
                  take_lock: bool = True) -> TransformResult:
    """Load every committed landing run not loaded yet; rebuild gold; audit. Raises on any mismatch.

    `take_lock=False` when the caller (the pipeline) already holds the lake's writer lock.
    """
    storage = storage or open_storage(config.lake.root, config.s3)
    job_id = f"transform-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    # Checked before anything is loaded: a missing key must not fail the job after silver moved.
    key = pseudonymisation_key(config.transform.pseudonymise_key_env) if config.transform.pseudonymise_gold else None
    transform = _Transform(spark, Lake(config.lake.root, config.s3.spark_scheme), storage, job_id, key,
                           drift_policy=config.transform.on_unknown_fields)
    if not take_lock:
        return transform.run()
    with lake_lock(storage, owner=job_id):
        return transform.run()


class _Transform:
    def __init__(self, spark: SparkSession, lake: Lake, storage: Storage, job_id: str,
                 pseudonymisation_key: Optional[str] = None, drift_policy: str = "warn") -> None:
        self.spark = spark
        self.drift_policy = drift_policy  # transform.on_unknown_fields (drift.py)
        self.lake = lake
        self.storage = storage
        self.job_id = job_id
        self.pseudonymisation_key = pseudonymisation_key

    # ------------------------------------------------------------ the job

    def run(self) -> TransformResult:
        with ThreadPoolExecutor(max_workers=len(LOAD_ORDER), thread_name_prefix="transform") as self._pool:
            return self._run()

    def _run(self) -> TransformResult:
        started = time.monotonic()
        result = TransformResult(self.job_id)
        ensure_tables(self.spark, self.lake)
        loaded = loaded_run_ids(self.spark, self.lake)
        pending = [plan_run(m, ENTITIES) for m in committed_runs(self.storage) if m["run_id"] not in loaded]
        log.info("transform %s: %d committed run(s) to load (%d loaded before) in %s", self.job_id, len(pending),
                 len(loaded), self.lake.root)
        try:
            for plan in pending:
                report = self.load_run(plan)
                if report.mismatches:
                    self._audit([report], FAILED, GoldSummary())
                    raise ReconciliationError(
                        f"run {plan.run_id} does not reconcile (its audit row says 'failed'; the run stays pending): "
                        + "; ".join(report.mismatches))
                result.runs.append(report)
        finally:
            # Runs loaded before a failure keep their load: gold is rebuilt and they are marked loaded.
            if result.runs or not pending:
                result.gold_rebuilt, result.gold = self.refresh_gold(force=bool(result.runs))
                self._audit(result.runs, LOADED, result.gold)
        result.duration_s = time.monotonic() - started
        for line in result.summary_lines():
            log.info("transform summary | %s", line)
        return result

    def _audit(self, reports: list[RunReport], status: str, gold: GoldSummary) -> None:
        if not reports:
            return
        rows = [audit_row(self.job_id, report, status, gold, self.spark.version) for report in reports]
        append_audit(audit_rows(self.spark, rows), self.lake)
        log.info("audit: %d run(s) marked %s: %s", len(rows), status, ", ".join(r.run_id for r in reports))

    # ------------------------------------------------------------ one run

    def load_run(self, plan: RunPlan) -> RunReport:
        report = RunReport(plan.run_id, plan.ingest_date, plan.mode, dt.datetime.now(dt.timezone.utc))
        log.info("run %s (%s, started %s): loading %s", plan.run_id, plan.mode, plan.started_at.isoformat(),
                 ", ".join(f"{e} {plan.records[e]} records/{plan.pages[e]} pages" for e in LOAD_ORDER))
        prepared = self.load_bronze(plan)
        try:
            listed_parents = self._listed_parents(plan, prepared["projects"].landing)
            quarantine_problems = self.write_quarantine(plan, prepared)
            # Programmes depend on nothing; projects follow apprenticeships (their deletions cascade).
            programmes = self._pool.submit(self.merge_silver, plan, prepared["programmes"], listed_parents)
            try:
                for entity in ("apprenticeships", "projects"):
                    self.merge_silver(plan, prepared[entity], listed_parents)
            finally:
                wait([programmes])  # never leave its MERGE running behind a failure, or its rows unpersisted under it
            programmes.result()
        finally:
            for entity in LOAD_ORDER:
                prepared[entity].ranked.unpersist()
        if self.drift_policy != "ignore":  # schema drift hook: per entity and field, into the audit row
            report.schema_drift = [item for e in LOAD_ORDER for item in prepared[e].drift or []]
        for entity in LOAD_ORDER:
            report.entities.append(prepared[entity].counts)
            for reason, n in prepared[entity].reasons.items():
                report.quarantine_reasons[f"{entity}/{reason}"] = n
        live = self._live_rows()
        for counts in report.entities:
            counts.silver_live_rows = live[counts.entity]
        report.mismatches = reconcile_run(report.entities) + quarantine_problems
        report.finished_at = dt.datetime.now(dt.timezone.utc)
        return report

    def load_bronze(self, plan: RunPlan) -> dict[str, "_Prepared"]:
        """Every entity's landing → bronze, each then validated and ranked (`prepare_entity`) as soon as its
        bronze is written; on any landing problem the run's bronze rows are taken back out."""
        try:
            # One chain per entity, side by side: a gzip part is read by one task, so while the largest
            # landing is still being read the other core validates the entities already in bronze.
            prepared = _results_or_raise({entity: self._pool.submit(self._bronze_and_prepare, plan, entity)
                                          for entity in LOAD_ORDER}, cleanup=lambda p: p.ranked.unpersist())
            problems = [p for e in LOAD_ORDER for p in landing_problems(plan.run_id, e, prepared[e].landing, plan.pages[e])]
            if problems:
                for entity in LOAD_ORDER:
                    prepared[entity].ranked.unpersist()
                raise read_error_of(plan.run_id, problems)
            try:  # schema drift hook: warn, or (on_unknown_fields: fail) take the run's bronze back out and stop
                apply_policy(plan.run_id, [item for e in LOAD_ORDER for item in prepared[e].drift or []], self.drift_policy)
            except Exception:
                for entity in LOAD_ORDER:
                    prepared[entity].ranked.unpersist()
                raise
        except Exception:
            for entity in LOAD_ORDER:  # whatever an entity's job committed before the failure
                delete_run_rows(self.spark, self.lake, bronze_table(entity), plan.run_id, plan.ingest_date)
            raise
        return prepared

    def _bronze_and_prepare(self, plan: RunPlan, entity: str) -> "_Prepared":
        return self.prepare_entity(plan, entity, self._bronze_entity(plan, entity))

    def _bronze_entity(self, plan: RunPlan, entity: str) -> dict[str, Any]:
        keys = plan.parts[entity]
        if not keys:
            log.info("run %s %s: no landing parts", plan.run_id, entity)
            return {"pages": 0, "records": 0, "rows": 0, "empty_parents": ""}
        start = time.monotonic()
        tag = uuid.uuid4().hex[:8]
        pages_seen, rows_seen = Observation(f"pages_{tag}"), Observation(f"rows_{tag}")
        try:
            pages = read_landing_pages(self.spark, self.lake.root, keys, self.lake.scheme)
            rows = (pages.observe(pages_seen, *page_checks(plan.run_id, entity))
                    .transform(explode_pages(plan.run_id))
                    .observe(rows_seen, F.count(F.lit(1)).alias("rows")))
            replace_run_rows(rows, self.lake, bronze_table(entity), plan.run_id, plan.ingest_date,
                             max_rows_per_file=BRONZE_ROWS_PER_FILE)
        except Exception as exc:
            if not is_read_failure(exc):
                raise
            culprit = find_unreadable_part(self.spark, self.lake.root, keys, self.lake.scheme) if len(keys) > 1 else keys[0]
            raise landing_read_error(plan.run_id, keys, exc, culprit) from exc
        observed = {**pages_seen.get, "rows": rows_seen.get["rows"]}
        log.info("run %s %s: bronze %d rows from %d pages in %d file(s) in %.1fs", plan.run_id, entity,
                 observed["rows"], observed["pages"], len(keys), time.monotonic() - start)
        return observed

    def _live_rows(self) -> dict[str, int]:
        """Live rows of each silver table, in one Spark job."""
        counts = [read_table(self.spark, self.lake, silver_table(e)).where(~F.col("is_deleted"))
                  .agg(F.count(F.lit(1)).alias("rows")).select(F.lit(e).alias("entity"), "rows") for e in ENTITIES]
        union = counts[0].unionByName(counts[1]).unionByName(counts[2])
        return {row.entity: int(row.rows) for row in union.collect()}

    def _listed_parents(self, plan: RunPlan, observed: dict[str, Any]) -> DataFrame:
        """Apprenticeship ids whose projects this run listed: parents of landed projects and of empty listings."""
        landed = read_run_rows(self.spark, self.lake, bronze_table("projects"), plan.run_id, plan.ingest_date).select(
            F.col("parent_apprenticeship_id").alias("apprenticeship_id"))
        schema = T.StructType([T.StructField("apprenticeship_id", T.LongType(), True)])
        empty = self.spark.createDataFrame([(pid,) for pid in parse_id_list(observed.get("empty_parents"))], schema)
        return landed.unionByName(empty).where(F.col("apprenticeship_id").isNotNull()).distinct()

    def prepare_entity(self, plan: RunPlan, entity: str, observed: dict[str, Any]) -> "_Prepared":
        """One entity of one run: validate and rank its bronze rows (kept in memory for what follows) and count them."""
        start = time.monotonic()
        counts = EntityCounts(entity, landed_pages=plan.pages[entity], landed_records=plan.records[entity],
                              pages_read=int(observed.get("pages") or 0), records_read=int(observed.get("records") or 0),
                              bronze_rows=int(observed.get("rows") or 0))
        bronze = read_run_rows(self.spark, self.lake, bronze_table(entity), plan.run_id, plan.ingest_date)
        # Validated and ranked once, kept for the counts, the quarantine and the plan; NFC after (see clean.py).
        ranked = bronze.transform(validate_records(entity)).transform(rank_versions(entity)).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            valid = is_valid(F.col("reasons"))
            stats = ranked.agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(F.when(valid, 1).otherwise(0)).alias("valid"),
                F.sum(F.when(F.col(RANK_COLUMN) > 1, 1).otherwise(0)).alias("duplicates"),
                F.sum(F.when(F.col(RANK_COLUMN) == 1, 1).otherwise(0)).alias("candidates"),
                *[F.sum(F.when(F.array_contains("reasons", reason), 1).otherwise(0)).alias(reason)
                  for reason in possible_reasons(entity)],
            ).first()
        except BaseException:
            ranked.unpersist()
            raise
        counts.bronze_read = int(stats["rows"])
        counts.valid_rows = int(stats["valid"] or 0)
        counts.quarantined_rows = counts.bronze_read - counts.valid_rows
        counts.duplicates_collapsed = int(stats["duplicates"] or 0)
        counts.upsert_candidates = int(stats["candidates"] or 0)
        reasons = {reason: int(stats[reason]) for reason in possible_reasons(entity) if stats[reason]}
        drift = None  # schema drift hook: one pass over the run's bronze records' keys (drift.py)
        if self.drift_policy != "ignore":
            contract = [f.name for f in SOURCE_CONTRACT[entity]]
            drift = schema_drift(entity, field_presence(bronze), contract, counts.bronze_read)
        log.info("run %s %s: %d bronze rows validated and ranked in %.1fs", plan.run_id, entity, counts.bronze_read,
                 time.monotonic() - start)
        return _Prepared(entity, counts, reasons, ranked, observed, drift)

    def write_quarantine(self, plan: RunPlan, prepared: dict[str, "_Prepared"]) -> list[str]:
        """Every entity's rejected records of the run in one write, replacing an earlier attempt's; mismatches."""
        rejecting = [p for p in prepared.values() if p.counts.quarantined_rows]
        if not rejecting:
            return []
        rows = functools.reduce(DataFrame.unionByName, [p.ranked.transform(quarantine_records(p.entity)) for p in rejecting])
        seen = Observation(f"quarantine_{uuid.uuid4().hex[:8]}")
        rows = rows.observe(seen, *[F.sum(F.when(F.col("entity") == p.entity, 1).otherwise(0)).alias(p.entity)
                                    for p in prepared.values()])
        start = time.monotonic()
        replace_run_rows(rows.repartition(1), self.lake, QUARANTINE_TABLE, plan.run_id, plan.ingest_date)
        written = int((last_commit(self.spark, self.lake, QUARANTINE_TABLE)["operationMetrics"] or {}).get("numOutputRows", 0))
        by_entity = seen.get
        for p in prepared.values():
            p.counts.quarantine_written = int(by_entity.get(p.entity) or 0)
        observed = sum(p.counts.quarantine_written for p in prepared.values())
        log.info("run %s: %d quarantined rows written in %.1fs", plan.run_id, observed, time.monotonic() - start)
        return [] if written == observed else [f"quarantine: {observed} rows sent, Delta wrote {written}"]

    def merge_silver(self, plan: RunPlan, prepared: "_Prepared", listed_parents: DataFrame) -> None:
        """One entity of one run: deduplicated valid rows → silver, by plan and guarded MERGE (counts filled in)."""
        spark, lake, entity, counts, ranked = self.spark, self.lake, prepared.entity, prepared.counts, prepared.ranked
        start = time.monotonic()
        changes: Optional[DataFrame] = None
        try:
            candidates = ranked.filter(F.col(RANK_COLUMN) == 1).transform(normalize_unicode(entity)).transform(silver_rows(entity))
            head = last_commit(spark, lake, silver_table(entity))
            if is_empty_table(head):
                # The first load: nothing to compare with, guard or delete; the rows are appended.
                counts.inserted = counts.upsert_candidates
                if counts.inserted:
                    counts.merge_inserted = append_rows(candidates, lake, silver_table(entity))
            else:
                current = read_table(spark, lake, silver_table(entity))
                upserts = candidates.transform(plan_upserts(entity, current))
                deletions = self._deletions(plan, entity, ranked, current, listed_parents)
                changes = (upserts if deletions is None else upserts.unionByName(deletions)).persist(StorageLevel.MEMORY_AND_DISK)
                planned = {row[ACTION]: int(row["count"]) for row in changes.groupBy(ACTION).count().collect()}
                counts.inserted, counts.updated = planned.get(INSERT, 0), planned.get(UPDATE, 0)
                counts.unchanged, counts.deleted = planned.get(UNCHANGED, 0), planned.get(DELETE, 0)
                if counts.inserted + counts.updated + counts.deleted:
                    actions = tuple(a for a in (INSERT, UPDATE, DELETE) if planned.get(a))
                    metrics = merge_changes(spark, lake, entity, merge_source(changes, None), actions, head["version"])
                    counts.merge_inserted, counts.merge_updated = metrics["inserted"], metrics["updated"]
        finally:
            if changes is not None:
                changes.unpersist()
        log.info("run %s %s: %d bronze rows, %d valid, %d quarantined %s, %d duplicates collapsed; silver %d inserted, "
                 "%d updated, %d unchanged, %d deleted (MERGE) in %.1fs", plan.run_id, entity, counts.bronze_read,
                 counts.valid_rows, counts.quarantined_rows,
                 json.dumps(prepared.reasons, sort_keys=True) if prepared.reasons else "", counts.duplicates_collapsed,
                 counts.inserted, counts.updated, counts.unchanged, counts.deleted, time.monotonic() - start)

    def _deletions(self, plan: RunPlan, entity: str, ranked: DataFrame, current: DataFrame,
                   listed_parents: DataFrame) -> Optional[DataFrame]:
        """What this run proves gone (see changes.plan_deletions), or None when it proves nothing.

        Apprenticeships: a complete listing of them, or a complete listing of projects (which holds
        one listing, maybe empty, per apprenticeship of the source: an incremental run with
        projects_scope 'all'), shows every id the source has. Projects: each listed parent's
        listing is complete, and the projects of deleted apprenticeships go with them.
        """
        present = _present_keys(entity, ranked)
        if entity == "programmes":
            if not plan.complete_listing[entity]:
                return None
            return plan_deletions(entity, current, present, plan.run_id, plan.started_at)
        if entity == "apprenticeships":
            if not (plan.complete_listing["apprenticeships"] or plan.complete_listing["projects"]):
                return None
            if plan.complete_listing["projects"]:
                present = present.unionByName(listed_parents)
            return plan_deletions(entity, current, present, plan.run_id, plan.started_at)
        deleted_parents = (read_table(self.spark, self.lake, silver_table("apprenticeships"))
                           .filter(F.col("is_deleted")).select("apprenticeship_id", "deleted_at", "deleted_by_run_id"))
        return plan_deletions(entity, current, present, plan.run_id, plan.started_at,
                              listed_parents=listed_parents, deleted_parents=deleted_parents)

    # ------------------------------------------------------------ gold

    def refresh_gold(self, force: bool) -> tuple[bool, GoldSummary]:
        """Rebuild gold when runs were loaded or silver moved since gold was built (a crash in between)."""
        spark, lake = self.spark, self.lake
        # Gold depends on silver's versions and on the pseudonymisation key (a new key must re-hash gold).
        versions = {**table_versions(spark, lake, SILVER_TABLES), "pseudonyms": _key_fingerprint(self.pseudonymisation_key)}
        # Both gold tables must have been built from these versions: a crash may have come between their writes.
        built_from = [_gold_source_versions(last_commit(spark, lake, table).get("userMetadata")) for table in GOLD_TABLES]
        if not force and all(b == versions for b in built_from):
            log.info("gold is up to date with silver %s", versions)
            return False, GoldSummary()
        start = time.monotonic()
        apprenticeships, projects, programmes = (read_table(spark, lake, silver_table(e))
                                                 for e in ("apprenticeships", "projects", "programmes"))
        metadata = {"silver_versions": versions, "job_id": self.job_id}
        seen_a, seen_p = Observation(f"gold_a_{uuid.uuid4().hex[:8]}"), Observation(f"gold_p_{uuid.uuid4().hex[:8]}")
        gold_a = build_gold_apprenticeships(apprenticeships, programmes, projects).observe(
            seen_a, F.count(F.lit(1)).alias("rows"), F.sum(F.when(~F.col("programme_known"), 1).otherwise(0)).alias("orphans"))
        gold_p = build_gold_apprenticeship_projects(projects, apprenticeships, programmes).observe(
            seen_p, F.count(F.lit(1)).alias("rows"), F.sum(F.when(~F.col("apprenticeship_known"), 1).otherwise(0)).alias("orphans"))
        if self.pseudonymisation_key:  # transform.pseudonymise_gold: personal columns become keyed pseudonyms
            key = self.pseudonymisation_key
            gold_a = gold_a.transform(lambda frame: pseudonymise_personal_data(frame, key))
            gold_p = gold_p.transform(lambda frame: pseudonymise_personal_data(frame, key))
        _results_or_raise({table: self._pool.submit(overwrite_table, frame, lake, table, metadata)
                           for table, frame in (("gold/apprenticeships", gold_a), ("gold/apprenticeship_projects", gold_p))})
        a, p = seen_a.get, seen_p.get
        summary = GoldSummary(int(a["rows"]), int(p["rows"]), int(a["orphans"] or 0), int(p["orphans"] or 0))
        log.info("gold rebuilt from silver %s: %d apprenticeships (%d with an unknown programme), %d projects (%d with an "
                 "unknown apprenticeship) in %.1fs", versions, summary.gold_apprenticeships, summary.orphan_apprenticeships,
                 summary.gold_apprenticeship_projects, summary.orphan_projects, time.monotonic() - start)
        return True, summary


@dataclass
class _Prepared:
    """An entity of a run between validation and MERGE: its counts so far and its ranked rows (persisted)."""

    entity: str
    counts: EntityCounts
    reasons: dict[str, int]
    ranked: DataFrame
    landing: dict[str, Any]  # what the landing's pages showed (`read.page_checks`)
    drift: Optional[list] = None  # schema drift (drift.DriftField), None when not scanned


def _results_or_raise(futures: dict[str, Future], cleanup: Optional[Callable[[Any], None]] = None) -> dict[str, Any]:
    """Every future's result by key, once all are done; on any failure, `cleanup` the successes and raise the first."""
    results, failure = {}, None
    for key, future in futures.items():
        try:
            results[key] = future.result()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finished
            failure = failure or exc
    if failure is not None:
        for value in results.values():
            if cleanup is not None:
                cleanup(value)
        raise failure
    return results


def _present_keys(entity: str, ranked: DataFrame) -> DataFrame:
    """Keys of every record of the run whose id can be read (valid or quarantined): they are not gone."""
    record_key = to_integer(F.col("record_id")).alias(KEYS[entity][-1])
    if entity == "projects":
        keyed = ranked.select(F.col("parent_apprenticeship_id").alias("apprenticeship_id"), record_key)
    else:
        keyed = ranked.select(record_key)
    return keyed.where(F.col(KEYS[entity][-1]).isNotNull() & F.col("apprenticeship_id").isNotNull()) if entity == "projects" \
        else keyed.where(F.col(KEYS[entity][0]).isNotNull())


def _key_fingerprint(key: Optional[str]) -> str:
    """Which key built gold, without revealing it: an HMAC of a constant, or "off"."""
    if not key:
        return "off"
    data = key.encode() if isinstance(key, str) else key
    return hmac.new(data, b"multiverse-etl gold pseudonyms", hashlib.sha256).hexdigest()[:16]


def _gold_source_versions(user_metadata: Optional[str]) -> Optional[dict[str, int]]:
    try:
        return json.loads(user_metadata or "{}").get("silver_versions")
    except (ValueError, AttributeError):
        return None


def read_error_of(run_id: str, problems: list[str]) -> LandingReadError:
    return LandingReadError(f"run {run_id}: the landing does not match its manifest ({'; '.join(problems)}); "
                            "nothing of the run was loaded")

"""Step 1, per entity: classify the landing against the lake, then bronze, validate and rank only what changed.

1. **Classify** (`classify.py`): the run's landing is read once for its records' fingerprints (a fingerprinted
   landing is read without its records' text: the JSON parser skips `data`) and joined with what silver and
   quarantine know. The pages are checked against the manifest while they are read.
2. **Changed records only**: the landing parts holding a changed record are read again, whole, and only the
   changed records are kept (raw text, lineage, fingerprint). Each new distinct version goes to bronze once.
3. **Validate and rank** the changed records, with the unchanged records of the same keys standing for silver's
   version (`classify.revisits`), so the ranking sees every record of a key as before.

An entity with nothing changed costs its classification and nothing else. Returns a frozen `Prepared`
(held frames, `frames.hold`: the classification and the ranked rows; the run releases them).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from ..entities import EntitySpec
from ..landing import FINGERPRINT_SCHEME
from .classify import (
    CHANGED,
    CLASS,
    KNOWN_BAD,
    REVISIT,
    UNCHANGED,
    UNSEEN,
    all_changed,
    class_counts,
    classify_records,
    known_versions,
    revisits,
    without_copies,
)
from .clean import validate_records
from .context import Job
from .dedupe import RANK_COLUMN, rank_versions
from .delta_log import table_version
from .drift import DriftField, observed_presence, presence_metrics, schema_drift
from .frames import hold, release
from .quarantine import is_valid, possible_reasons
from .read import (
    LandingReadError,
    LoadPlan,
    PageChecks,
    SplitPages,
    explode_fingerprints,
    explode_pages,
    find_unreadable_part,
    is_read_failure,
    landing_pages,
    landing_read_error,
    page_checks,
    read_landing_pages,
    refused_lines,
    split_refused_lines,
)
from .tables import QUARANTINE_TABLE, append_versions, bronze_table, read_table, silver_table

log = logging.getLogger("multiverse_etl.transform")

# A landing part is written to bronze by one task; files of at most this many rows let later reads split it.
BRONZE_ROWS_PER_FILE = 250_000
# Changed versions up to this many are looked up by a broadcast (a hash set in every task); more by a shuffle join.
BROADCAST_VERSIONS = 2_000_000


@dataclass(frozen=True)
class Prepared:
    """An entity of a run after classification, bronze and validation: its counts and its held frames."""

    spec: EntitySpec
    landing: PageChecks  # what the landing's pages showed
    classes: Mapping[str, int]  # records per class (`classify.class_counts`), and silver's live rows before
    bronze_written: int = 0
    validated: int = 0  # changed records validated (every changed record, copies included)
    valid_rows: int = 0
    duplicates_collapsed: int = 0
    upsert_candidates: int = 0  # rank 1 rows, revisits included
    revisited: int = 0
    revisit_winners: int = 0  # keys whose ranking kept silver's version: unchanged
    reasons: Mapping[str, int] = field(default_factory=dict)
    changed_files: tuple[str, ...] = ()  # the landing files holding a changed record
    classified: Optional[DataFrame] = None  # held (frames.hold); None: the entity landed nothing
    ranked: Optional[DataFrame] = None  # held (frames.hold); None: nothing changed
    drift: Optional[tuple[DriftField, ...]] = None  # schema drift of the changed records; None when not scanned
    split: Optional[SplitPages] = None  # the landing lines the JSON reader refused, split on the driver (if any)

    @property
    def quarantined_rows(self) -> int:
        return self.validated - self.valid_rows

    @property
    def changed(self) -> int:
        return int(self.classes.get(CHANGED, 0))

    def unpersist(self) -> None:
        release(self.classified)
        release(self.ranked)


def prepare_entity(job: Job, plan: LoadPlan, spec: EntitySpec, first_load: bool) -> Prepared:
    """One entity of one run: classified, its new versions in bronze, its changed records validated and ranked."""
    keys = plan.parts[spec.name]
    if not keys:
        log.info("run %s %s: no landing parts", plan.run_id, spec.name)
        return Prepared(spec, PageChecks(), {})
    start = time.monotonic()
    fingerprinted = plan.manifest is not None and plan.manifest.record_fingerprints == FINGERPRINT_SCHEME
    # A first load has nothing to classify against: every record is changed, so its landing is read once, whole,
    # and the classification and bronze, validation and ranking all come from that one read (`landed`, persisted).
    records = first_load or not fingerprinted
    classified, landing, classes, files, split, landed = _classify(job, plan, spec, first_load, records)
    if not records and landing.pages_without_data:  # a page without fingerprints: read it all
        release(classified)
        classified, landing, classes, files, split, landed = _classify(job, plan, spec, first_load, True, split)
    prepared = Prepared(spec, landing, classes, changed_files=files, classified=classified, split=split)
    try:
        if classes.get(CHANGED):
            prepared = _prepare_changed(job, plan, prepared, first_load, landed)
    except BaseException:
        prepared.unpersist()
        raise
    finally:
        release(landed)
    seconds = time.monotonic() - start
    log.info(
        "run %s %s: %d landed records: %d unchanged, %d known bad, %d changed (%d new versions to bronze, %d valid); "
        "classified and prepared in %.1fs",
        plan.run_id,
        spec.name,
        landing.records,
        classes.get(UNCHANGED, 0),
        classes.get(KNOWN_BAD, 0),
        classes.get(CHANGED, 0),
        prepared.bronze_written,
        prepared.valid_rows,
        seconds,
        extra={
            "step": "classify",
            "landing_run_id": plan.run_id,
            "entity": spec.name,
            "rows": landing.records,
            **{name: int(classes.get(name, 0)) for name in (UNCHANGED, KNOWN_BAD, CHANGED)},
            "bronze_written": prepared.bronze_written,
            "valid": prepared.valid_rows,
            "quarantined": prepared.quarantined_rows,
            "duration_s": round(seconds, 3),
        },
    )
    return prepared


def _classify(
    job: Job, plan: LoadPlan, spec: EntitySpec, first_load: bool, records: bool, split: Optional[SplitPages] = None
) -> tuple[DataFrame, PageChecks, dict[str, int], tuple[str, ...], Optional[SplitPages], Optional[DataFrame]]:
    """The run's landing of one entity, classified (held), what its pages showed, the class counts, the
    landing files holding a changed record, the lines the JSON reader refused, split (None: there were none), and
    on a first load the landed records themselves (bronze rows, persisted: the caller releases them; else None).

    The pages are read permissively: a line the reader refuses is counted while they are read, and only then (rarely)
    split on the driver (`read.split_refused_lines`: a line that is not JSON fails the run there) and classified again.
    """
    keys = plan.parts[spec.name]
    seen, counted = Observation(f"pages_{uuid.uuid4().hex[:8]}"), Observation(f"classes_{uuid.uuid4().hex[:8]}")
    kept: Optional[DataFrame] = None
    try:
        pages = landing_pages(job.spark, job.lake.root, keys, job.lake.scheme, records=records, split=split)
        checks = page_checks(plan.run_id, spec.name, "data" if records else "fingerprints")
        checked = pages.observe(seen, *checks, refused_lines())
        if first_load:  # computed (and the pages observed) by the classification's job below
            kept = checked.transform(explode_pages(plan.run_id)).persist(StorageLevel.MEMORY_AND_DISK)
            landed = kept
        elif records:
            landed = checked.transform(explode_pages(plan.run_id)).drop("raw_record")
        else:
            landed = checked.transform(explode_fingerprints(plan.run_id))
        if first_load:
            classified = landed.transform(all_changed(spec))
        else:
            known = known_versions(
                spec,
                read_table(job.spark, job.lake, silver_table(spec)),
                read_table(job.spark, job.lake, QUARANTINE_TABLE),
            )
            classified = landed.transform(classify_records(spec, known))
        # Held, not persisted: the run's own writes to silver and quarantine must not move it. Counted as it is held.
        classified = hold(classified.observe(counted, *class_counts()))
    except Exception as exc:
        release(kept)
        if not is_read_failure(exc):
            raise
        culprit = find_unreadable_part(job.spark, job.lake.root, keys, job.lake.scheme) if len(keys) > 1 else keys[0]
        error = landing_read_error(plan.run_id, keys, exc, culprit)
        if error is None:  # is_read_failure said it is one, so never: the failure as it came, then
            raise
        raise error from exc
    if seen.get.get("refused_lines"):
        release(classified)
        release(kept)
        if split is not None:  # the split replaced every refused line: the files changed under the transform
            raise LandingReadError(f"run {plan.run_id}: {spec.name}: the landing changed while it was read")
        split = split_refused_lines(job.spark, job.lake.root, keys, job.lake.scheme, plan.run_id)
        log.warning(
            "run %s %s: %d landing line(s) the JSON reader refuses (valid JSON beyond its limits): split on the driver",
            plan.run_id,
            spec.name,
            len(split.rows),
        )
        return _classify(job, plan, spec, first_load, records, split)
    row = counted.get
    counts = {name: int(str(value or 0)) for name, value in row.items() if name != "changed_files"}
    counts["live_before"] = counts.pop("_matched_live") + counts[UNSEEN]  # every live row matched or unseen
    changed_files = tuple(sorted(json.loads(str(row.get("changed_files") or "[]"))))
    return classified, PageChecks.of(seen.get), counts, changed_files, split, kept


def _prepare_changed(
    job: Job, plan: LoadPlan, prepared: Prepared, first_load: bool, landed: Optional[DataFrame] = None
) -> Prepared:
    """The changed records (`landed`: a first load's, read while classifying; else read again whole), new versions
    to bronze, validated and ranked (held)."""
    spec, classified = prepared.spec, prepared.classified
    assert classified is not None
    changed = classified.where(F.col(CLASS) == CHANGED)
    versions = changed.select("fingerprint").distinct()
    if landed is not None:  # persisted by the classification; the caller releases it
        records = landed
    else:
        files = set(prepared.changed_files)
        keys = tuple(key for key in plan.parts[spec.name] if key in files)
        if prepared.split is None:
            pages = read_landing_pages(job.spark, job.lake.root, keys, job.lake.scheme)
        else:  # the lines the reader refuses, as split while classifying
            pages = landing_pages(job.spark, job.lake.root, keys, job.lake.scheme, split=prepared.split)
        records = pages.transform(explode_pages(plan.run_id))
        if not first_load:  # only the changed records (every record is, in a first load)
            small = prepared.changed <= BROADCAST_VERSIONS
            records = records.join(F.broadcast(versions) if small else versions, on="fingerprint", how="left_semi")
        records = records.persist(StorageLevel.MEMORY_AND_DISK)
    contract = [f.name for f in spec.contract]
    presence = Observation(f"presence_{uuid.uuid4().hex[:8]}")
    try:
        scanned = records.observe(presence, *presence_metrics(contract)) if job.drift_policy != "ignore" else records
        written = _write_new_versions(job, spec, scanned, classified, versions, prepared.classes)
        validated = records.transform(validate_records(spec)).withColumn(REVISIT, F.lit(False))
        # An incremental run reads the validated rows twice (the ranking and, through the revisits, its valid keys):
        # held then (a persisted frame used twice in one plan was found in the cache for one use only, and the other
        # read and validated the landing again). A first load ranks them only: validated inside the ranking's job,
        # not copied into a cache first.
        validated = validated if first_load else hold(validated)
        try:
            ranking = validated
            if not first_load:
                valid_keys = validated.where(is_valid(F.col("reasons"))).select(*spec.key).distinct()
                ranking = validated.unionByName(revisits(spec, classified, valid_keys))
            # Held, not persisted: unpersisting `validated` and `records` below would re-cache a persisted ranking,
            # and its next use (the silver plan) would read and validate the landing again.
            ranked_counts = Observation(f"ranked_{uuid.uuid4().hex[:8]}")
            ranked = hold(ranking.transform(rank_versions(spec)).observe(ranked_counts, *rank_counts(spec)))
            stats = {name: int(str(value or 0)) for name, value in ranked_counts.get.items()}
        finally:
            release(validated)  # the frame itself (unpersisting the union would leave it cached)
        drift = None  # the changed records' top-level keys, observed while bronze was written
        if job.drift_policy != "ignore":
            present = observed_presence(presence.get, contract, records)
            drift = tuple(schema_drift(spec.name, present, contract, stats["rows"]))
    finally:
        if records is not landed:
            records.unpersist()
    reasons = possible_reasons(spec)
    return Prepared(
        spec,
        prepared.landing,
        prepared.classes,
        changed_files=prepared.changed_files,
        bronze_written=written,
        validated=stats["rows"],
        valid_rows=stats["valid"],
        duplicates_collapsed=stats["duplicates"],
        upsert_candidates=stats["candidates"],
        revisited=stats["revisited"],
        revisit_winners=stats["revisit_winners"],
        reasons={reason: stats[reason] for reason in reasons if stats.get(reason)},
        classified=classified,
        ranked=ranked,
        drift=drift,
        split=prepared.split,
    )


def _write_new_versions(
    job: Job,
    spec: EntitySpec,
    records: DataFrame,
    classified: DataFrame,
    versions: DataFrame,
    classes: Mapping[str, int],
) -> int:
    """Each changed version bronze does not hold yet, once (its latest occurrence in the run); the rows written.

    Versions bronze holds already (a value changed back, a retried run's first attempt) are not written again.
    """
    new, changed_count = without_copies(records, classified, int(classes.get("copies", 0))), classes.get(CHANGED, 0)
    if table_version(job.lake.storage, bronze_table(spec)) > 0:  # bronze holds rows (its version 0 is its creation)
        lookup = F.broadcast(versions) if changed_count <= BROADCAST_VERSIONS else versions
        held = read_table(job.spark, job.lake, bronze_table(spec)).select("fingerprint")
        held = held.join(lookup, on="fingerprint", how="left_semi").distinct()
        new = new.join(held, on="fingerprint", how="left_anti")
    return append_versions(new, job.lake, bronze_table(spec), max_rows_per_file=BRONZE_ROWS_PER_FILE)


def rank_counts(spec: EntitySpec) -> list[Column]:
    """Aggregates over the ranked rows, counted while they are held: validated, valid, duplicates, candidates,
    revisits and every reason."""
    valid, revisit, first = is_valid(F.col("reasons")), F.col(REVISIT), F.col(RANK_COLUMN) == 1
    changed = ~revisit

    def count(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    return [
        count(changed).alias("rows"),
        count(changed & valid).alias("valid"),
        count(F.col(RANK_COLUMN) > 1).alias("duplicates"),
        count(first).alias("candidates"),
        count(revisit).alias("revisited"),
        count(revisit & first).alias("revisit_winners"),
        *[count(changed & F.array_contains("reasons", reason)).alias(reason) for reason in possible_reasons(spec)],
    ]

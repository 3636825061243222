"""Classification: every landed record against what the lake already holds, before anything is validated.

Each landed record has a fingerprint: the one the extractor wrote into its landing line (of the record's
canonical JSON and its parent's id, `landing.record_fingerprint`), or for an older landing one computed
here from the record's text. Mixed with `RULES_VERSION`, it is what silver keeps for each live row (the
version the row was built from) and quarantine for each known-bad version. One full outer join on the
fingerprint then tells, for every landed record:

* `unchanged`  – a live silver row was built from exactly this version: nothing to do;
* `known_bad`  – quarantine holds exactly this version: counted, not validated or written again;
* `changed`    – anything else (new, modified, a deleted row back, a bad version never seen): validated,
                 ranked and planned as before;

and for every live silver row that no landed record matched, `unseen`: the only rows a complete listing
can prove gone. Changing `RULES_VERSION` (a new validation rule) changes every fingerprint, so every
record is validated again once and silver's fingerprints are refreshed.
"""

from __future__ import annotations

from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..entities import EXTRACTION_ORDER, PARENT_COLUMN, EntitySpec
from .clean import to_integer
from .schemas import LINEAGE_FIELDS

# Bump whenever cleaning or validation changes what a record becomes: every stored fingerprint then differs.
RULES_VERSION = 2  # 2: lone surrogates quarantined (`lone_surrogate:<field>`), not loaded as "?"

CLASS = "_class"
UNCHANGED, KNOWN_BAD, CHANGED, UNSEEN = "unchanged", "known_bad", "changed", "unseen"
KNOWN = "_known"  # the class a known fingerprint gives: unchanged (silver) or known_bad (quarantine)
KNOWN_MARKER = "_known_marker"  # the live row's change marker (apprenticeships: modified_date)
KNOWN_EXTRACTED_AT = "_known_extracted_at"  # the live row's extraction (deletions compare it with the run's start)
COPY_RANK = "_copy_rank"  # 1 for a version's latest occurrence in the run (the one bronze keeps), 2.. for its copies
LINEAGE = [name for name, _, _ in LINEAGE_FIELDS]


def fingerprint(landed: Column, parent: Column, raw: Column) -> Column:
    """The stored fingerprint of a landed record: the landing's own (or one of its text), with the rules version."""
    return F.xxhash64(F.lit(RULES_VERSION), parent, F.coalesce(landed, F.xxhash64(raw)))


def key_columns(spec: EntitySpec, parent: Column, record_id: Column) -> list[Column]:
    """The silver key of a record from its parent's id and its id as sent (null when the id is not an integer)."""
    return [*[parent.alias(k) for k in spec.key[:-1]], to_integer(record_id).alias(spec.id_column)]


def known_versions(spec: EntitySpec, silver: DataFrame, quarantine: DataFrame) -> DataFrame:
    """Every fingerprint the lake knows for the entity: silver's live rows and quarantine's bad versions."""
    marker = F.col(spec.change_marker) if spec.change_marker else F.lit(None).cast("timestamp")
    # A live row older than fingerprints (null) matches no landed record: it is unseen, so a listing can still
    # prove it gone, and a landed record of its key is validated and refreshes it.
    live = silver.where(~F.col("is_deleted")).select(
        "fingerprint",
        F.lit(UNCHANGED).alias(KNOWN),
        *spec.key,
        marker.cast("timestamp").alias(KNOWN_MARKER),
        F.col("extracted_at").alias(KNOWN_EXTRACTED_AT),
    )
    bad = quarantine.where((F.col("entity") == spec.name) & F.col("fingerprint").isNotNull()).select(
        "fingerprint",
        F.lit(KNOWN_BAD).alias(KNOWN),
        *key_columns(spec, F.col(PARENT_COLUMN), F.col("record_id")),
        F.lit(None).cast("timestamp").alias(KNOWN_MARKER),
        F.lit(None).cast("timestamp").alias(KNOWN_EXTRACTED_AT),
    )
    return live.unionByName(bad)


def classify_records(spec: EntitySpec, known: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Landed records (lineage + fingerprint) → each with `_class`, its key when known, and the `unseen` live rows.

    Every row also gets `_copy_rank`: a version landed twice in one run (a list that shifted while it was paged)
    is written to bronze once, its latest occurrence kept; and a live row matched by several copies is counted once.
    """

    def step(landed: DataFrame) -> DataFrame:
        joined = landed.select(*LINEAGE, "fingerprint", F.lit(True).alias("_landed")).join(
            known, on="fingerprint", how="full_outer"
        )
        landed_here = F.col("_landed").isNotNull()
        cls = (
            F.when(landed_here & F.col(KNOWN).isNull(), F.lit(CHANGED))
            .when(landed_here, F.col(KNOWN))
            .when(F.col(KNOWN) == UNCHANGED, F.lit(UNSEEN))
        )
        classified = joined.withColumn(CLASS, cls).where(F.col(CLASS).isNotNull())
        return classified.select(
            *LINEAGE,
            "fingerprint",
            CLASS,
            *spec.key,
            KNOWN_MARKER,
            KNOWN_EXTRACTED_AT,
            _latest_copy_first(CLASS).alias(COPY_RANK),
        )

    return step


def all_changed(spec: EntitySpec) -> Callable[[DataFrame], DataFrame]:
    """A first load's classification (the lake knows nothing yet): every landed record is changed."""

    def step(landed: DataFrame) -> DataFrame:
        return landed.select(
            *LINEAGE,
            "fingerprint",
            F.lit(CHANGED).alias(CLASS),
            *[F.lit(None).cast("bigint").alias(k) for k in spec.key],
            F.lit(None).cast("timestamp").alias(KNOWN_MARKER),
            F.lit(None).cast("timestamp").alias(KNOWN_EXTRACTED_AT),
            _latest_copy_first().alias(COPY_RANK),
        )

    return step


def _latest_copy_first(*within: str) -> Column:
    """1 for the latest occurrence of a version in the run (the extraction order), 2.. for its copies (per value of
    the `within` columns too)."""
    from pyspark.sql import Window

    latest = Window.partitionBy("fingerprint", *within).orderBy(*[F.col(c).desc() for c in EXTRACTION_ORDER])
    return F.row_number().over(latest)


def without_copies(rows: DataFrame, classified: DataFrame, copies: int) -> DataFrame:
    """`rows` less the changed records' copies (`_copy_rank` > 1, by lineage): each version once, its latest
    occurrence. `copies` is the classification's count of them: with none, no lookup (a Spark job) is made."""
    if not copies:
        return rows
    lineage = ["landing_file", "page_index", "record_index"]
    found = classified.where((F.col(CLASS) == CHANGED) & (F.col(COPY_RANK) > 1)).select(*lineage)
    return rows.join(F.broadcast(found), on=lineage, how="left_anti")


def class_counts() -> list[Column]:
    """Aggregates over a classification: records per class, the live rows it matched, the files holding a changed
    record (JSON text). Fit for `observe` (no distinct aggregate): counted while the classification is computed."""
    is_ = lambda value: F.sum(F.when(F.col(CLASS) == value, 1).otherwise(0))  # noqa: E731
    return [
        is_(UNCHANGED).alias(UNCHANGED),
        is_(KNOWN_BAD).alias(KNOWN_BAD),
        is_(CHANGED).alias(CHANGED),
        is_(UNSEEN).alias(UNSEEN),
        F.sum(F.when((F.col(CLASS) == CHANGED) & (F.col(COPY_RANK) > 1), 1).otherwise(0)).alias("copies"),
        F.sum(F.when((F.col(CLASS) == UNCHANGED) & (F.col(COPY_RANK) == 1), 1).otherwise(0)).alias("_matched_live"),
        # as JSON text: an observed array comes back to Python as a bare Java object
        F.to_json(F.collect_set(F.when(F.col(CLASS) == CHANGED, F.col("landing_file")))).alias("changed_files"),
    ]


def revisits(spec: EntitySpec, classified: DataFrame, changed_keys: DataFrame) -> DataFrame:
    """Unchanged records of keys that also have a changed valid record, as cleaned rows standing for silver's version.

    A value changed and changed back within one landing must resolve as if every record of the key was ranked:
    these rows carry the landed record's lineage and silver's change marker (their content is silver's), so the
    ranking sees them; one that wins leaves the key unchanged.
    """
    from .schemas import clean_schema

    rows = classified.where(F.col(CLASS) == UNCHANGED).join(changed_keys, on=list(spec.key), how="left_semi")
    values = {name: F.col(name) for name in (*LINEAGE, *spec.key, "fingerprint")}
    if spec.change_marker:
        values[spec.change_marker] = F.col(KNOWN_MARKER)
    values.update(
        needs_nfc=F.lit(False),
        record_id=F.col(spec.id_column).cast("string"),
        raw_record=F.lit(None).cast("string"),
        reasons=F.array().cast("array<string>"),
    )
    return rows.select(
        *[values.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name) for f in clean_schema(spec).fields],
        F.lit(True).alias(REVISIT),
    )


REVISIT = "_revisit"  # a ranked row standing for silver's current version (`revisits`)

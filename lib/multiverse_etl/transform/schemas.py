"""Every schema of the transform, in one place: the landing envelope, the source contract, each lake table.

Nothing is ever inferred. The landing is read with `LANDING_PAGE_SCHEMA`, whose `data` is an
array of *strings*: Spark's JSON reader hands back the raw JSON text of each record, which is
what bronze and quarantine keep. Records are then parsed with an all-string schema built from
the entity's contract (`entities.py`), so a value of the wrong JSON type is seen (and quarantined), never coerced.
"""

from __future__ import annotations

from pyspark.sql import types as T

from ..entities import ENTITIES, EntitySpec

_SPARK = {
    "bigint": T.LongType(),
    "int": T.IntegerType(),
    "string": T.StringType(),
    "timestamp": T.TimestampType(),
    "boolean": T.BooleanType(),
}


# Spark's JSON reader (Jackson's StreamReadConstraints) refuses by default nesting deeper than 1,000 levels, numbers
# of more than 1,000 digits and strings of more than 20,000,000 characters: one such record, valid JSON that a
# hostile API may serve and the extractor lands as served, would fail the whole landing read. The landing and the
# records are read with these limits instead. Nesting and strings cost the parser linear time and no stack (Jackson
# skips and copies structures iteratively), so they are bounded only by a page's size (`api.max_response_bytes`);
# a number's digits are bounded because Spark 3.5 re-reads an integer as a BigInteger (quadratic in its digits:
# 100,000 digits cost ~1.7 s). Records within them are validated like any other (and quarantined by the contract);
# a page holding a number of more digits is split on the driver and that record alone quarantined (`unreadable_record`:
# transform/read.py `split_refused_lines`, docs/transform.md).
JSON_READ_LIMITS = {
    "maxNestingDepth": str(2**31 - 1),
    "maxStringLen": str(2**31 - 1),
    "maxNumLen": str(100_000),
}


# The JSON type of a contract field in a record's text (`clean.json_token_kind`, the `_kind_<field>` columns between
# `clean.py`'s steps, read by `quarantine.contract_reasons`): small integers, compared as numbers, not as text.
KIND_STRING, KIND_NUMBER, KIND_NULL, KIND_MISSING, KIND_OTHER = 1, 2, 3, 4, 5


def record_string_schema(spec: EntitySpec) -> T.StructType:
    """Every contract field as a string: parsing never fails, so types are checked afterwards."""
    return T.StructType([T.StructField(f.name, T.StringType(), True) for f in spec.contract])


def _struct(*fields: tuple[str, T.DataType, bool]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, nullable) for name, dtype, nullable in fields])


# ---------------------------------------------------------------- landing

# One landing line = one API page (multiverse_etl.landing). `request` and `pagination` are not read.
_PAGE_HEAD = (
    ("entity", T.StringType(), True),
    ("run_id", T.StringType(), True),
    ("extracted_at", T.StringType(), True),
    ("page_index", T.IntegerType(), True),
    ("parent", _struct(("apprenticeship_id", T.LongType(), True)), True),
    ("fingerprints", T.ArrayType(T.LongType(), True), True),  # one per record, when the extractor wrote them
)
LANDING_PAGE_SCHEMA = _struct(*_PAGE_HEAD, ("data", T.ArrayType(T.StringType(), True), True))
# The same page without its records: what classifying a fingerprinted landing reads (the JSON parser skips `data`).
LANDING_HEAD_SCHEMA = _struct(*_PAGE_HEAD)

# ---------------------------------------------------------------- bronze

LINEAGE_FIELDS = (
    ("run_id", T.StringType(), False),
    ("ingest_date", T.DateType(), False),
    ("extracted_at", T.TimestampType(), False),
    ("landing_file", T.StringType(), False),
    ("page_index", T.IntegerType(), False),
    ("record_index", T.IntegerType(), False),
    ("parent_apprenticeship_id", T.LongType(), True),
)

# A record version's fingerprint (transform/classify.py): what silver and quarantine compare landed records with.
FINGERPRINT_FIELD = ("fingerprint", T.LongType(), True)

# bronze/<entity>: one row per distinct record version, from the run that first landed it, its JSON text untouched.
BRONZE_SCHEMA = _struct(*LINEAGE_FIELDS, ("raw_record", T.StringType(), True), FINGERPRINT_FIELD)

# ---------------------------------------------------------------- cleaned records (between steps)

_CLEAN_TAIL = (
    ("needs_nfc", T.BooleanType(), False),  # text holds characters NFC may change (clean.normalize_unicode)
    ("record_id", T.StringType(), True),  # the id as sent (text), for quarantine and deletions
    ("raw_record", T.StringType(), True),  # kept for rejected records only (bronze has every record's text)
    ("reasons", T.ArrayType(T.StringType(), True), False),
    FINGERPRINT_FIELD,
)


def _business_fields(spec: EntitySpec, nullable: bool) -> list[tuple[str, T.DataType, bool]]:
    return [(c.name, _SPARK[c.spark_type], nullable) for c in spec.columns]


def clean_schema(spec: EntitySpec) -> T.StructType:
    """Validated rows of an entity (between steps): lineage, the typed business columns (nullable), the verdict."""
    return _struct(*LINEAGE_FIELDS, *_business_fields(spec, True), *_CLEAN_TAIL)


CLEAN_SCHEMAS: dict[str, T.StructType] = {spec.name: clean_schema(spec) for spec in ENTITIES}

# ---------------------------------------------------------------- silver

_SILVER_TAIL = (
    ("is_deleted", T.BooleanType(), False),
    ("deleted_at", T.TimestampType(), True),
    ("deleted_by_run_id", T.StringType(), True),
    ("run_id", T.StringType(), False),  # the run that brought the current version
    ("extracted_at", T.TimestampType(), False),
    ("landing_file", T.StringType(), False),
    ("record_hash", T.LongType(), False),
    FINGERPRINT_FIELD,  # of the landed version the row was built from (null in rows older than fingerprints)
)


def silver_schema(spec: EntitySpec) -> T.StructType:
    """silver/<entity>: the business columns (NOT NULL: only valid records get there), the partition, lineage."""
    partition = spec.silver_partition
    return _struct(*_business_fields(spec, False), (partition.name, T.DateType(), False), *_SILVER_TAIL)


SILVER_SCHEMAS: dict[str, T.StructType] = {spec.name: silver_schema(spec) for spec in ENTITIES}

# silver/quarantine: every distinct rejected record version once, with every reason and the run that first landed it.
QUARANTINE_SCHEMA = _struct(
    ("entity", T.StringType(), False),
    *LINEAGE_FIELDS,
    ("record_id", T.StringType(), True),
    ("raw_record", T.StringType(), True),
    ("reasons", T.ArrayType(T.StringType(), True), False),
    FINGERPRINT_FIELD,
)

# ---------------------------------------------------------------- gold

GOLD_APPRENTICESHIPS_SCHEMA = _struct(
    ("apprenticeship_id", T.LongType(), False),
    ("name", T.StringType(), False),
    ("programme_id", T.LongType(), False),
    ("modified_date", T.TimestampType(), False),
    ("first_name", T.StringType(), False),
    ("last_name", T.StringType(), False),
    ("email_address", T.StringType(), False),
    ("email_is_valid", T.BooleanType(), False),
    ("programme_name", T.StringType(), True),
    ("programme_duration", T.IntegerType(), True),
    ("programme_known", T.BooleanType(), False),
    ("projects_total", T.LongType(), False),
    ("projects_pending", T.LongType(), False),
    ("projects_submitted", T.LongType(), False),
    ("projects_graded", T.LongType(), False),
    ("has_projects", T.BooleanType(), False),
    ("modified_month", T.DateType(), False),
)

GOLD_APPRENTICESHIP_PROJECTS_SCHEMA = _struct(
    ("project_id", T.LongType(), False),
    ("apprenticeship_id", T.LongType(), False),
    ("title", T.StringType(), False),
    ("description", T.StringType(), False),
    ("status", T.StringType(), False),
    ("apprenticeship_known", T.BooleanType(), False),
    ("apprenticeship_name", T.StringType(), True),
    ("first_name", T.StringType(), True),
    ("last_name", T.StringType(), True),
    ("email_address", T.StringType(), True),
    ("email_is_valid", T.BooleanType(), True),
    ("modified_date", T.TimestampType(), True),
    ("programme_id", T.LongType(), True),
    ("programme_known", T.BooleanType(), False),
    ("programme_name", T.StringType(), True),
    ("programme_duration", T.IntegerType(), True),
    ("programme_description", T.StringType(), True),
    ("modified_month", T.DateType(), True),
)

GOLD_PARTITION = "modified_month"

# ---------------------------------------------------------------- audit

# Nested fields are nullable: Delta enforces NOT NULL on top-level columns only.
ENTITY_COUNTS_SCHEMA = _struct(
    ("entity", T.StringType(), True),
    ("landed_pages", T.LongType(), True),
    ("landed_records", T.LongType(), True),
    ("bronze_rows", T.LongType(), True),
    ("valid_rows", T.LongType(), True),
    ("quarantined_rows", T.LongType(), True),
    ("duplicates_collapsed", T.LongType(), True),
    ("upsert_candidates", T.LongType(), True),
    ("inserted", T.LongType(), True),
    ("updated", T.LongType(), True),
    ("unchanged", T.LongType(), True),
    ("deleted", T.LongType(), True),
    ("silver_live_rows", T.LongType(), True),
    # The classification (transform/classify.py): landed = unchanged + known_bad + changed.
    ("unchanged_records", T.LongType(), True),
    ("known_bad_records", T.LongType(), True),
    ("changed_records", T.LongType(), True),
    ("revisited_records", T.LongType(), True),
    ("refreshed", T.LongType(), True),
)

AUDIT_SCHEMA = _struct(
    ("job_id", T.StringType(), False),
    ("run_id", T.StringType(), False),
    ("ingest_date", T.DateType(), False),
    ("mode", T.StringType(), True),
    ("status", T.StringType(), False),  # "loaded" (the run's loaded marker) or "failed"
    ("reconciled", T.BooleanType(), False),
    ("mismatches", T.ArrayType(T.StringType(), True), False),
    ("entities", T.ArrayType(ENTITY_COUNTS_SCHEMA, True), False),
    ("quarantine_reasons", T.MapType(T.StringType(), T.LongType(), True), False),
    ("orphan_apprenticeships", T.LongType(), True),  # live apprenticeships whose programme is unknown
    ("orphan_projects", T.LongType(), True),  # live projects whose apprenticeship is unknown
    ("gold_apprenticeships", T.LongType(), True),
    ("gold_apprenticeship_projects", T.LongType(), True),
    ("started_at", T.TimestampType(), False),
    ("finished_at", T.TimestampType(), False),
    ("duration_s", T.DoubleType(), False),
    ("spark_version", T.StringType(), False),
    # Fields the contract does not know / contract fields no record carried (transform/drift.py); null = not scanned.
    # (Delta refuses NOT NULL inside arrays: the nested fields are nullable, as in `entities`.)
    (
        "schema_drift",
        T.ArrayType(
            T.StructType(
                [
                    T.StructField("entity", T.StringType(), True),
                    T.StructField("field", T.StringType(), True),
                    T.StructField("kind", T.StringType(), True),
                    T.StructField("records", T.LongType(), True),
                ]
            ),
            True,
        ),
        True,
    ),
    ("spark_jobs", T.LongType(), True),  # Spark jobs the transform job started (null: unknown, or older lake)
    # Each entity's landing digest and listing completeness, and the silver/quarantine versions the load left:
    # a later run with the same digests onto the same versions is not read again (transform/skip.py). Gold's
    # versions too, when its counts were taken: a run that leaves gold there reuses them (gold_refresh.py).
    ("landing_digests", T.MapType(T.StringType(), T.StringType(), True), True),
    ("lake_versions", T.MapType(T.StringType(), T.LongType(), True), True),
    ("fencing_token", T.LongType(), True),  # the writer lock's generation the job held (lock.py; null: no lock)
)
AUDIT_PARTITION = "ingest_date"

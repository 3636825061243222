"""Every schema of the transform, in one place: the landing envelope, the source contract, each lake table.

Nothing is ever inferred. The landing is read with `LANDING_PAGE_SCHEMA`, whose `data` is an
array of *strings*: Spark's JSON reader hands back the raw JSON text of each record, which is
what bronze and quarantine keep. Records are then parsed with an all-string schema built from
`SOURCE_CONTRACT`, so a value of the wrong JSON type is seen (and quarantined), never coerced.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

ENTITIES = ("apprenticeships", "projects", "programmes")
STATUSES = ("pending", "submitted", "graded")


@dataclass(frozen=True)
class SourceField:
    """One field of an API record: its name and the JSON type the contract promises."""

    name: str
    json_type: str  # "integer" or "string"
    role: str = "text"  # "id", "integer", "text", "timestamp", "status", "email"


# The API contract (docs: /work/shared/api-contract.md), field order as served.
SOURCE_CONTRACT: dict[str, tuple[SourceField, ...]] = {
    "apprenticeships": (
        SourceField("id", "integer", "id"),
        SourceField("name", "string"),
        SourceField("programme_id", "integer", "integer"),
        SourceField("modified_date", "string", "timestamp"),
        SourceField("first_name", "string"),
        SourceField("last_name", "string"),
        SourceField("email_address", "string", "email"),
    ),
    "projects": (
        SourceField("id", "integer", "id"),
        SourceField("title", "string"),
        SourceField("description", "string"),
        SourceField("status", "string", "status"),
    ),
    "programmes": (
        SourceField("id", "integer", "id"),
        SourceField("name", "string"),
        SourceField("duration", "integer", "integer"),
        SourceField("description", "string"),
    ),
}

# Silver keys: ids are named for their entity; a project is identified within its apprenticeship.
KEYS: dict[str, tuple[str, ...]] = {
    "apprenticeships": ("apprenticeship_id",),
    "projects": ("apprenticeship_id", "project_id"),
    "programmes": ("programme_id",),
}
ID_COLUMN = {"apprenticeships": "apprenticeship_id", "projects": "project_id", "programmes": "programme_id"}


def record_string_schema(entity: str) -> T.StructType:
    """Every contract field as a string: parsing never fails, so types are checked afterwards."""
    return T.StructType([T.StructField(f.name, T.StringType(), True) for f in SOURCE_CONTRACT[entity]])


def _struct(*fields: tuple[str, T.DataType, bool]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, nullable) for name, dtype, nullable in fields])


# ---------------------------------------------------------------- landing

# One landing line = one API page (multiverse_etl.landing). `request` and `pagination` are not read.
LANDING_PAGE_SCHEMA = _struct(
    ("entity", T.StringType(), True),
    ("run_id", T.StringType(), True),
    ("extracted_at", T.StringType(), True),
    ("page_index", T.IntegerType(), True),
    ("parent", _struct(("apprenticeship_id", T.LongType(), True)), True),
    ("data", T.ArrayType(T.StringType(), True), True),
)

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

# bronze/<entity>: one row per landed record, the record's JSON text untouched.
BRONZE_SCHEMA = _struct(*LINEAGE_FIELDS, ("raw_record", T.StringType(), True))

# ---------------------------------------------------------------- cleaned records (between steps)

_CLEAN_TAIL = (
    ("needs_nfc", T.BooleanType(), False),  # text holds characters NFC may change (clean.normalize_unicode)
    ("record_id", T.StringType(), True),  # the id as sent (text), for quarantine and deletions
    ("raw_record", T.StringType(), True),  # kept for rejected records only (bronze has every record's text)
    ("reasons", T.ArrayType(T.StringType(), True), False),
)

CLEAN_SCHEMAS: dict[str, T.StructType] = {
    "apprenticeships": _struct(
        *LINEAGE_FIELDS,
        ("apprenticeship_id", T.LongType(), True),
        ("name", T.StringType(), True),
        ("programme_id", T.LongType(), True),
        ("modified_date", T.TimestampType(), True),
        ("first_name", T.StringType(), True),
        ("last_name", T.StringType(), True),
        ("email_address", T.StringType(), True),
        ("email_is_valid", T.BooleanType(), True),
        *_CLEAN_TAIL,
    ),
    "projects": _struct(
        *LINEAGE_FIELDS,
        ("apprenticeship_id", T.LongType(), True),
        ("project_id", T.LongType(), True),
        ("title", T.StringType(), True),
        ("description", T.StringType(), True),
        ("status", T.StringType(), True),
        *_CLEAN_TAIL,
    ),
    "programmes": _struct(
        *LINEAGE_FIELDS,
        ("programme_id", T.LongType(), True),
        ("name", T.StringType(), True),
        ("duration", T.IntegerType(), True),
        ("description", T.StringType(), True),
        *_CLEAN_TAIL,
    ),
}

# Business columns per entity (keys first): what silver holds and what the record hash covers.
BUSINESS_COLUMNS: dict[str, tuple[str, ...]] = {
    "apprenticeships": ("apprenticeship_id", "name", "programme_id", "modified_date", "first_name", "last_name",
                        "email_address", "email_is_valid"),
    "projects": ("apprenticeship_id", "project_id", "title", "description", "status"),
    "programmes": ("programme_id", "name", "duration", "description"),
}
# Text columns that are trimmed and NFC-normalised.
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "apprenticeships": ("name", "first_name", "last_name", "email_address"),
    "projects": ("title", "description", "status"),
    "programmes": ("name", "description"),
}

# ---------------------------------------------------------------- silver

_SILVER_TAIL = (
    ("is_deleted", T.BooleanType(), False),
    ("deleted_at", T.TimestampType(), True),
    ("deleted_by_run_id", T.StringType(), True),
    ("run_id", T.StringType(), False),  # the run that brought the current version
    ("extracted_at", T.TimestampType(), False),
    ("landing_file", T.StringType(), False),
    ("record_hash", T.LongType(), False),
)

SILVER_SCHEMAS: dict[str, T.StructType] = {
    "apprenticeships": _struct(
        ("apprenticeship_id", T.LongType(), False),
        ("name", T.StringType(), False),
        ("programme_id", T.LongType(), False),
        ("modified_date", T.TimestampType(), False),
        ("first_name", T.StringType(), False),
        ("last_name", T.StringType(), False),
        ("email_address", T.StringType(), False),
        ("email_is_valid", T.BooleanType(), False),
        ("modified_month", T.DateType(), False),
        *_SILVER_TAIL,
    ),
    "projects": _struct(
        ("apprenticeship_id", T.LongType(), False),
        ("project_id", T.LongType(), False),
        ("title", T.StringType(), False),
        ("description", T.StringType(), False),
        ("status", T.StringType(), False),
        ("first_ingest_date", T.DateType(), False),
        *_SILVER_TAIL,
    ),
    "programmes": _struct(
        ("programme_id", T.LongType(), False),
        ("name", T.StringType(), False),
        ("duration", T.IntegerType(), False),
        ("description", T.StringType(), False),
        ("first_ingest_date", T.DateType(), False),
        *_SILVER_TAIL,
    ),
}

SILVER_PARTITION = {"apprenticeships": "modified_month", "projects": "first_ingest_date", "programmes": "first_ingest_date"}

# silver/quarantine: every rejected record with every reason, never dropped.
QUARANTINE_SCHEMA = _struct(
    ("entity", T.StringType(), False),
    *LINEAGE_FIELDS,
    ("record_id", T.StringType(), True),
    ("raw_record", T.StringType(), True),
    ("reasons", T.ArrayType(T.StringType(), True), False),
)

# ---------------------------------------------------------------- gold

GOLD_APPRENTICESHIPS_SCHEMA = _struct(
    ("apprenticeship_id", T.LongType(), False),
    ("name", T.StringType(), True),
    ("programme_id", T.LongType(), True),
    ("modified_date", T.TimestampType(), False),
    ("first_name", T.StringType(), True),
    ("last_name", T.StringType(), True),
    ("email_address", T.StringType(), True),
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
    ("title", T.StringType(), True),
    ("description", T.StringType(), True),
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
    ("schema_drift", T.ArrayType(T.StructType([
        T.StructField("entity", T.StringType(), True), T.StructField("field", T.StringType(), True),
        T.StructField("kind", T.StringType(), True), T.StructField("records", T.LongType(), True)]), True), True),
)
AUDIT_PARTITION = "ingest_date"

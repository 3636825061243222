"""Everything the pipeline knows about each entity of the source, in one place: one `EntitySpec` each.

The extractor (which lists to walk, which resume re-lists), the landing contract and every step
of the transform (parse, validate, quarantine, deduplicate, MERGE, deletions, gold) read the
entity's spec instead of testing its name. Adding a field to an entity is one edit here (its
contract field and the typed column built from it) plus tests. Pure data: no Spark import, so the
extractor can use it where pyspark is not installed. The source contract: docs/source-api.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# `status` values the contract allows (trimmed, lower-cased).
STATUSES = ("pending", "submitted", "graded")
# The order of a record's extraction: the latest extraction is the latest version, position breaks exact ties.
EXTRACTION_ORDER = ("extracted_at", "landing_file", "page_index", "record_index")
# The lineage column holding a record's parent id (from its landing page, never from the record).
PARENT_COLUMN = "parent_apprenticeship_id"


@dataclass(frozen=True)
class SourceField:
    """One field of an API record: its name, the JSON type the contract promises, and what it means."""

    name: str
    json_type: str  # "integer" or "string"
    role: str = "text"  # "id", "integer", "text", "timestamp", "status", "email"
    minimum: Optional[int] = None  # an integer below it is a contract break (`negative_value`)


@dataclass(frozen=True)
class TypedColumn:
    """How one cleaned column is built (transform/clean.py holds the builder of each kind).

    kinds: "bigint"/"int" (an integer field), "text" (trimmed), "lowercase" (trimmed, lower-cased),
    "timestamp" (the source's timestamp format), "email" (trimmed, lower-cased), "email_check"
    (whether the cleaned address of `source` looks deliverable), "parent" (the page's parent id).
    """

    name: str
    kind: str
    source: Optional[str] = None  # the contract field it is read from (None for "parent")

    @property
    def spark_type(self) -> str:
        return _SPARK_TYPES[self.kind]


_SPARK_TYPES = {
    "bigint": "bigint",
    "int": "int",
    "text": "string",
    "lowercase": "string",
    "timestamp": "timestamp",
    "email": "string",
    "email_check": "boolean",
    "parent": "bigint",
}


@dataclass(frozen=True)
class SilverPartition:
    """Silver's partition column: the month of a timestamp column, or the first ingest date of the row."""

    name: str
    source: str
    monthly: bool


@dataclass(frozen=True)
class DeletionPolicy:
    """When a run proves a live silver row gone (transform/deletions.py applies it).

    `complete_listings`: a complete listing of any of these entities shows every id the source has
    (a complete listing of a child entity holds one listing, maybe empty, per parent, so it shows the
    parents too). `within_parent`: each parent's listing is complete on its own, and the rows of a
    deleted parent are deleted with it.
    """

    complete_listings: tuple[str, ...] = ()
    within_parent: bool = False


@dataclass(frozen=True)
class GoldRole:
    """The gold table this entity is the subject of (None: its attributes are joined into others)."""

    table: Optional[str] = None
    known_flag: Optional[str] = None  # the gold column that is false for an orphan (its parent is unknown)
    # The column of a silver change naming what gold must build again (transform/gold.py, `SilverChanges`):
    # "apprenticeship_id", that apprenticeship's rows; another column of gold/apprenticeships (programme_id),
    # the rows of every apprenticeship with that value.
    touches: str = "apprenticeship_id"


@dataclass(frozen=True)
class EntitySpec:
    """One entity of the source: its contract, how it is cleaned, keyed, versioned, partitioned, deleted, used."""

    name: str
    api_path: str  # "{parent}" stands for the parent's id
    contract: tuple[SourceField, ...]
    columns: tuple[TypedColumn, ...]  # the cleaned business columns, in silver's order (keys first)
    key: tuple[str, ...]  # silver's key; the last column is the record's own id
    silver_partition: SilverPartition
    deletion: DeletionPolicy
    gold: GoldRole = GoldRole()
    parent: Optional[str] = None  # the entity whose listing holds this one's (projects: apprenticeships)
    change_marker: Optional[str] = None  # a column the source moves on every change (apprenticeships: modified_date)
    text_columns: tuple[str, ...] = field(default=())  # trimmed and NFC-normalised

    @property
    def id_column(self) -> str:
        return self.key[-1]

    @property
    def version_order(self) -> tuple[str, ...]:
        """Latest first: the change marker when there is one, then the extraction (dedupe.py)."""
        return ((self.change_marker,) if self.change_marker else ()) + EXTRACTION_ORDER

    @property
    def business_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def parent_column(self) -> Optional[str]:
        """The cleaned column holding the parent's id (from the landing page), if the entity has a parent."""
        return next((c.name for c in self.columns if c.kind == "parent"), None)

    def typed_column(self, field_name: str) -> Optional[str]:
        """The cleaned column holding a contract field's typed value."""
        return next((c.name for c in self.columns if c.source == field_name and c.kind != "email_check"), None)

    def field(self, name: str) -> SourceField:
        return next(f for f in self.contract if f.name == name)


APPRENTICESHIPS = EntitySpec(
    name="apprenticeships",
    api_path="/apprenticeships",
    contract=(
        SourceField("id", "integer", "id"),
        SourceField("name", "string"),
        SourceField("programme_id", "integer", "integer"),
        SourceField("modified_date", "string", "timestamp"),
        SourceField("first_name", "string"),
        SourceField("last_name", "string"),
        SourceField("email_address", "string", "email"),
    ),
    columns=(
        TypedColumn("apprenticeship_id", "bigint", "id"),
        TypedColumn("name", "text", "name"),
        TypedColumn("programme_id", "bigint", "programme_id"),
        TypedColumn("modified_date", "timestamp", "modified_date"),
        TypedColumn("first_name", "text", "first_name"),
        TypedColumn("last_name", "text", "last_name"),
        TypedColumn("email_address", "email", "email_address"),
        TypedColumn("email_is_valid", "email_check", "email_address"),
    ),
    key=("apprenticeship_id",),
    text_columns=("name", "first_name", "last_name", "email_address"),
    change_marker="modified_date",
    silver_partition=SilverPartition("modified_month", "modified_date", monthly=True),
    # A complete listing of projects holds one listing per apprenticeship of the source (an incremental
    # run with projects_scope 'all'): it shows every apprenticeship id too.
    deletion=DeletionPolicy(complete_listings=("apprenticeships", "projects")),
    gold=GoldRole("gold/apprenticeships", known_flag="programme_known"),
)

PROJECTS = EntitySpec(
    name="projects",
    api_path="/apprenticeships/{parent}/projects",
    contract=(
        SourceField("id", "integer", "id"),
        SourceField("title", "string"),
        SourceField("description", "string"),
        SourceField("status", "string", "status"),
    ),
    columns=(
        TypedColumn("apprenticeship_id", "parent"),
        TypedColumn("project_id", "bigint", "id"),
        TypedColumn("title", "text", "title"),
        TypedColumn("description", "text", "description"),
        TypedColumn("status", "lowercase", "status"),
    ),
    key=("apprenticeship_id", "project_id"),  # a project is identified within its apprenticeship
    text_columns=("title", "description", "status"),
    silver_partition=SilverPartition("first_ingest_date", "ingest_date", monthly=False),
    deletion=DeletionPolicy(within_parent=True),
    gold=GoldRole("gold/apprenticeship_projects", known_flag="apprenticeship_known"),
    parent="apprenticeships",
)

PROGRAMMES = EntitySpec(
    name="programmes",
    api_path="/programmes",
    contract=(
        SourceField("id", "integer", "id"),
        SourceField("name", "string"),
        SourceField("duration", "integer", "integer", minimum=0),
        SourceField("description", "string"),
    ),
    columns=(
        TypedColumn("programme_id", "bigint", "id"),
        TypedColumn("name", "text", "name"),
        TypedColumn("duration", "int", "duration"),
        TypedColumn("description", "text", "description"),
    ),
    key=("programme_id",),
    text_columns=("name", "description"),
    silver_partition=SilverPartition("first_ingest_date", "ingest_date", monthly=False),
    deletion=DeletionPolicy(complete_listings=("programmes",)),
    gold=GoldRole(touches="programme_id"),  # joined into both gold tables through the apprenticeship
)

# Every entity, in the order of the lake's tables, the manifest and the reports.
ENTITIES: tuple[EntitySpec, ...] = (APPRENTICESHIPS, PROJECTS, PROGRAMMES)
ENTITY_NAMES: tuple[str, ...] = tuple(spec.name for spec in ENTITIES)
# The order the transform loads them: programmes depend on nothing, projects follow apprenticeships
# (the projects of a deleted apprenticeship are deleted with it).
LOAD_ORDER: tuple[EntitySpec, ...] = (PROGRAMMES, APPRENTICESHIPS, PROJECTS)
BY_NAME: dict[str, EntitySpec] = {spec.name: spec for spec in ENTITIES}


def entity(name: str) -> EntitySpec:
    """The spec of an entity by name (a manifest's key, a table's name)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown entity {name!r} (known: {', '.join(ENTITY_NAMES)})") from None
